package build

import (
	"github.com/hoistdev/hoist/progress"
)

// Node is the progress Node of the steps that concern the whole build; the
// steps of one platform's image (planning, buildah) carry the platform,
// such as linux/amd64.
const Node = "build"

// Steps of a build, as its progress events name them.
const (
	StepPlan          = "plan"           // the Kubefile planned for a platform
	StepLock          = "lock"           // waiting for another build of the store
	StepBuildah       = "buildah"        // the Dockerfile run for a platform
	StepFindImages    = "find-images"    // charts, manifests and lists read for images
	StepCollectImages = "collect-images" // the images fetched into the blob cache
	StepRegistryLayer = "registry-layer" // registry/ added on top of each image
)

// reporter stamps and forwards a build's events; the zero value reports
// nothing.
type reporter struct{ r progress.Reporter }

func (r reporter) report(e progress.Event) { progress.Send(r.r, e) }

// start reports the step begun and returns what reports its end.
func (r reporter) start(node, step string) func(error) { return progress.Start(r.r, node, step) }

func (r reporter) warn(step, message string) {
	r.report(progress.Event{Node: Node, Step: step, State: progress.StateWarning, Message: message})
}

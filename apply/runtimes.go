package apply

import (
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/step"
)

// runtimes are the runtimes hoist knows, as zero values, tried in order on
// an image. A new runtime implements step.Runtime and gets a line here.
var runtimes = []step.Runtime{
	&kubeadm.Runtime{},
}

// detectRuntime returns the runtime the image brings up, nil for an image
// that brings none (an app image, or one of plain hosts).
func detectRuntime(c clusterfile.Cluster, image step.Image) (step.Runtime, error) {
	for _, zero := range runtimes {
		rt, err := zero.Detect(c, image)
		if err != nil || rt != nil {
			return rt, err
		}
	}
	return nil, nil
}

// recordedRuntime is the runtime whose cluster the journal records as made
// on node (its init step done), for delete, which has no image to detect
// it from: nil when none is.
func recordedRuntime(j *Journal, node string) step.Runtime {
	for _, zero := range runtimes {
		for _, s := range zero.Steps() {
			if s.Stage != step.Init {
				continue
			}
			if _, done := j.StepDone(node, s.Name); done {
				return zero
			}
		}
	}
	return nil
}

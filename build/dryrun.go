package build

import (
	"context"

	"github.com/hoistdev/hoist/build/discover"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// Preview is one platform's plan as a dry run shows it; the JSON names are
// those of `hoist build --dry-run --format json`.
type Preview struct {
	Platform   string              `json:"platform"`
	Dockerfile string              `json:"dockerfile"`
	Metadata   *metadata.Metadata  `json:"metadata"`
	AppFiles   map[string][]string `json:"appFiles"`
	BuildArgs  map[string]string   `json:"buildArgs"`
	Images     []string            `json:"requestedImages"`
}

// DryRun plans the build for every platform, finds the images of the
// Kubefile's apps from their sources, and builds nothing. The store
// (nil: none) is only read, to inherit the metadata and the Kubernetes
// version label of a base image it already holds: a dry run never pulls an
// image (https:// sources are downloaded, since the plan lists their files).
func DryRun(ctx context.Context, store *clusterimage.Store, opts Options) ([]Preview, error) {
	opts = opts.withDefaults()
	opts.Pull = PullNever
	rep := reporter{opts.Reporter}
	file, err := readKubefile(opts)
	if err != nil {
		return nil, err
	}
	var plans []*kubefile.Plan
	for _, pl := range opts.Platforms {
		plan, err := planPlatform(ctx, store, file, opts, pl, true, rep)
		if err != nil {
			return nil, err
		}
		plans = append(plans, plan)
	}
	// The same for every platform: once is enough.
	for _, w := range plans[0].Warnings {
		rep.warn(StepPlan, w)
	}
	// The images, as the build will find them, from the apps' sources:
	// listed in the metadata without the digests that collecting gives.
	found, err := gatherImages(plans, opts, rep, func(_ int, plan *kubefile.Plan, warn func(string)) ([]discover.Image, error) {
		return discoverSources(plan, opts, warn)
	})
	if err != nil {
		return nil, err
	}
	previews := make([]Preview, len(plans))
	for i, plan := range plans {
		plan.Metadata.Images = imageRecords(found)
		// Empty, not null, in JSON.
		images := []string{}
		for _, img := range plan.Images {
			images = append(images, img.Ref)
		}
		previews[i] = Preview{
			Platform:   plan.Platform.String(),
			Dockerfile: plan.Dockerfile,
			Metadata:   plan.Metadata,
			AppFiles:   plan.AppFiles,
			BuildArgs:  plan.BuildArgs,
			Images:     images,
		}
	}
	return previews, nil
}

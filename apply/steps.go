package apply

import (
	"slices"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// Names of hoist's own steps; a runtime's are in its package.
const (
	stepInstallHoist = "install-hoist"
	stepRootfs       = "rootfs"
	stepRegistry     = "registry"
	stepMirrors      = "mirrors"
	stepClean        = "clean" // not planned: what delete and prune run
)

// steps lists, in the order they run on a node, the steps of a cluster:
// hoist's own, one file each (step_*.go), with those of the runtime (nil
// for an image without one) around the hooks of their phases. A step the
// node does not get says so by its Key. To add a step: a file and a line
// here.
func (r *runner) stepList(rt step.Runtime) []step.Step {
	list := []step.Step{
		r.installHoistStep(),
		r.rootfsStep(),
		r.hookStep(clusterfile.PhasePreInitHost, step.Host),
		r.registryStep(),
		r.mirrorsStep(),
		r.hookStep(clusterfile.PhasePostInitHost, step.Host),
	}
	var later []step.Step
	if rt != nil {
		for _, s := range rt.Steps() {
			if s.Stage == step.Host {
				list = append(list, s)
			} else {
				later = append(later, s)
			}
		}
	}
	list = append(list, r.hookStep(clusterfile.PhasePreInstall, step.Host),
		r.upgradeHostStep(step.UpgradeMasters), r.upgradeHostStep(step.UpgradeWorkers))
	list = append(list, later...)
	return append(list, r.hookStep(clusterfile.PhasePostInstall, step.Cluster))
}

// StepNames lists every step a node may have, in order, for the help text:
// hoist's own and those of every runtime hoist knows.
func StepNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, rt := range append(slices.Clone(runtimes), nil) {
		for _, s := range (&runner{}).stepList(rt) {
			if !seen[s.Name] {
				seen[s.Name] = true
				names = append(names, s.Name)
			}
		}
	}
	return names
}

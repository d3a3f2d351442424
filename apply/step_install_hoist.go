package apply

import (
	"context"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
)

// installHoistStep copies this hoist to the node, once per version: the
// node's agent does the node's side of every other step.
func (r *runner) installHoistStep() step.Step {
	return step.Step{
		Name:  stepInstallHoist,
		Stage: step.Host,
		Key:   func(in *step.Input, _ clusterfile.Node) (string, bool) { return in.HoistDigest, true },
		Run: func(ctx context.Context, t *step.Target) error {
			_, _, err := installSelf(ctx, t.Exec, r.opts.Binary, r.hoistDigest, t.Dir.Bin())
			return err
		},
		// The agent undoes what it did (the registry service, the hosts
		// entry, the mirror files) and removes the cluster's directory.
		Undo: func(u step.Undo) string {
			clean := agent.CleanCmd{Cluster: u.Cluster, Dir: u.Dir.Dir, CertsDir: layout.CertsDir, HostsFile: layout.HostsFile}
			return "exec \"$b\" " + ssh.Command(clean.Args()...) + "\n"
		},
	}
}

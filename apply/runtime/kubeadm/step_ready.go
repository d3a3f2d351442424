package kubeadm

import (
	"context"
	"fmt"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// readyStep waits for the node to be Ready, then sets its labels and
// taints.
func readyStep(k *Runtime) step.Step {
	return step.Step{
		Name:  StepReady,
		Stage: step.Cluster,
		Key: func(_ *step.Input, n clusterfile.Node) (string, bool) {
			return step.Hash(struct {
				Labels map[string]string
				Taints []string
			}{n.Labels, n.Taints}), true
		},
		Run: func(ctx context.Context, t *step.Target) error {
			master, _, err := t.Master(ctx)
			if err != nil {
				return fmt.Errorf("a master of the cluster: %w", err)
			}
			ip := t.Node.IP.String()
			if err := k.WaitReady(ctx, master, t.Exec, ip); err != nil {
				return err
			}
			return k.Configure(ctx, master, ip, t.Node.Labels, t.Node.Taints)
		},
		// A node set up again is waited for.
		RedoOnRestart: true,
	}
}

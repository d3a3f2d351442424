package kubeadm

import (
	"context"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// initKey is the key of kube-init: a done init is never redone.
const initKey = "init"

// initStep runs kubeadm init on the master that makes the cluster (the
// first master, until the cluster is made).
func initStep(k *Runtime) step.Step {
	return step.Step{
		Name:  StepInit,
		Stage: step.Init,
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			return initKey, n.IP.String() == in.InitNode
		},
		Run: func(ctx context.Context, t *step.Target) error {
			return k.Init(ctx, t.Exec, t.Node.IP.String())
		},
		Joins: true,
	}
}

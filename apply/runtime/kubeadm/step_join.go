package kubeadm

import (
	"context"
	"fmt"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// joinKey is the key of a node's kube-join: its role, so that a node that
// changes role joins again.
func joinKey(n clusterfile.Node) string {
	if n.IsMaster() {
		return "control-plane"
	}
	return "worker"
}

// joinStep runs kubeadm join on the nodes of its stage: the masters but
// the one that makes the cluster (one at a time: etcd grows one member at
// a time), or the workers. Any master of the cluster gives the token.
func joinStep(k *Runtime, stage step.Stage) step.Step {
	return step.Step{
		Name:  StepJoin,
		Stage: stage,
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			if n.IsMaster() {
				return joinKey(n), stage == step.JoinMasters && n.IP.String() != in.InitNode
			}
			return joinKey(n), stage == step.JoinWorkers
		},
		Run: func(ctx context.Context, t *step.Target) error {
			master, masterIP, err := t.Master(ctx)
			if err != nil {
				return fmt.Errorf("a master of the cluster: %w", err)
			}
			in, err := k.NewJoinInput(ctx, master, masterIP, t.Node.IsMaster())
			if err != nil {
				return fmt.Errorf("on the master %s: %w", masterIP, err)
			}
			return k.Join(ctx, t.Exec, t.Node.IP.String(), in)
		},
		Joins: true,
	}
}

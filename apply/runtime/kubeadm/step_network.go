package kubeadm

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// networkStep gives the node hoist's pod network: a bridge, and a route to
// every other node's pods.
func networkStep(k *Runtime) step.Step {
	return step.Step{
		Name:  StepNetwork,
		Stage: step.Cluster,
		// Every node routes to every other node's pods: a node added or
		// removed changes every node's routes.
		Key: func(in *step.Input, _ clusterfile.Node) (string, bool) {
			return in.ImageDigest + " " + strings.Join(in.IPs, ","), true
		},
		Run: func(ctx context.Context, t *step.Target) error {
			master, _, err := t.Master(ctx)
			if err != nil {
				return fmt.Errorf("a master of the cluster: %w", err)
			}
			// Every node that has joined, so far, gets a route here.
			var joined []string
			for _, o := range t.Cluster.Nodes {
				if t.Done(o.IP.String(), StepInit, initKey) || t.Done(o.IP.String(), StepJoin, joinKey(o)) {
					joined = append(joined, o.IP.String())
				}
			}
			nodes, err := k.WaitRegistered(ctx, master, joined)
			if err != nil {
				return err
			}
			return k.Network(ctx, t.Exec, t.Node.IP.String(), nodes)
		},
		// Routes are gone after any restart.
		Probe: func(t *step.Target) string {
			return fmt.Sprintf(`[ -f %s ] && { [ %d -lt 2 ] || [ -n "$(ip route show proto %s)" ]; } || exit %d`,
				CNIConf, len(t.Cluster.Nodes), RouteProto, agent.ExitNotRunning)
		},
		// A node that joined may have a new pod range (a node that
		// rejoins gets a new one): every node's routes are made again; a
		// node set up again gets its routes again.
		RedoOnJoin:    true,
		RedoOnRestart: true,
	}
}

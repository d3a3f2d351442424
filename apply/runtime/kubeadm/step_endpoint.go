package kubeadm

import (
	"context"
	"net"
	"sort"
	"strconv"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/agent/lb"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// endpointStep gives every node the control plane's name, when the
// Clusterfile names no endpoint of its own: apiserver.cluster.local is the
// loopback address where hoist's balancer forwards to every healthy API
// server of the Clusterfile's masters (hoist node endpoint). It runs
// before init and joins, which reach the control plane by that name; a
// master added or removed changes every node's list, which the balancer
// follows without a restart.
func endpointStep(k *Runtime) step.Step {
	return step.Step{
		Name:  StepEndpoint,
		Stage: step.Host,
		Key: func(in *step.Input, _ clusterfile.Node) (string, bool) {
			if k.Config == nil || k.Config.ExternalEndpoint() {
				return "", false
			}
			return step.Hash(struct {
				Endpoint, Hoist string
				Backends        []string
			}{k.Config.Endpoint(), in.HoistDigest, k.backends(in.Cluster)}), true
		},
		Run: func(ctx context.Context, t *step.Target) error {
			cmd := lb.EndpointCmd{Cluster: t.Cluster.Name, StateDir: t.Dir.State(), Name: LocalEndpointName,
				Listen: LocalEndpointListen, Backends: k.backends(*t.Cluster)}
			return t.Exec.Run(ctx, step.Agent(t.Hoist, cmd), nil, nil)
		},
		// Without systemd, a machine that restarted lost the balancer.
		Probe: func(t *step.Target) string {
			return step.ServiceStatus(t, agent.APIServerLBService(t.Cluster.Name))
		},
	}
}

// backends are the API servers of the Clusterfile's masters, sorted.
func (k *Runtime) backends(c clusterfile.Cluster) []string {
	port := strconv.Itoa(k.Config.APIServerPort())
	var out []string
	for _, m := range c.Masters() {
		out = append(out, net.JoinHostPort(m.IP.String(), port))
	}
	sort.Strings(out)
	return out
}

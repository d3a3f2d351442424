package apply

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
)

// mirrorsStep points the registry domain at the registry node (a registry
// node at itself) and containerd's mirrors of every bundled registry host
// at the registry, then at the other registry nodes.
func (r *runner) mirrorsStep() step.Step {
	return step.Step{
		Name:  stepMirrors,
		Stage: step.Host,
		Key: func(in *step.Input, _ clusterfile.Node) (string, bool) {
			reg := in.Cluster.Registry
			var nodes []string
			for _, a := range reg.Nodes {
				nodes = append(nodes, a.String())
			}
			return fmt.Sprintf("%s %s:%d %s %s", in.ImageDigest, reg.Domain, reg.Port, strings.Join(nodes, ","), in.TLSDigest), !in.NoRegistry
		},
		Run: func(ctx context.Context, t *step.Target) error {
			reg := t.Cluster.Registry
			// A registry node's domain names itself; the other registry
			// nodes (a registry on every master) are mirrors after it.
			first := reg.Nodes[0]
			if slices.Contains(reg.Nodes, t.Node.IP) {
				first = t.Node.IP
			}
			var others []string
			for _, a := range reg.Nodes {
				if a != first {
					others = append(others, net.JoinHostPort(a.String(), strconv.Itoa(reg.Port)))
				}
			}
			return t.Exec.Run(ctx, step.Agent(t.Hoist, agent.MirrorsCmd{Cluster: t.Cluster.Name, Registry: fmt.Sprintf("%s:%d", reg.Domain, reg.Port),
				RegistryIP: first.String(), Others: others, Hosts: r.registryHosts, CertsDir: layout.CertsDir, HostsFile: layout.HostsFile, Record: t.Dir.Mirrors()}),
				strings.NewReader(string(r.tls.CA)), nil)
		},
	}
}

package apply

import (
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// registryStep starts the cluster registry on the registry nodes: the
// node's agent serves the rootfs's registry/ over TLS.
func (r *runner) registryStep() step.Step {
	return step.Step{
		Name:  stepRegistry,
		Stage: step.Host,
		// The registry listens on the node's address: part of its key, so
		// that a registry that listened everywhere is restarted.
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			reg := in.Cluster.Registry
			return fmt.Sprintf("%s %s:%d %s listen %s", in.ImageDigest, reg.Domain, reg.Port, in.TLSDigest, n.IP), isRegistry(in, n)
		},
		Run: func(ctx context.Context, t *step.Target) error {
			pki := t.Dir.PKI()
			if err := ssh.WriteFile(ctx, t.Exec, pki+"/registry.crt", r.tls.Cert); err != nil {
				return err
			}
			if err := ssh.WriteFile(ctx, t.Exec, pki+"/registry.key", r.tls.Key); err != nil {
				return err
			}
			return t.Exec.Run(ctx, step.Agent(t.Hoist, agent.RegistryStartCmd{Cluster: t.Cluster.Name, StateDir: t.Dir.State(), Root: t.Dir.Registry(),
				Listen: t.Node.IP.String(), Port: t.Cluster.Registry.Port, Cert: path.Join(pki, "registry.crt"), Key: path.Join(pki, "registry.key")}), nil, nil)
		},
		// Without systemd, a machine that restarted lost the registry.
		Probe: func(t *step.Target) string { return step.ServiceStatus(t, agent.RegistryServiceName(t.Cluster.Name)) },
	}
}

// isRegistry tells whether the node serves the cluster registry.
func isRegistry(in *step.Input, n clusterfile.Node) bool {
	return slices.Contains(in.Cluster.Registry.Nodes, n.IP) && !in.NoRegistry
}

package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/layout"
)

// EndpointCmd is `hoist node endpoint`: the API servers' name on a node,
// balanced there. Name resolves to the loopback address of Listen (a line
// of the hosts file), where a node service runs the balancer (`hoist node
// lb`) over Backends, kept in a file of the state directory that the
// balancer follows. Run again with other backends, it rewrites the file
// and the balancer follows it without a restart.
type EndpointCmd struct {
	Cluster   string
	StateDir  string
	Name      string   // apiserver.cluster.local
	Listen    string   // 127.0.0.1:6444
	Backends  []string // IP:PORT of every master's API server
	HostsFile string   // default layout.HostsFile
}

func (c *EndpointCmd) Flags() []agent.Flag {
	return []agent.Flag{
		{Name: "cluster", Usage: "cluster name", Value: &c.Cluster},
		{Name: "state-dir", Usage: "directory of the backends file, the pid file and log", Value: &c.StateDir},
		{Name: "name", Usage: "the API servers' name, mapped to the loopback address of --listen", Value: &c.Name},
		{Name: "listen", Usage: "the balancer's loopback address and port", Value: &c.Listen},
		{Name: "backends", Usage: "the API servers, IP:PORT,...", Value: &c.Backends},
		{Name: "hosts-file", Usage: "the hosts file", Value: &c.HostsFile},
	}
}

func (c EndpointCmd) Args() []string {
	args := []string{"node", "endpoint"}
	for _, f := range c.Flags() {
		if v := f.String(); v != "" {
			args = append(args, "--"+f.Name+"="+v)
		}
	}
	return args
}

// BackendsFile is the balancer's list of API servers on a node.
func BackendsFile(stateDir, cluster string) string {
	return filepath.Join(stateDir, agent.APIServerLBService(cluster)+".backends")
}

// Run writes the backends, starts the balancer (or leaves it running:
// it follows the file), maps the name, and returns once the balancer
// accepts connections.
func (c EndpointCmd) Run(ctx context.Context) error {
	if err := agent.CheckClusterName(c.Cluster); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	listen, err := netip.ParseAddrPort(c.Listen)
	if err != nil || !listen.Addr().IsLoopback() {
		return fmt.Errorf("--listen %q: want a loopback address and port (127.0.0.1:6444)", c.Listen)
	}
	if c.Name == "" || net.ParseIP(c.Name) != nil {
		return fmt.Errorf("--name %q: want a host name", c.Name)
	}
	var addrs []netip.AddrPort
	for _, b := range c.Backends {
		a, err := parseBackend(b)
		if err != nil {
			return fmt.Errorf("--backends: %w", err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return errors.New("--backends: none")
	}
	svc, err := agent.NodeService(agent.APIServerLBService(c.Cluster), c.StateDir, nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return err
	}
	file := BackendsFile(c.StateDir, c.Cluster)
	if err := writeAtomic(file, FormatBackends(addrs)); err != nil {
		return err
	}
	// Any change to these words restarts the balancer.
	svc.Command = append([]string{svc.Self}, Cmd{Listen: listen.String(), Backends: file}.Args()...)
	if err := svc.Start(ctx); err != nil {
		return err
	}
	hosts := c.HostsFile
	if hosts == "" {
		hosts = layout.HostsFile
	}
	if err := agent.SetAPIServerHostsEntry(hosts, c.Cluster, c.Name, listen.Addr().String()); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", listen.String(), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server balancer does not answer on %s: %v (its log: %s)", listen, err, filepath.Join(c.StateDir, svc.Name+".log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeAtomic replaces file whole: the balancer never reads half a list.
func writeAtomic(file string, data []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

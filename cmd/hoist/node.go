package main

import (
	"errors"
	"fmt"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply"
)

// newNodeCommand is what hoist runs on the nodes, through the copy of
// itself it installs there: not for users, so hidden.
func newNodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "node",
		Short:  "Commands hoist runs on the nodes",
		Hidden: true,
	}
	var dest, digest, streamDigest string
	unpackCmd := &cobra.Command{
		Use:   "unpack --dest DIR --digest DIGEST --stream-digest SHA256",
		Short: "Unpack a zstd tar from stdin into DIR, atomically",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dest == "" || digest == "" {
				return errors.New("--dest and --digest are required")
			}
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok {
				// sshd feeds the stream through a pipe in 32 KiB packets; a
				// larger pipe wakes this process less often.
				unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
			}
			return agent.Unpack(in, dest, digest, streamDigest)
		},
	}
	unpackCmd.Flags().StringVar(&dest, "dest", "", "directory to fill")
	unpackCmd.Flags().StringVar(&digest, "digest", "", "digest of the content, recorded in the tree")
	unpackCmd.Flags().StringVar(&streamDigest, "stream-digest", "", "sha256 of the stream, checked before the tree is put in place")
	digestCmd := &cobra.Command{
		Use:   "digest FILE",
		Short: "Print the sha256 of a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			digest, err := apply.FileDigest(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), digest)
			return nil
		},
	}
	cmd.AddCommand(unpackCmd, digestCmd, newNodeRegistryCommand(), newNodeMirrorsCommand(), newNodeCleanCommand(), newNodeSuperviseCommand(), newNodeServiceCommand())
	return cmd
}

func registryService(cluster, stateDir string, command []string) (agent.Service, error) {
	if err := agent.CheckClusterName(cluster); err != nil {
		return agent.Service{}, fmt.Errorf("--cluster: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return agent.Service{}, err
	}
	return agent.Service{
		Name:        "hoist-registry-" + cluster,
		Description: "hoist registry of cluster " + cluster,
		Command:     command,
		StateDir:    stateDir,
		Self:        self,
	}, nil
}

func newNodeRegistryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Start or stop the cluster registry service"}
	var cluster, stateDir, root, cert, key, listen string
	var port int
	start := &cobra.Command{
		Use:  "start",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			// The node's cluster address only: the registry is for the
			// cluster's nodes, not for every network the machine is on.
			ip, err := netip.ParseAddr(listen)
			if err != nil || ip.IsUnspecified() {
				return fmt.Errorf("--listen %q: want the node's cluster address", listen)
			}
			addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
			svc, err := registryService(cluster, stateDir, []string{self, "registry", "serve", "--root", root, "--addr", addr, "--tls-cert", cert, "--tls-key", key})
			if err != nil {
				return err
			}
			if err := svc.Start(cmd.Context()); err != nil {
				return err
			}
			// Ready when it accepts connections; a registry that dies at
			// once (a port taken) fails the step here, not at the first pull.
			deadline := time.Now().Add(20 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					c.Close()
					return nil
				}
				if time.Now().After(deadline) {
					log, _ := os.ReadFile(filepath.Join(stateDir, svc.Name+".log"))
					return fmt.Errorf("the registry does not answer on %s: %v\n%s", addr, err, tail(string(log), 1500))
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
	}
	f := start.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster name")
	f.StringVar(&stateDir, "state-dir", "", "directory of the pid file and log")
	f.StringVar(&root, "root", "", "registry directory to serve")
	f.IntVar(&port, "port", clusterfile.DefaultRegPort, "port")
	f.StringVar(&listen, "listen", "", "the node's cluster address, the only one the registry listens on")
	f.StringVar(&cert, "tls-cert", "", "certificate")
	f.StringVar(&key, "tls-key", "", "key")
	stop := &cobra.Command{
		Use:  "stop",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := registryService(cluster, stateDir, nil)
			if err != nil {
				return err
			}
			return svc.Stop(cmd.Context())
		},
	}
	stop.Flags().StringVar(&cluster, "cluster", "", "cluster name")
	stop.Flags().StringVar(&stateDir, "state-dir", "", "directory of the pid file and log")
	cmd.AddCommand(start, stop)
	return cmd
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func newNodeMirrorsCommand() *cobra.Command {
	var cluster, registry, registryIP, hosts, certsDir, hostsFile, record string
	cmd := &cobra.Command{
		Use:   "mirrors --cluster NAME --registry DOMAIN:PORT --registry-ip IP --hosts H1,H2 < ca.crt",
		Short: "Point the registry domain at the registry node and containerd's mirrors at the registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := agent.CheckClusterName(cluster); err != nil {
				return fmt.Errorf("--cluster: %w", err)
			}
			ca, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return err
			}
			domain, _, err := net.SplitHostPort(registry)
			if err != nil {
				return fmt.Errorf("--registry: %w", err)
			}
			if err := agent.SetHostsEntry(hostsFile, cluster, domain, registryIP); err != nil {
				return err
			}
			var list []string
			for h := range strings.SplitSeq(hosts, ",") {
				if h != "" {
					list = append(list, h)
				}
			}
			return agent.WriteMirrors(agent.Mirrors{CertsDir: certsDir, Registry: registry, CA: ca, Hosts: list, Record: record})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster name")
	f.StringVar(&registry, "registry", "", "the cluster registry, DOMAIN:PORT")
	f.StringVar(&registryIP, "registry-ip", "", "address of the registry node")
	f.StringVar(&hosts, "hosts", "", "registry hosts bundled in the image, comma-separated")
	f.StringVar(&certsDir, "certs-dir", apply.CertsDir, "containerd's certs.d")
	f.StringVar(&hostsFile, "hosts-file", apply.HostsFile, "the hosts file")
	f.StringVar(&record, "record", "", "file listing what was written")
	return cmd
}

func newNodeCleanCommand() *cobra.Command {
	var cluster, dir, certsDir, hostsFile string
	cmd := &cobra.Command{
		Use:   "clean --cluster NAME --dir DIR",
		Short: "Stop the registry, remove the hosts entry, the mirror files and DIR",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := agent.CheckClusterDir(dir, cluster); err != nil {
				return err
			}
			state := filepath.Join(dir, "state")
			svc, err := registryService(cluster, state, nil)
			if err != nil {
				return err
			}
			if err := svc.Stop(cmd.Context()); err != nil {
				return err
			}
			if err := agent.RemoveHostsEntry(hostsFile, cluster); err != nil {
				return err
			}
			if err := agent.RemoveMirrors(filepath.Join(state, "mirrors"), certsDir); err != nil {
				return err
			}
			return os.RemoveAll(dir)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster name")
	f.StringVar(&dir, "dir", "", "the cluster's directory on this node")
	f.StringVar(&certsDir, "certs-dir", apply.CertsDir, "containerd's certs.d")
	f.StringVar(&hostsFile, "hosts-file", apply.HostsFile, "the hosts file")
	return cmd
}

func newNodeSuperviseCommand() *cobra.Command {
	var pidFile string
	cmd := &cobra.Command{
		Use:   "supervise --pid-file FILE -- COMMAND...",
		Short: "Run COMMAND, again whenever it exits, until SIGTERM",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pidFile == "" {
				return errors.New("--pid-file is required")
			}
			return agent.Supervise(pidFile, args)
		},
	}
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "where the supervisor's pid goes")
	return cmd
}

// newNodeServiceCommand runs a node daemon of the image's scripts
// (containerd, the kubelet) as the registry runs: a systemd unit where
// systemd is, hoist's supervisor otherwise.
func newNodeServiceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Start or stop a node service"}
	var stateDir string
	service := func(name string, command []string) (agent.Service, error) {
		if stateDir == "" {
			return agent.Service{}, errors.New("--state-dir is required")
		}
		self, err := os.Executable()
		if err != nil {
			return agent.Service{}, err
		}
		return agent.Service{Name: name, Description: name + " (started by hoist)", Command: command, StateDir: stateDir, Self: self}, nil
	}
	start := &cobra.Command{
		Use:   "start NAME --state-dir DIR -- COMMAND...",
		Short: "Make the service run COMMAND (restarted when the command changed)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := service(args[0], args[1:])
			if err != nil {
				return err
			}
			return svc.Start(cmd.Context())
		},
	}
	stop := &cobra.Command{
		Use:   "stop NAME --state-dir DIR",
		Short: "Stop the service and remove what start wrote",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := service(args[0], nil)
			if err != nil {
				return err
			}
			return svc.Stop(cmd.Context())
		},
	}
	status := &cobra.Command{
		Use:   "status NAME... --state-dir DIR",
		Short: "Exit non-zero, naming them, when some of the services do not run",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var stopped []string
			for _, name := range args {
				svc, err := service(name, nil)
				if err != nil {
					return err
				}
				if !svc.Running(cmd.Context()) {
					stopped = append(stopped, name)
				}
			}
			if len(stopped) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "not running: %s\n", strings.Join(stopped, ", "))
				os.Exit(agent.ExitNotRunning)
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{start, stop, status} {
		c.Flags().StringVar(&stateDir, "state-dir", "", "directory of the pid file and log (without systemd)")
	}
	cmd.AddCommand(start, stop, status)
	return cmd
}

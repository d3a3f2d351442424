package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/agent/lb"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/layout"
)

// newNodeCommand is what hoist runs on the nodes, through the copy of
// itself it installs there: not for users, so hidden.
func newNodeCommand() *cobra.Command {
	return nodeCommand(nodeRuns{
		unpack: func(cmd *cobra.Command, c agent.UnpackCmd) error { return c.Run(cmd.InOrStdin()) },
		digest: func(cmd *cobra.Command, c agent.DigestCmd) error {
			digest, err := c.Run()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), digest)
			return nil
		},
		blobs:         func(cmd *cobra.Command, c agent.BlobsCmd) error { return c.Run(cmd.InOrStdin(), cmd.OutOrStdout()) },
		registryStart: func(cmd *cobra.Command, c agent.RegistryStartCmd) error { return c.Run(cmd.Context()) },
		registryStop:  func(cmd *cobra.Command, c agent.RegistryStopCmd) error { return c.Run(cmd.Context()) },
		mirrors:       func(cmd *cobra.Command, c agent.MirrorsCmd) error { return c.Run(cmd.InOrStdin()) },
		clean:         func(cmd *cobra.Command, c agent.CleanCmd) error { return c.Run(cmd.Context()) },
		endpoint:      func(cmd *cobra.Command, c lb.EndpointCmd) error { return c.Run(cmd.Context()) },
		serviceStatus: func(cmd *cobra.Command, c agent.ServiceStatusCmd) error {
			stopped, err := c.Run(cmd.Context())
			if err != nil {
				return err
			}
			if len(stopped) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "not running: %s\n", strings.Join(stopped, ", "))
				os.Exit(agent.ExitNotRunning)
			}
			return nil
		},
	})
}

// nodeRuns are what the node commands do with the command lines they bound:
// the agent's Run and printing, or, in tests, recording what was bound.
type nodeRuns struct {
	unpack        func(*cobra.Command, agent.UnpackCmd) error
	digest        func(*cobra.Command, agent.DigestCmd) error
	blobs         func(*cobra.Command, agent.BlobsCmd) error
	registryStart func(*cobra.Command, agent.RegistryStartCmd) error
	registryStop  func(*cobra.Command, agent.RegistryStopCmd) error
	mirrors       func(*cobra.Command, agent.MirrorsCmd) error
	clean         func(*cobra.Command, agent.CleanCmd) error
	endpoint      func(*cobra.Command, lb.EndpointCmd) error
	serviceStatus func(*cobra.Command, agent.ServiceStatusCmd) error
}

func nodeCommand(runs nodeRuns) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "node",
		Short:  "Commands hoist runs on the nodes",
		Hidden: true,
	}
	var unpack agent.UnpackCmd
	unpackCmd := &cobra.Command{
		Use:   "unpack --dest DIR --digest DIGEST --stream-digest SHA256",
		Short: "Unpack a zstd tar from stdin into DIR, atomically",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runs.unpack(cmd, unpack) },
	}
	bindFlags(unpackCmd, unpack.Flags())
	var digest agent.DigestCmd
	digestCmd := &cobra.Command{
		Use:   "digest FILE",
		Short: "Print the sha256 of a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			digest.File = args[0]
			return runs.digest(cmd, digest)
		},
	}
	bindFlags(digestCmd, digest.Flags())
	var blobs agent.BlobsCmd
	blobsCmd := &cobra.Command{
		Use:   "blobs --rootfs DIR < blobs",
		Short: "Print which of the registry blobs listed on stdin the tree at DIR holds",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runs.blobs(cmd, blobs) },
	}
	bindFlags(blobsCmd, blobs.Flags())
	var clean agent.CleanCmd
	clean.CertsDir, clean.HostsFile = layout.CertsDir, layout.HostsFile
	cleanCmd := &cobra.Command{
		Use:   "clean --cluster NAME --dir DIR",
		Short: "Stop the registry and the API server balancer, remove their hosts entries, the mirror files and DIR",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runs.clean(cmd, clean) },
	}
	bindFlags(cleanCmd, clean.Flags())
	cmd.AddCommand(unpackCmd, digestCmd, blobsCmd, newNodeRegistryCommand(runs), newNodeMirrorsCommand(runs), cleanCmd, newNodeSuperviseCommand(), newNodeServiceCommand(runs), newNodeLBCommand(), newNodeEndpointCommand(runs))
	return cmd
}

// bindFlags makes a node command line's table of flags the command's cobra
// flags, so that a flag is named once, in agent, for both ends. The values
// the fields hold when bound are the defaults.
func bindFlags(cmd *cobra.Command, flags []agent.Flag) {
	for _, f := range flags {
		cmd.Flags().Var(nodeFlag{f}, f.Name, f.Usage)
	}
}

// nodeFlag is an agent.Flag as pflag takes it: with a type name, which the
// help shows. A list is one comma-separated word on the line: a string.
type nodeFlag struct{ agent.Flag }

func (f nodeFlag) Type() string {
	if _, ok := f.Value.(*int); ok {
		return "int"
	}
	return "string"
}

func newNodeRegistryCommand(runs nodeRuns) *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Start or stop the cluster registry service"}
	start := agent.RegistryStartCmd{Port: clusterfile.DefaultRegPort}
	startCmd := &cobra.Command{
		Use:  "start",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runs.registryStart(cmd, start) },
	}
	bindFlags(startCmd, start.Flags())
	var stop agent.RegistryStopCmd
	stopCmd := &cobra.Command{
		Use:  "stop",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runs.registryStop(cmd, stop) },
	}
	bindFlags(stopCmd, stop.Flags())
	cmd.AddCommand(startCmd, stopCmd)
	return cmd
}

func newNodeMirrorsCommand(runs nodeRuns) *cobra.Command {
	mirrors := agent.MirrorsCmd{CertsDir: layout.CertsDir, HostsFile: layout.HostsFile}
	cmd := &cobra.Command{
		Use:   "mirrors --cluster NAME --registry DOMAIN:PORT --registry-ip IP --hosts H1,H2 < ca.crt",
		Short: "Point the registry domain at the registry node and containerd's mirrors at the registry",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runs.mirrors(cmd, mirrors) },
	}
	bindFlags(cmd, mirrors.Flags())
	return cmd
}

func newNodeEndpointCommand(runs nodeRuns) *cobra.Command {
	endpoint := lb.EndpointCmd{HostsFile: layout.HostsFile}
	cmd := &cobra.Command{
		Use:   "endpoint --cluster NAME --state-dir DIR --name NAME --listen 127.0.0.1:PORT --backends IP:PORT,...",
		Short: "Map the API servers' name to this node's balancer of them, started or updated",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runs.endpoint(cmd, endpoint) },
	}
	bindFlags(cmd, endpoint.Flags())
	return cmd
}

// newNodeLBCommand is the node's load balancer in front of the API
// servers, run as a node service: it serves until SIGTERM or SIGINT.
func newNodeLBCommand() *cobra.Command {
	var c lb.Cmd
	cmd := &cobra.Command{
		Use:   "lb --listen ADDR --backends FILE [--ca FILE]",
		Short: "Forward TCP connections to the healthy API servers listed in FILE",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return c.Run(cmd.Context(), cmd.ErrOrStderr()) },
	}
	bindFlags(cmd, c.Flags())
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
// systemd is, hoist's supervisor otherwise. Start and stop are the image
// scripts' (NAME before or after the flags, COMMAND after --); status is
// apply's.
func newNodeServiceCommand(runs nodeRuns) *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Start or stop a node service"}
	var stateDir string
	start := &cobra.Command{
		Use:   "start NAME --state-dir DIR -- COMMAND...",
		Short: "Make the service run COMMAND (restarted when the command changed)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := agent.NodeService(args[0], stateDir, args[1:])
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
			svc, err := agent.NodeService(args[0], stateDir, nil)
			if err != nil {
				return err
			}
			return svc.Stop(cmd.Context())
		},
	}
	for _, c := range []*cobra.Command{start, stop} {
		c.Flags().StringVar(&stateDir, "state-dir", "", "directory of the pid file and log (without systemd)")
	}
	var status agent.ServiceStatusCmd
	statusCmd := &cobra.Command{
		Use:   "status NAME... --state-dir DIR",
		Short: "Exit non-zero, naming them, when some of the services do not run",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			status.Names = args
			return runs.serviceStatus(cmd, status)
		},
	}
	bindFlags(statusCmd, status.Flags())
	cmd.AddCommand(start, stop, statusCmd)
	return cmd
}

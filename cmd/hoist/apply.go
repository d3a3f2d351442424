package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/apply"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/progress"
)

// applyFlags are the flags apply and run share.
type applyFlags struct {
	dryRun     bool
	format     string
	jobs       int
	acceptNew  bool
	prune      bool
	force      bool
	apps       []string
	valueFiles []string
	set        []string
	registry   string // hoist run --registry
	tlsVerify  bool
	rewrite    bool
}

func (f *applyFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be done on each node, and do nothing")
	fl.StringVar(&f.format, "format", "", "output: text (default; live progress on a terminal) or json (JSON lines)")
	fl.IntVar(&f.jobs, "jobs", 10, "nodes worked on at once")
	fl.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust the SSH host key of a host seen for the first time (StrictHostKeyChecking=accept-new); a changed key is always refused")
	fl.StringSliceVar(&f.apps, "apps", nil, "apps to launch, in order, instead of the image's LAUNCH (comma-separated)")
	fl.StringArrayVar(&f.valueFiles, "values", nil, "Helm values FILE for every chart, or APP=FILE for app APP's, over APPENV (repeatable, in order)")
	fl.StringArrayVar(&f.set, "set", nil, "Helm value k=v for every chart, or APP:k=v for app APP's, after --values (repeatable)")
	fl.BoolVar(&f.prune, "prune", false, "remove (drain and clean) the hosts applied before that the Clusterfile no longer lists; asks first on a terminal")
	fl.BoolVar(&f.force, "force", false, "with --prune: remove without asking")
}

// nodeBinary is the hoist copied to the nodes: this one, unless
// HOIST_NODE_BINARY names another (a build for the nodes' architecture).
func nodeBinary() (string, error) {
	if b := os.Getenv("HOIST_NODE_BINARY"); b != "" {
		return b, nil
	}
	return os.Executable()
}

func loadClusterfile(file string) (*clusterfile.Clusterfile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return clusterfile.ParseClusterfile(file, data)
}

func runApply(cmd *cobra.Command, g *globalOptions, cf *clusterfile.Clusterfile, f applyFlags) error {
	if f.format != "" && f.format != "text" && f.format != "json" {
		return fmt.Errorf("--format %q: want text or json", f.format)
	}
	if f.force && !f.prune {
		return errors.New("--force goes with --prune: it removes the hosts --prune removes without asking")
	}
	c := cf.Cluster
	store, err := g.openStore()
	if err != nil {
		return err
	}
	defer store.Close()
	img, err := store.Mount(cmd.Context(), c.Image)
	if err != nil {
		return err
	}
	defer img.Unmount()
	binary, err := nodeBinary()
	if err != nil {
		return err
	}
	a := &apply.Apply{Cluster: c, Plugins: cf.Plugins, Image: apply.Image{Rootfs: img.Rootfs, Digest: img.Digest, Meta: img.Meta},
		Options: apply.Options{Root: g.root, Binary: binary, Jobs: f.jobs, AcceptNewHostKeys: f.acceptNew,
			Apps: f.apps, ValueFiles: f.valueFiles, Set: f.set, Prune: f.prune, DryRun: f.dryRun,
			PushTo: f.registry, PushInsecure: !f.tlsVerify}}
	if f.rewrite {
		a.RewriteImages = f.registry
	}
	defer a.Close()
	plan, err := a.Plan(cmd.Context())
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.dryRun {
		if plan.PreviewErr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "the apps' changes are not listed: %v\n", plan.PreviewErr)
		}
		if f.format == "json" {
			return writeFormatted(out, "json", plan)
		}
		plan.Print(out)
		return nil
	}
	if removed := plan.Removed(); len(removed) > 0 && !f.force {
		question := fmt.Sprintf("Remove %d host(s) no longer in the Clusterfile from cluster %s (drained and cleaned): %s?", len(removed), c.Name, strings.Join(removed, ", "))
		if err := confirm(cmd, question, "--prune --force"); err != nil {
			return err
		}
	}
	rep, err := progress.New(out, f.format, a.Targets())
	if err != nil {
		return err
	}
	a.Reporter = rep
	res, err := a.Run(cmd.Context())
	rep.Close()
	if err != nil {
		return err
	}
	if f.format != "json" {
		printSummary(out, res)
		if plan.AppsNote != "" {
			fmt.Fprintf(out, "%-15s  %s\n", apply.AppsNode, plan.AppsNote)
		}
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d host(s) no longer in the Clusterfile were left as they are: %s (hoist apply --prune removes them)\n", len(res.Kept), strings.Join(res.Kept, ", "))
	}
	return res.Err()
}

// printSummary ends an apply or delete with one line per node.
func printSummary(w io.Writer, res *apply.Result) {
	fmt.Fprintln(w)
	for _, n := range res.Nodes {
		if err := res.Errors[n]; err != nil {
			fmt.Fprintf(w, "%-15s  FAILED  %v\n", n, oneLine(err.Error()))
		} else {
			fmt.Fprintf(w, "%-15s  ok\n", n)
		}
	}
	for _, n := range res.Kept {
		fmt.Fprintf(w, "%-15s  left as it is: no longer in the Clusterfile\n", n)
	}
}

// wrap breaks a line of words into lines of at most width, indented.
func wrap(s, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newApplyCommand(g *globalOptions) *cobra.Command {
	var file string
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply -f Clusterfile",
		Short: "Install a cluster image on the machines of a Clusterfile",
		Long: `Install the cluster image of a Clusterfile on its hosts over SSH.

Each node goes through the steps its roles and the image call for, in
this order:
` + wrap(strings.Join(apply.StepNames(), ", "), "  ", 76) + `
Nodes work in parallel, --jobs at a time. Every finished
step is recorded in a journal under --root (and copied to the first master),
so running apply again after a failure or an interruption does only what is
left. A node that fails stops there; the others go on, and apply ends
non-zero with a line per node. Hosts added to the Clusterfile are installed.
Hosts applied before that the Clusterfile no longer lists are left as they
are unless --prune is given: then they are drained and cleaned, after a
confirmation on a terminal (--force skips it; without a terminal --force is
required). --dry-run prints the plan, removals included, and changes
nothing.`,
		Example: `  hoist apply -f Clusterfile --accept-new-host-keys
  hoist apply -f Clusterfile --dry-run --format json
  hoist apply -f Clusterfile --prune --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf, err := loadClusterfile(file)
			if err != nil {
				return err
			}
			return runApply(cmd, g, cf, f)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "Clusterfile", "the Clusterfile")
	f.add(cmd)
	return cmd
}

func newRunCommand(g *globalOptions) *cobra.Command {
	var masters, nodes, user, password, key, passphrase, kubeconfig, target string
	var port int
	var tlsVerify, rewrite, passwordStdin, passphraseStdin bool
	var env []string
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "run IMAGE --masters IPs [--nodes IPs]",
		Short: "Install a cluster image on machines given by flags (a Clusterfile without the file)",
		Long: `Install a cluster image on machines given by flags, as apply does with a
Clusterfile: the cluster is named "default". IPs are comma-separated
addresses or ranges (10.0.0.2-10.0.0.9).`,
		Example: `  hoist run acme/platform:v1 --masters 10.0.0.2 --nodes 10.0.0.3-10.0.0.5 --pk ~/.ssh/id_ed25519 --accept-new-host-keys`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case passwordStdin && passphraseStdin:
				return errors.New("--passwd-stdin and --pk-passwd-stdin cannot both read standard input")
			case passwordStdin && password != "":
				return errors.New("--passwd and --passwd-stdin cannot be given together")
			case passphraseStdin && passphrase != "":
				return errors.New("--pk-passwd and --pk-passwd-stdin cannot be given together")
			case passwordStdin:
				var err error
				if password, err = readPassword(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("--passwd-stdin: %w", err)
				}
			case passphraseStdin:
				var err error
				if passphrase, err = readPassword(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("--pk-passwd-stdin: %w", err)
				}
			}
			c, err := clusterfile.ClusterFromFlags(args[0], masters, nodes, kubeconfig, clusterfile.SSH{User: user, Port: port, Password: password, PrivateKey: key, Passphrase: passphrase}, env)
			if err != nil {
				return err
			}
			if target != "" && c.Kubeconfig == "" {
				return errors.New("--registry goes with --kubeconfig: a cluster of hosts gets the image's registry on its own nodes")
			}
			if rewrite && target == "" {
				return errors.New("--rewrite-images needs --registry: where the images are")
			}
			f.registry, f.tlsVerify, f.rewrite = target, tlsVerify, rewrite
			return runApply(cmd, g, &clusterfile.Clusterfile{Cluster: *c}, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&masters, "masters", "m", "", "master addresses")
	fl.StringVarP(&nodes, "nodes", "n", "", "worker addresses")
	fl.StringVarP(&user, "user", "u", clusterfile.DefaultUser, "SSH user (sudo is used when not root)")
	fl.StringVarP(&password, "passwd", "p", "", "SSH password (prefer --passwd-stdin: arguments are visible to other users)")
	fl.BoolVar(&passwordStdin, "passwd-stdin", false, "read the SSH password from standard input (its first line)")
	fl.StringVar(&key, "pk", "", "SSH private key file")
	fl.StringVar(&passphrase, "pk-passwd", "", "passphrase of the private key (prefer --pk-passwd-stdin: arguments are visible to other users)")
	fl.BoolVar(&passphraseStdin, "pk-passwd-stdin", false, "read the private key's passphrase from standard input (its first line)")
	fl.IntVar(&port, "port", clusterfile.DefaultPort, "SSH port")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "an existing cluster's kubeconfig: launch the image's apps there, on no host")
	fl.StringVar(&target, "registry", "", "with --kubeconfig: push the bundled images to this registry (HOST:PORT) first, as <registry>/<host>/<path>")
	fl.BoolVar(&rewrite, "rewrite-images", false, "with --registry: point the workloads' images at their copies there (by digest), for nodes without mirrors of the original registries")
	fl.BoolVar(&tlsVerify, "tls-verify", true, "verify the registry's TLS certificate (false also allows plain HTTP)")
	fl.StringArrayVarP(&env, "env", "e", nil, "cluster env, KEY=VALUE (repeatable)")
	f.add(cmd)
	return cmd
}

// readPassword reads a password as docker login --password-stdin does:
// the first line, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var file, format string
	cmd := &cobra.Command{
		Use:   "status [-f Clusterfile]",
		Short: "Show the state of each node of the clusters applied from here",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var c *clusterfile.Cluster
			if file != "" {
				cf, err := loadClusterfile(file)
				if err != nil {
					return err
				}
				c = &cf.Cluster
			}
			rows, err := apply.Status(g.root, c)
			if err != nil {
				return err
			}
			if format != "" {
				return writeFormatted(cmd.OutOrStdout(), format, rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "CLUSTER\tNODE\tROLES\tSTATUS\tSTEPS\tERROR")
			for _, r := range rows {
				steps := ""
				if r.Steps > 0 {
					steps = fmt.Sprintf("%d/%d", r.Done, r.Steps)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Node, strings.Join(r.Roles, ","), r.Status, steps, truncate(oneLine(r.Error), 100))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "only the cluster of this Clusterfile, with its hosts not yet applied")
	cmd.Flags().StringVar(&format, "format", "", "json, or a Go template applied to the list of nodes")
	return cmd
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func newDeleteCommand(g *globalOptions) *cobra.Command {
	var file, nodesFlag, format string
	var force bool
	var jobs int
	cmd := &cobra.Command{
		Use:   "delete -f Clusterfile [--nodes IPs]",
		Short: "Remove a cluster, or some of its nodes, from the machines",
		Long: `Remove what apply installed: clean hooks, the registry service, the
/etc/hosts entry, containerd mirror files and the data directory, on every
node of the Clusterfile and of the journal, or on --nodes only.

It asks for confirmation on a terminal and refuses without one; --force
skips the question, and forgets nodes that cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf, err := loadClusterfile(file)
			if err != nil {
				return err
			}
			c := cf.Cluster
			var only []netip.Addr
			if nodesFlag != "" {
				if only, err = clusterfile.ParseIPs(nodesFlag); err != nil {
					return fmt.Errorf("--nodes: %w", err)
				}
			}
			d := &apply.Delete{Cluster: c, Plugins: cf.Plugins, Only: only, Force: force, Options: apply.Options{Root: g.root, Jobs: jobs}}
			defer d.Close()
			nodes, err := d.Targets()
			if err != nil {
				return err
			}
			if !force {
				if err := confirm(cmd, fmt.Sprintf("Delete cluster %s from %d node(s) (%s)?", c.Name, len(nodes), strings.Join(nodes, ", ")), "--force"); err != nil {
					return err
				}
			}
			// The image's clean hooks, when it is still in the store.
			if store, err := g.openStore(); err == nil {
				if img, err := store.Mount(cmd.Context(), c.Image); err == nil {
					d.ImageHooks(img.Rootfs)
					img.Unmount()
				}
				store.Close()
			}
			if format != "" && format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			rep, err := progress.New(cmd.OutOrStdout(), format, nodes)
			if err != nil {
				return err
			}
			d.Reporter = rep
			res, err := d.Run(cmd.Context())
			rep.Close()
			if format != "json" && res != nil {
				printSummary(cmd.OutOrStdout(), res)
			}
			if res != nil && res.Err() != nil {
				return res.Err()
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "Clusterfile", "the Clusterfile")
	f.StringVar(&nodesFlag, "nodes", "", "only these nodes (addresses or ranges, comma-separated)")
	f.BoolVar(&force, "force", false, "do not ask; forget nodes that cannot be reached")
	f.IntVar(&jobs, "jobs", 10, "nodes worked on at once")
	f.StringVar(&format, "format", "", "output: text or json (JSON lines)")
	return cmd
}

// confirm asks a yes/no question about a removal on the terminal; without
// a terminal it refuses, as an unattended removal must give the flags that
// consent (flags).
func confirm(cmd *cobra.Command, question, flags string) error {
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return fmt.Errorf("refusing to remove without confirmation: stdin is not a terminal (use %s)", flags)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("nothing removed: not confirmed")
}

func newKubeconfigCommand(g *globalOptions) *cobra.Command {
	var file string
	var acceptNew bool
	cmd := &cobra.Command{
		Use:   "kubeconfig -f Clusterfile",
		Short: "Print the admin kubeconfig of a cluster hoist brought up",
		Long: `Print the admin kubeconfig of a Kubernetes cluster that hoist brought
up, read from its first master over SSH (hoist keeps no copy of it):

  hoist kubeconfig -f Clusterfile > admin.conf && kubectl --kubeconfig admin.conf get nodes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf, err := loadClusterfile(file)
			if err != nil {
				return err
			}
			data, err := apply.Kubeconfig(cmd.Context(), cf.Cluster, apply.Options{Root: g.root, AcceptNewHostKeys: acceptNew})
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "Clusterfile", "the Clusterfile")
	cmd.Flags().BoolVar(&acceptNew, "accept-new-host-keys", false, "trust hosts not yet in hoist's known_hosts")
	return cmd
}

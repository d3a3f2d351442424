package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/apply"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
)

// applyFlags are the flags apply and run share.
type applyFlags struct {
	dryRun     bool
	format     string
	jobs       int
	maxUnavail int
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
	fl.IntVar(&f.maxUnavail, "max-unavailable", 1, "in an upgrade of Kubernetes: workers drained and upgraded at once (masters go one at a time)")
	fl.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust the SSH host key of a host seen for the first time (StrictHostKeyChecking=accept-new); a changed key is always refused")
	fl.StringSliceVar(&f.apps, "apps", nil, "apps to launch, in order, instead of the image's LAUNCH (comma-separated)")
	fl.StringArrayVar(&f.valueFiles, "values", nil, "Helm values FILE for every chart, or APP=FILE for app APP's, over APPENV (repeatable, in order)")
	fl.StringArrayVar(&f.set, "set", nil, "Helm value k=v for every chart, or APP:k=v for app APP's, after --values (repeatable)")
	fl.BoolVar(&f.prune, "prune", false, "remove (drain and clean) the hosts applied before that the Clusterfile no longer lists; asks first on a terminal")
	fl.BoolVar(&f.force, "force", false, "with --prune: remove without asking, and forget a removed host that cannot be reached once it is out of the cluster")
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
	if f.maxUnavail < 1 {
		return fmt.Errorf("--max-unavailable %d: want at least 1", f.maxUnavail)
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
		Options: apply.Options{Root: g.root, Binary: binary, Jobs: f.jobs, MaxUnavailable: f.maxUnavail, AcceptNewHostKeys: f.acceptNew,
			Apps: f.apps, ValueFiles: f.valueFiles, Set: f.set, Prune: f.prune, Force: f.force, DryRun: f.dryRun,
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
	// Kept before the nodes are touched: an apply that fails half-way
	// still leaves them to a delete without -f.
	if err := apply.SaveClusterfile(g.root, cf); err != nil {
		return err
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
step is recorded in a journal under --root (and copied to a master),
so running apply again after a failure or an interruption does only what is
left. A node that fails stops there; the others go on, and apply ends
non-zero with a line per node. Hosts added to the Clusterfile are installed.
Hosts applied before that the Clusterfile no longer lists are left as they
are unless --prune is given: then they are drained and cleaned, after a
confirmation on a terminal (--force skips it; without a terminal --force is
required). --dry-run prints the plan, removals included, and changes
nothing. The Clusterfile applied is kept under --root, without its
secrets, for status and delete without -f.

An image of a newer Kubernetes (the next patch or minor) upgrades the
running cluster in kubeadm's order: every node must answer, a backup is
taken to --root first, then the masters are upgraded one at a time and
the workers --max-unavailable at a time (drained, upgraded, uncordoned);
a downgrade or a skipped minor is refused before anything changes.`,
		Example: `  hoist apply -f Clusterfile --accept-new-host-keys
  hoist apply -f Clusterfile --dry-run --format json
  hoist apply -f Clusterfile --prune --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := oneSpelling(cmd, "file", "Clusterfile"); err != nil {
				return err
			}
			cf, err := loadClusterfile(file)
			if err != nil {
				return err
			}
			return runApply(cmd, g, cf, f)
		},
	}
	addFileFlag(cmd, &file, "Clusterfile", "the Clusterfile")
	f.add(cmd)
	return cmd
}

// sshSecrets are the flags that give an SSH password and a private key's
// passphrase: run's, and delete's for a kept Clusterfile, which holds
// none. The -stdin forms keep them out of the process's arguments.
type sshSecrets struct {
	password, passphrase           string
	passwordStdin, passphraseStdin bool
}

// add adds the flags; passwordShort is --passwd's shorthand, if any.
func (s *sshSecrets) add(cmd *cobra.Command, passwordShort string) {
	fl := cmd.Flags()
	fl.StringVarP(&s.password, "passwd", passwordShort, "", "SSH password (prefer --passwd-stdin: arguments are visible to other users)")
	fl.BoolVar(&s.passwordStdin, "passwd-stdin", false, "read the SSH password from standard input (its first line)")
	fl.StringVar(&s.passphrase, "pk-passwd", "", "passphrase of the private key (prefer --pk-passwd-stdin: arguments are visible to other users)")
	fl.BoolVar(&s.passphraseStdin, "pk-passwd-stdin", false, "read the private key's passphrase from standard input (its first line)")
}

// given tells whether any of the flags was given.
func (s *sshSecrets) given() bool {
	return s.password != "" || s.passphrase != "" || s.passwordStdin || s.passphraseStdin
}

// read reads the secret that comes from standard input, if one does.
func (s *sshSecrets) read(in io.Reader) error {
	var err error
	switch {
	case s.passwordStdin && s.passphraseStdin:
		return errors.New("--passwd-stdin and --pk-passwd-stdin cannot both read standard input")
	case s.passwordStdin && s.password != "":
		return errors.New("--passwd and --passwd-stdin cannot be given together")
	case s.passphraseStdin && s.passphrase != "":
		return errors.New("--pk-passwd and --pk-passwd-stdin cannot be given together")
	case s.passwordStdin:
		if s.password, err = readPassword(in); err != nil {
			return fmt.Errorf("--passwd-stdin: %w", err)
		}
	case s.passphraseStdin:
		if s.passphrase, err = readPassword(in); err != nil {
			return fmt.Errorf("--pk-passwd-stdin: %w", err)
		}
	}
	return nil
}

func newRunCommand(g *globalOptions) *cobra.Command {
	var file, masters, nodes, user, key, kubeconfig, target string
	var port int
	var tlsVerify, rewrite bool
	var env []string
	var secrets sshSecrets
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "run IMAGE --masters IPs [--nodes IPs]",
		Short: "Install a cluster image on machines given by flags (a Clusterfile without the file)",
		Long: `Install a cluster image on machines given by flags, as apply does with a
Clusterfile: the cluster is named "default". IPs are comma-separated
addresses or ranges (10.0.0.2-10.0.0.9). The Clusterfile the flags make is
kept under --root, without its secrets, for status and delete --name
default. "run -f Clusterfile", as sealer's, is apply -f.`,
		Example: `  hoist run acme/platform:v1 --masters 10.0.0.2 --nodes 10.0.0.3-10.0.0.5 --pk ~/.ssh/id_ed25519 --accept-new-host-keys`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := oneSpelling(cmd, "file", "Clusterfile"); err != nil {
				return err
			}
			if file != "" {
				return runClusterfile(cmd, g, file, args, f)
			}
			if len(args) == 0 {
				return errors.New("run needs IMAGE (or a Clusterfile with -f)")
			}
			if err := secrets.read(cmd.InOrStdin()); err != nil {
				return err
			}
			c, err := clusterfile.ClusterFromFlags(args[0], masters, nodes, kubeconfig, clusterfile.SSH{User: user, Port: port, Password: secrets.password, PrivateKey: key, Passphrase: secrets.passphrase}, env)
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
	secrets.add(cmd, "p")
	fl.StringVar(&key, "pk", "", "SSH private key file")
	fl.IntVar(&port, "port", clusterfile.DefaultPort, "SSH port")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "an existing cluster's kubeconfig: launch the image's apps there, on no host")
	fl.StringVar(&target, "registry", "", "with --kubeconfig: push the bundled images to this registry (HOST:PORT) first, as <registry>/<host>/<path>")
	fl.BoolVar(&rewrite, "rewrite-images", false, "with --registry: point the workloads' images at their copies there (by digest), for nodes without mirrors of the original registries")
	fl.BoolVar(&tlsVerify, "tls-verify", true, "verify the registry's TLS certificate (false also allows plain HTTP)")
	fl.StringArrayVarP(&env, "env", "e", nil, "cluster env, KEY=VALUE (repeatable)")
	addFileFlag(cmd, &file, "", "install this Clusterfile instead, as apply -f does")
	f.add(cmd)
	return cmd
}

// runClusterfile is sealer's "run -f Clusterfile": apply -f. The flags
// that describe a cluster are refused rather than merged into the file's,
// as sealer would: which of the two wins is not obvious.
func runClusterfile(cmd *cobra.Command, g *globalOptions, file string, args []string, f applyFlags) error {
	if len(args) > 0 {
		return fmt.Errorf("run -f %s: the Clusterfile names the image; give IMAGE or -f, not both", file)
	}
	for _, name := range []string{"masters", "nodes", "user", "passwd", "passwd-stdin", "pk", "pk-passwd", "pk-passwd-stdin", "port", "env", "kubeconfig", "registry", "rewrite-images", "tls-verify"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("run -f %s installs the Clusterfile as apply -f does: --%s goes without it", file, name)
		}
	}
	cf, err := loadClusterfile(file)
	if err != nil {
		return err
	}
	return runApply(cmd, g, cf, f)
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
	var file, name, format string
	cmd := &cobra.Command{
		Use:   "status [-f Clusterfile | --name NAME]",
		Short: "Show the state of each node of the clusters applied from here",
		Long: `Show the state of each node of the clusters applied from here, from their
journals under --root, each against the Clusterfile apply or run kept there
(hosts listed but never applied are "not applied", hosts applied but no
longer listed "to remove"); with -f, the cluster of that Clusterfile; with
--name, one cluster applied from here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rows []apply.NodeStatus
			var err error
			switch {
			case file != "" && name != "":
				return errors.New("-f and --name both name a cluster: give one")
			case file != "":
				cf, err := loadClusterfile(file)
				if err != nil {
					return err
				}
				rows, err = apply.Status(g.root, &cf.Cluster)
				if err != nil {
					return err
				}
			case name != "":
				rows, err = apply.NamedStatus(g.root, name)
			default:
				rows, err = apply.Status(g.root, nil)
			}
			if err != nil {
				return err
			}
			if format != "" {
				return writeFormatted(cmd.OutOrStdout(), format, rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "CLUSTER\tNODE\tROLES\tVERSION\tSTATUS\tSTEPS\tERROR")
			for _, r := range rows {
				steps := ""
				if r.Steps > 0 {
					steps = fmt.Sprintf("%d/%d", r.Done, r.Steps)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Node, strings.Join(r.Roles, ","), r.Version, r.Status, steps, truncate(oneLine(r.Error), 100))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "only the cluster of this Clusterfile, with its hosts not yet applied")
	cmd.Flags().StringVar(&name, "name", "", "only this cluster applied from here")
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
	var file, name, nodesFlag, format string
	var force, all bool
	var jobs int
	var env []string
	var secrets sshSecrets
	cmd := &cobra.Command{
		Use:   "delete [-f Clusterfile | --name NAME | --all] [--nodes IPs]",
		Short: "Remove a cluster, or some of its nodes, from the machines",
		Long: `Remove what apply installed: clean hooks, the registry service, the
/etc/hosts entry, containerd mirror files and the data directory, on every
node of the Clusterfile and of the journal, or on --nodes only.

The cluster is that of -f (default ./Clusterfile), or, with --name, one
applied from here, or, with --all, every one applied from here: those two
read the Clusterfile that apply or run kept under --root. That file holds
no secret: an SSH password or a key's passphrase that its hosts need is
read from standard input (--passwd-stdin, --pk-passwd-stdin; one serves
every host that needs one), and env values, which it lacks too, are given
to the clean hooks with -e.

It asks for confirmation on a terminal and refuses without one; --force
skips the question, and forgets nodes that cannot be reached.`,
		Example: `  hoist delete -f Clusterfile
  hoist delete --name demo --nodes 10.0.0.9 --force
  hoist delete --name default --passwd-stdin < pwfile
  hoist delete --all --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := oneSpelling(cmd, "file", "Clusterfile"); err != nil {
				return err
			}
			fromFile := cmd.Flags().Changed("file") || cmd.Flags().Changed("Clusterfile")
			switch {
			case name != "" && (fromFile || all):
				return errors.New("--name names one cluster applied from here: give it, -f or --all")
			case all && nodesFlag != "":
				return errors.New("--all deletes whole clusters: --nodes goes without it")
			case fromFile && secrets.given():
				return errors.New("--passwd, --pk-passwd and their -stdin forms go with --name or --all: a Clusterfile given with -f carries its own credentials")
			case format != "" && format != "text" && format != "json":
				return fmt.Errorf("--format %q: want text or json", format)
			}
			if err := secrets.read(cmd.InOrStdin()); err != nil {
				return err
			}
			var only []netip.Addr
			if nodesFlag != "" {
				var err error
				if only, err = clusterfile.ParseIPs(nodesFlag); err != nil {
					return fmt.Errorf("--nodes: %w", err)
				}
			}
			var deletes []*apply.Delete
			var targets [][]string
			defer func() {
				for _, d := range deletes {
					d.Close()
				}
			}()
			add := func(cf *clusterfile.Clusterfile, lacking clusterfile.Lacking) error {
				c := cf.Cluster
				if err := c.SetEnv(env); err != nil {
					return fmt.Errorf("-e %w", err)
				}
				d := &apply.Delete{Cluster: c, Plugins: cf.Plugins, Only: only, Force: force, Lacking: lacking, Options: apply.Options{Root: g.root, Jobs: jobs}}
				deletes = append(deletes, d)
				nodes, err := d.Targets()
				var se *apply.SecretsError
				if errors.As(err, &se) {
					return fmt.Errorf("%w: give it on standard input (%s), or the whole Clusterfile with -f", err, secretFlags(se))
				}
				targets = append(targets, nodes)
				return err
			}
			if name != "" || (all && !fromFile) {
				names := []string{name}
				if all {
					var err error
					if names, err = apply.Clusters(g.root); err != nil {
						return err
					}
					if len(names) == 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "nothing to delete: no cluster was applied from here (%s)\n", layout.Local{Root: g.root}.Clusters())
						return nil
					}
				}
				for _, n := range names {
					kept, err := apply.KeptClusterfile(g.root, n)
					if errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("%w; delete it with -f and its Clusterfile", err)
					}
					if err != nil {
						return err
					}
					if err := add(&kept.Clusterfile, kept.Fill(secrets.password, secrets.passphrase)); err != nil {
						return err
					}
				}
			} else {
				cf, err := loadClusterfile(file)
				if errors.Is(err, fs.ErrNotExist) && !fromFile {
					return fmt.Errorf("%w (name one with -f, or a cluster applied from here with --name, or use --all)", err)
				}
				if err != nil {
					return err
				}
				if err := add(cf, clusterfile.Lacking{}); err != nil {
					return err
				}
			}
			if !force {
				var what []string
				for i, d := range deletes {
					what = append(what, fmt.Sprintf("cluster %s from %d node(s) (%s)", d.Cluster.Name, len(targets[i]), strings.Join(targets[i], ", ")))
				}
				question := "Delete " + what[0] + "?"
				if len(what) > 1 {
					question = fmt.Sprintf("Delete %d clusters: %s?", len(what), strings.Join(what, "; "))
				}
				if err := confirm(cmd, question, "--force"); err != nil {
					return err
				}
			}
			var errs []error
			for i, d := range deletes {
				if err := runDelete(cmd, g, d, targets[i], format, len(deletes) > 1); err != nil {
					if len(deletes) > 1 {
						err = fmt.Errorf("cluster %s: %w", d.Cluster.Name, err)
					}
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	addFileFlag(cmd, &file, "Clusterfile", "the Clusterfile")
	f.StringVar(&name, "name", "", "the cluster of this name applied from here, from the Clusterfile kept under --root")
	f.BoolVarP(&all, "all", "a", false, "every cluster applied from here, each from the Clusterfile kept under --root (with -f, as sealer's -a: the whole cluster of the Clusterfile)")
	f.StringVar(&nodesFlag, "nodes", "", "only these nodes (addresses or ranges, comma-separated)")
	f.BoolVar(&force, "force", false, "do not ask; forget nodes that cannot be reached")
	f.IntVar(&jobs, "jobs", 10, "nodes worked on at once")
	f.StringVar(&format, "format", "", "output: text or json (JSON lines)")
	f.StringArrayVarP(&env, "env", "e", nil, "env KEY=VALUE for the clean hooks, over the Clusterfile's (repeatable)")
	// No -p: sealer's delete has -p for --prune.
	secrets.add(cmd, "")
	return cmd
}

// secretFlags names the flags that give the secrets a delete lacks.
func secretFlags(e *apply.SecretsError) string {
	var flags []string
	if len(e.Password) > 0 {
		flags = append(flags, "--passwd-stdin")
	}
	if len(e.Passphrase) > 0 {
		flags = append(flags, "--pk-passwd-stdin")
	}
	return strings.Join(flags, ", ")
}

// runDelete deletes one cluster from the nodes its Targets listed, with
// the clean hooks of its image too when the image is still in the store.
func runDelete(cmd *cobra.Command, g *globalOptions, d *apply.Delete, nodes []string, format string, several bool) error {
	if store, err := g.openStore(); err == nil {
		if img, err := store.Mount(cmd.Context(), d.Cluster.Image); err == nil {
			d.ImageHooks(img.Rootfs)
			img.Unmount()
		}
		store.Close()
	}
	out := cmd.OutOrStdout()
	rep, err := progress.New(out, format, nodes)
	if err != nil {
		return err
	}
	d.Reporter = rep
	res, err := d.Run(cmd.Context())
	rep.Close()
	if format != "json" && res != nil {
		if several {
			fmt.Fprintf(out, "\ncluster %s:", d.Cluster.Name)
		}
		printSummary(out, res)
	}
	if res != nil && res.Err() != nil {
		return res.Err()
	}
	return err
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
up, read over SSH from a master that answers, with the address of that
master's API server (hoist keeps no copy of it):

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

package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/chartvalues"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/registry"
	"github.com/hoistdev/hoist/scratch"
)

// Image is the cluster image an apply installs.
type Image struct {
	Rootfs string // its tree, mounted read-only
	Digest string
	Meta   *metadata.Metadata
}

// Options of Apply and Delete.
type Options struct {
	Root              string // hoist's --root: the state of clusters, known_hosts
	Binary            string // the hoist binary installed on the nodes
	Jobs              int    // nodes worked on at once
	AcceptNewHostKeys bool
	Reporter          progress.Reporter
	// Dial reaches a node; nil is SSH (with a pool of connections). Tests
	// give their own executors.
	Dial func(ctx context.Context, cfg ssh.Config) (ssh.Executor, error)
	// Prune removes (drains and cleans) the nodes the journal has that
	// the Clusterfile no longer lists; without it they are left alone.
	Prune bool
	// Force: a node Prune removes that cannot be reached (a dead machine)
	// is forgotten once it is out of the cluster, rather than failed.
	Force bool
	// MaxUnavailable is how many workers an upgrade of Kubernetes drains
	// and upgrades at once (at least 1); masters go one at a time.
	MaxUnavailable int
	// DryRun: Plan writes nothing (no PKI, no lock), checks KUBEVERSION
	// and the running cluster's version, and asks the cluster what the
	// apps would change.
	DryRun bool
	// Apps replaces the image's LAUNCH list; ValueFiles and Set are Helm
	// values: FILE and K=V for every chart, APP=FILE and APP:K=V for one
	// app's (chartvalues.Flags, composed as at build).
	Apps       []string
	ValueFiles []string
	Set        []string
	// PushTo is a registry (HOST:PORT) the bundled images are pushed to
	// before the apps launch (an existing cluster without hoist's
	// registry); PushInsecure allows plain HTTP and unverified TLS there.
	PushTo       string
	PushInsecure bool
	// RewriteImages, a registry (HOST:PORT) the bundled images were pushed
	// to, points the workloads' images there (for nodes without mirrors).
	RewriteImages string
}

// NodeError is the failure of one node's step.
type NodeError struct {
	Node string
	Step string
	Err  error
}

func (e *NodeError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Node, e.Step, e.Err) }
func (e *NodeError) Unwrap() error { return e.Err }

// Result is the outcome of Apply or Delete per node.
type Result struct {
	Nodes  []string         // in the order of the Clusterfile
	Errors map[string]error // nil for nodes that succeeded
	// Kept are the nodes no longer listed that an apply without Prune
	// left as they are.
	Kept []string
}

// Err is nil when every node (and the apps) succeeded, else an error
// naming the failed nodes.
func (r *Result) Err() error {
	var failed []string
	nodes := 0
	for _, n := range r.Nodes {
		if n == AppsNode {
			continue
		}
		nodes++
		if r.Errors[n] != nil {
			failed = append(failed, n)
		}
	}
	var msgs []string
	if len(failed) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d of %d nodes failed: %s", len(failed), nodes, strings.Join(failed, ", ")))
	}
	if err := r.Errors[AppsNode]; err != nil {
		msgs = append(msgs, "apps failed: "+err.Error())
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Apply is hoist apply: the cluster of a Clusterfile brought to its image.
// Plan first (a dry run stops there), then Run; Close releases the
// cluster's lock.
type Apply struct {
	Cluster clusterfile.Cluster
	// Plugins are the Clusterfile's; the image's are added to them.
	Plugins []clusterfile.Plugin
	Image   Image
	Options

	r      *runner
	plan   *Plan
	unlock func()
}

// Plan opens the cluster's journal (and, unless a dry run, takes the
// cluster's lock and makes its PKI) and plans the apply. When an earlier
// apply made the cluster, it asks a master whether the cluster can take
// the image's version, and plans the upgrade it brings. A dry run also
// refuses an image whose KUBEVERSION the cluster is outside of, and lists
// what the apps would change when the cluster can be asked.
func (a *Apply) Plan(ctx context.Context) (*Plan, error) {
	fromImage, err := imagePlugins(a.Image.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Cluster.Image, err)
	}
	if a.Image, err = withLaunch(a.Image, a.Cluster.Image, a.Cluster.Launch); err != nil {
		return nil, err
	}
	if !a.DryRun {
		// A dry run writes nothing, not even the lock file.
		if a.unlock, err = lock(a.Root, a.Cluster.Name); err != nil {
			return nil, err
		}
	}
	r, err := prepare(a.Cluster, mergePlugins(fromImage, a.Plugins), a.Image, a.Options)
	if err != nil {
		return nil, err
	}
	a.r, a.plan = r, &r.plan
	if a.DryRun {
		if err := r.checkKubeVersion(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.checkCluster(ctx); err != nil {
		if !a.DryRun {
			// Status shows the refusal as the apps'.
			r.journal.SetFailed(AppsNode, stepClusterVersion, err)
		}
		return nil, err
	}
	if a.DryRun {
		a.plan.PreviewErr = previewApps(ctx, a.Cluster, a.Image, a.Options, a.plan)
	}
	return a.plan, nil
}

// Targets are the rows of the apply's progress: the nodes, those it
// removes, and the apps when it launches or pushes any.
func (a *Apply) Targets() []string {
	var nodes []string
	for _, n := range a.plan.Nodes {
		nodes = append(nodes, n.Node)
	}
	nodes = append(nodes, a.plan.Removed()...)
	if len(a.plan.Apps) > 0 || a.PushTo != "" {
		nodes = append(nodes, AppsNode)
	}
	return nodes
}

// Run brings every node of the cluster to the plan: each node's steps in
// order, nodes in parallel (Jobs at a time), each finished step recorded
// in the journal. A node that fails stops at its failed step; the others
// go on. Nodes the Clusterfile no longer lists are cleaned when the plan
// prunes, and left alone otherwise.
func (a *Apply) Run(ctx context.Context) (*Result, error) {
	if a.r == nil {
		return nil, errors.New("apply: Run before Plan")
	}
	return a.r.apply(ctx, a.Reporter)
}

// Close releases the cluster's lock.
func (a *Apply) Close() {
	if a.unlock != nil {
		a.unlock()
		a.unlock = nil
	}
}

// prepare is what an apply needs besides the cluster: the journal, the
// PKI, the runtime, the steps and the plan.
func prepare(c clusterfile.Cluster, plugins []clusterfile.Plugin, image Image, opts Options) (*runner, error) {
	state := layout.Local{Root: opts.Root}.Cluster(c.Name)
	j, err := OpenJournal(state.Journal(), c.Name)
	if err != nil {
		return nil, err
	}
	hoistDigest, err := agent.FileDigest(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("hoist binary: %w", err)
	}
	var tls clusterTLS
	if opts.DryRun {
		// Without a PKI yet, the steps that install it are to do: an
		// empty TLS matches no journal key.
		tls, _, err = readTLS(state.PKI(), c)
	} else {
		tls, err = loadTLS(state.PKI(), c)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster PKI: %w", err)
	}
	r := &runner{c: c, opts: opts, journal: j, plugins: plugins, hoistDigest: hoistDigest, tls: tls, image: image,
		registryHosts: registry.Hosts(filepath.Join(image.Rootfs, layout.ImageRegistry)), packed: map[bool]packedTree{}, dir: nodeDir(c)}
	r.in = withNodes(step.Input{ImageDigest: image.Digest, HoistDigest: hoistDigest, TLSDigest: tls.Digest(), Plugins: plugins}, c)
	if _, err := os.Stat(filepath.Join(image.Rootfs, layout.ImageRegistry)); err != nil {
		r.in.NoRegistry = true
	}
	if r.rt, err = detectRuntime(c, step.Image{Rootfs: image.Rootfs, Meta: image.Meta, Dir: r.dir, Hoist: r.remoteHoist()}); err != nil {
		return nil, err
	}
	apps, err := appSteps(c, image, r.rt != nil, opts)
	if err != nil {
		return nil, err
	}
	// Templates go with the rootfs, to nodes; a cluster without hosts
	// gets neither.
	if len(c.Nodes) > 0 {
		if r.rendered, err = renderRootfs(image.Rootfs, renderEnv(image.Meta, c.Env)); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Image, err)
		}
		configs, err := configFiles(image.Rootfs, c.Configs)
		if err != nil {
			return nil, fmt.Errorf("the Clusterfile's %w", err)
		}
		r.rendered = append(r.rendered, configs...)
	}
	r.steps = r.stepList(r.rt)
	r.membership()
	r.apps = apps
	r.makePlan()
	return r, nil
}

// makePlan plans the run from its input (again once the running cluster
// said which upgrade it brings).
func (r *runner) makePlan() {
	r.plan = makePlan(&r.in, r.steps, r.apps, r.journal, r.opts.Prune)
	r.plan.Upgrade = r.in.Upgrade
	r.plan.MaxUnavailable = r.maxUnavailable()
	if r.c.Kubeconfig == "" && r.rt == nil && r.image.Meta != nil && len(r.image.Meta.Launch.Apps) > 0 {
		// An image that does not bring up Kubernetes, on hosts without a
		// kubeconfig, has nowhere to launch apps.
		r.plan.AppsNote = "not launched: no Kubernetes cluster (the image does not bring one up: give spec.kubeconfig)"
	}
}

func (r *runner) maxUnavailable() int { return max(1, r.opts.MaxUnavailable) }

// withNodes is the input with the cluster and its nodes' addresses.
func withNodes(in step.Input, c clusterfile.Cluster) step.Input {
	in.Cluster, in.IPs = c, nil
	for _, n := range c.Nodes {
		in.IPs = append(in.IPs, n.IP.String())
	}
	sort.Strings(in.IPs)
	return in
}

// appSteps lists the apps to launch with their keys: what, launched
// again, would change the result (the image, the app's definition, the
// env, the values).
func appSteps(c clusterfile.Cluster, image Image, kube bool, opts Options) ([]PlannedStep, error) {
	if image.Meta == nil || (c.Kubeconfig == "" && !kube) {
		return nil, nil
	}
	names := image.Meta.Launch.Apps
	if opts.Apps != nil {
		names = opts.Apps
	}
	flags := chartvalues.Flags{Files: opts.ValueFiles, Set: opts.Set}
	// A per-app flag that names no Helm app of the image is a typo: the
	// chart would run with values the user did not mean.
	if err := flags.CheckApps(image.Meta.Apps); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Image, err)
	}
	var steps []PlannedStep
	for _, name := range names {
		app := image.Meta.App(name)
		if app == nil {
			return nil, fmt.Errorf("%s: no app %q (it has: %s)", c.Image, name, strings.Join(appNames(image.Meta), ", "))
		}
		// Only the values of this app's chart: another app's --set
		// APP:K=V does not launch this one again.
		own := flags.For(name)
		var values [][]byte
		for _, f := range own.Files {
			_, file := chartvalues.SplitFile(f)
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("--values %s: %w", f, err)
			}
			values = append(values, data)
		}
		key := step.Hash(struct {
			Image   string
			App     metadata.App
			Env     map[string]string
			Values  [][]byte
			Set     []string
			Rewrite string
			// Omitted when empty: the keys of apps without files
			// stay those journals recorded before files came.
			Files []clusterfile.AppFile `json:",omitempty"`
		}{image.Digest, *app, c.Env, values, own.Set, opts.RewriteImages, c.Launch.AppFiles[name]})
		steps = append(steps, PlannedStep{Name: name, Key: key})
	}
	if len(image.Meta.Launch.Cmds) > 0 && opts.Apps == nil {
		// Not step.Hash: journals record this key since CMDS came.
		h := sha256.Sum256(fmt.Appendf(nil, "%s %q %v", image.Digest, image.Meta.Launch.Cmds, c.Env))
		steps = append(steps, PlannedStep{Name: stepCmds, Key: "sha256:" + hex.EncodeToString(h[:])})
	}
	return steps, nil
}

// stepCmds is the app step of the image's CMDS.
const stepCmds = "cmds"

func appNames(m *metadata.Metadata) []string {
	var out []string
	for _, a := range m.Apps {
		out = append(out, a.Name)
	}
	return out
}

// Kubeconfig returns the admin kubeconfig of a cluster hoist brought up,
// from a master of it that answers (master), with a server this machine
// reaches.
func Kubeconfig(ctx context.Context, c clusterfile.Cluster, opts Options) ([]byte, error) {
	if len(c.Masters()) == 0 {
		return nil, fmt.Errorf("cluster %s has no master", c.Name)
	}
	r := &runner{c: c, opts: opts}
	defer r.close()
	rt := runtimes[0]
	if j, err := OpenJournal(layout.Local{Root: opts.Root}.Cluster(c.Name).Journal(), c.Name); err == nil {
		r.journal = j
		if recorded := clusterRuntime(j); recorded != nil {
			rt = recorded
		}
	}
	e, ip, err := r.master(ctx)
	if err != nil {
		return nil, err
	}
	data, err := rt.Kubeconfig(ctx, e, ip)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ip, err)
	}
	return data, nil
}

// useKubeconfig fetches the admin kubeconfig from a master for the apps:
// kept in the apply's temporary directory, never in the state.
func (r *runner) useKubeconfig(ctx context.Context) error {
	master, ip, err := r.master(ctx)
	if err != nil {
		return fmt.Errorf("a master of the cluster: %w", err)
	}
	data, err := r.rt.Kubeconfig(ctx, master, ip)
	if err != nil {
		return fmt.Errorf("the admin kubeconfig: %w", err)
	}
	file := filepath.Join(r.tmpDir, "admin.conf")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return err
	}
	r.c.Kubeconfig = file
	return nil
}

// tmp makes the run's temporary directory under --root.
func (r *runner) tmp(prefix string) error {
	var err error
	r.tmpDir, err = scratch.Dir(layout.Local{Root: r.opts.Root}.Tmp(), prefix)
	return err
}

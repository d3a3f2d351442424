package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/scratch"
)

// Files apply writes on a node outside the cluster's directory.
const (
	CertsDir  = "/etc/containerd/certs.d"
	HostsFile = "/etc/hosts"
)

// NodeDir is the cluster's directory on a node.
func NodeDir(c clusterfile.Cluster) string { return path.Join(c.DataRoot, c.Name) }

// StateDir is the cluster's directory on this machine, under hoist's root.
func StateDir(root, cluster string) string { return filepath.Join(root, "clusters", cluster) }

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
	// Prune removes (drains and cleans) the nodes the journal has that
	// the Clusterfile no longer lists; without it they are left alone.
	Prune bool
	// DryRun: Prepare only plans, and writes nothing (no PKI).
	DryRun bool
	// Apps replaces the image's LAUNCH list; ValueFiles and Set are Helm
	// values for every chart.
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

// runner holds what the steps of an apply share.
type runner struct {
	c           clusterfile.Cluster
	opts        Options
	journal     *Journal
	pool        *ssh.Pool
	plugins     []clusterfile.Plugin
	hoistDigest string
	tls         TLS
	image       Image
	// registryHosts are the registry hosts bundled in the image.
	registryHosts []string
	noRegistry    bool
	// kube is the Kubernetes runtime, for images that bring it up;
	// joined tells that a node joined (or the first master initialised)
	// during this apply.
	kube   *kubeadm.Runtime
	joined atomic.Bool
	setUp  sync.Map // nodes whose kube-node step ran in this apply
	// deleteCluster: every node of the cluster is being deleted.
	deleteCluster bool

	packMu sync.Mutex
	packed map[bool]Packed // with registry/ → packed file
	tmpDir string
}

// Plugins merges the image's plugins with the Clusterfile's: one of the
// Clusterfile with the same name replaces the image's.
func Plugins(image, fromClusterfile []clusterfile.Plugin) []clusterfile.Plugin {
	out := slices.Clone(fromClusterfile)
	for _, p := range image {
		if !slices.ContainsFunc(fromClusterfile, func(q clusterfile.Plugin) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	return out
}

// ImagePlugins reads the Plugin documents of an image's plugins/.
func ImagePlugins(rootfs string) ([]clusterfile.Plugin, error) {
	files, _ := filepath.Glob(filepath.Join(rootfs, "plugins", "*.y*ml"))
	sort.Strings(files)
	var out []clusterfile.Plugin
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ps, err := clusterfile.ParsePlugins("plugins/"+filepath.Base(f), data)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		out = append(out, ps...)
	}
	return out, nil
}

// RegistryHosts lists the registry hosts whose images the image bundles in
// registry/ (a host's ':' is stored as '_').
func RegistryHosts(rootfs string) []string {
	entries, _ := os.ReadDir(filepath.Join(rootfs, "registry", "docker", "registry", "v2", "repositories"))
	var hosts []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		h := e.Name()
		if i := strings.LastIndexByte(h, '_'); i > 0 && strings.Trim(h[i+1:], "0123456789") == "" && i+1 < len(h) {
			h = h[:i] + ":" + h[i+1:]
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// Prepare is what Apply needs besides the cluster: the journal, the plan
// input and the plugins. Dry runs stop after it.
type Prepared struct {
	Journal *Journal
	Input   PlanInput
	TLS     TLS
	Plan    Plan
	// Kube is the Kubernetes runtime, for an image that brings it up.
	Kube *kubeadm.Runtime
}

// Prepare opens the cluster's journal and makes the plan.
func Prepare(c clusterfile.Cluster, plugins []clusterfile.Plugin, image Image, opts Options) (*Prepared, error) {
	state := StateDir(opts.Root, c.Name)
	j, err := OpenJournal(filepath.Join(state, "journal.json"), c.Name)
	if err != nil {
		return nil, err
	}
	hoistDigest, err := FileDigest(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("hoist binary: %w", err)
	}
	var tls TLS
	if opts.DryRun {
		// Without a PKI yet, the steps that install it are to do: an
		// empty TLS matches no journal key.
		tls, _, err = ReadTLS(filepath.Join(state, "pki"), c)
	} else {
		tls, err = LoadTLS(filepath.Join(state, "pki"), c)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster PKI: %w", err)
	}
	in := PlanInput{ImageDigest: image.Digest, HoistDigest: hoistDigest, TLSDigest: tls.Digest(), Plugins: plugins}
	if _, err := os.Stat(filepath.Join(image.Rootfs, "registry")); err != nil {
		in.NoRegistry = true
	}
	kube, err := kubeRuntime(c, image)
	if err != nil {
		return nil, err
	}
	in.Kubernetes = kube != nil
	in.HoistNetwork = kube != nil && (image.Meta == nil || len(image.Meta.CNI) == 0)
	if in.Apps, err = appSteps(c, image, in.Kubernetes, opts); err != nil {
		return nil, err
	}
	plan := MakePlan(c, j, in, opts.Prune)
	if c.Kubeconfig == "" && !in.Kubernetes && image.Meta != nil && len(image.Meta.Launch.Apps) > 0 {
		// An image that does not bring up Kubernetes, on hosts without a
		// kubeconfig, has nowhere to launch apps.
		plan.AppsNote = "not launched: no Kubernetes cluster (the image does not bring one up: give spec.kubeconfig)"
	}
	return &Prepared{Journal: j, Input: in, TLS: tls, Plan: plan, Kube: kube}, nil
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
	var values [][]byte
	for _, f := range opts.ValueFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		values = append(values, data)
	}
	var steps []PlannedStep
	for _, name := range names {
		app := image.Meta.App(name)
		if app == nil {
			return nil, fmt.Errorf("%s: no app %q (it has: %s)", c.Image, name, strings.Join(appNames(image.Meta), ", "))
		}
		h := sha256.New()
		json.NewEncoder(h).Encode(struct {
			Image   string
			App     metadata.App
			Env     map[string]string
			Values  [][]byte
			Set     []string
			Rewrite string
		}{image.Digest, *app, c.Env, values, opts.Set, opts.RewriteImages})
		steps = append(steps, PlannedStep{Name: name, Key: "sha256:" + hex.EncodeToString(h.Sum(nil))})
	}
	if len(image.Meta.Launch.Cmds) > 0 && opts.Apps == nil {
		h := sha256.Sum256(fmt.Appendf(nil, "%s %q %v", image.Digest, image.Meta.Launch.Cmds, c.Env))
		steps = append(steps, PlannedStep{Name: StepCmds, Key: "sha256:" + hex.EncodeToString(h[:])})
	}
	return steps, nil
}

// StepCmds is the app step of the image's CMDS.
const StepCmds = "cmds"

func appNames(m *metadata.Metadata) []string {
	var out []string
	for _, a := range m.Apps {
		out = append(out, a.Name)
	}
	return out
}

// Apply brings every node of the cluster to the plan: each node's steps in
// order, nodes in parallel (opts.Jobs at a time), each finished step
// recorded in the journal. A node that fails stops at its failed step; the
// others go on. Nodes the Clusterfile no longer lists are cleaned when the
// plan prunes, and left alone otherwise.
func Apply(ctx context.Context, c clusterfile.Cluster, plugins []clusterfile.Plugin, image Image, p *Prepared, opts Options) (*Result, error) {
	r := &runner{c: c, opts: opts, journal: p.Journal, pool: ssh.NewPool(), plugins: plugins,
		hoistDigest: p.Input.HoistDigest, tls: p.TLS, image: image, registryHosts: RegistryHosts(image.Rootfs), noRegistry: p.Input.NoRegistry,
		packed: map[bool]Packed{}, kube: p.Kube}
	defer r.pool.Close()
	// Refusals come before any change: status shows them as the apps'.
	if err := CheckKubeVersion(ctx, c, image, p, opts); err != nil {
		r.journal.SetFailed(AppsNode, stepKubeVersion, err)
		return nil, err
	}
	if opts.PushTo != "" {
		if err := r.push(ctx); err != nil {
			r.journal.SetFailed(AppsNode, StepPushImages, err)
			return nil, err
		}
	}
	if f, failed := r.journal.Failed(AppsNode); failed && (f.Step == stepKubeVersion || f.Step == StepPushImages) {
		// Passed this time: an image without apps would keep it forever.
		r.journal.SetFailed(AppsNode, "", nil)
	}
	if r.kube != nil {
		r.kube.Hoist = r.remoteHoist()
	}
	var err error
	if r.tmpDir, err = scratch.Dir(filepath.Join(opts.Root, "tmp"), "apply-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmpDir)

	res := &Result{Errors: map[string]error{}, Kept: p.Plan.Kept()}
	byIP := map[string]clusterfile.Node{}
	for _, n := range c.Nodes {
		byIP[n.IP.String()] = n
	}
	for _, np := range p.Plan.Nodes {
		n := byIP[np.Node]
		var steps []string
		for _, s := range np.Steps {
			steps = append(steps, s.Name)
		}
		if err := r.journal.SetHost(np.Node, HostRecord{Roles: n.Roles, User: n.SSH.User, Port: n.SSH.Port, PrivateKey: n.SSH.PrivateKey, Steps: steps}); err != nil {
			return nil, err
		}
		res.Nodes = append(res.Nodes, np.Node)
	}
	remove := p.Plan.Removed()
	res.Nodes = append(res.Nodes, remove...)
	var apps []string
	for _, a := range p.Plan.Apps {
		apps = append(apps, a.Name)
	}
	if err := r.journal.SetPlannedApps(apps); err != nil {
		return nil, err
	}

	nodeErrs, removeErrs := r.runStages(ctx, byIP, p.Plan.Nodes, remove)
	nodesOK := true
	for i, np := range p.Plan.Nodes {
		res.Errors[np.Node] = nodeErrs[i]
		nodesOK = nodesOK && nodeErrs[i] == nil
	}
	for i, n := range remove {
		res.Errors[n] = removeErrs[i]
		nodesOK = nodesOK && removeErrs[i] == nil
	}
	if len(p.Plan.Apps) > 0 {
		res.Nodes = append(res.Nodes, AppsNode)
		var err error
		switch {
		case !nodesOK:
			err = errors.New("not launched: nodes failed")
		case r.kube != nil:
			if err = r.useKubeconfig(ctx); err == nil {
				err = r.launchApps(ctx, p.Plan.Apps)
			}
		default:
			err = r.launchApps(ctx, p.Plan.Apps)
		}
		res.Errors[AppsNode] = err
	}
	r.saveOnMaster(ctx)
	return res, nil
}

// StepPushImages pushes the bundled images to Options.PushTo;
// stepKubeVersion is the KUBEVERSION check, both before any node step.
const (
	StepPushImages  = "push-images"
	stepKubeVersion = "kube-version"
)

// push copies the bundled images to opts.PushTo, reported as a step of
// the apps.
func (r *runner) push(ctx context.Context) error {
	r.report(progress.Event{Node: AppsNode, Step: StepPushImages + " " + r.opts.PushTo, State: progress.StateStart})
	t := time.Now()
	n, err := PushImages(ctx, r.image.Rootfs, r.image.Meta, r.opts.PushTo, r.opts.PushInsecure)
	if err != nil {
		r.report(progress.Event{Node: AppsNode, Step: StepPushImages, State: progress.StateFailed, Error: err.Error(), Elapsed: time.Since(t).Seconds()})
		return err
	}
	r.report(progress.Event{Node: AppsNode, Step: fmt.Sprintf("%s: %d images", StepPushImages, n), State: progress.StateDone, Elapsed: time.Since(t).Seconds()})
	return nil
}

func (r *runner) report(e progress.Event) {
	if r.opts.Reporter != nil {
		e.Time = time.Now()
		r.opts.Reporter.Report(e)
	}
}

// access is how to reach a node of the Clusterfile.
func (r *runner) access(ip string, s clusterfile.SSH) ssh.Config {
	return ssh.Config{Host: ip, Port: s.Port, User: s.User, Password: s.Password, PrivateKey: s.PrivateKey,
		Passphrase: s.Passphrase, KnownHosts: filepath.Join(r.opts.Root, "known_hosts"), AcceptNew: r.opts.AcceptNewHostKeys}
}

// remoteHoist is where the node's copy of this hoist is.
func (r *runner) remoteHoist() string {
	return RemoteHoist(path.Join(NodeDir(r.c), "bin"), r.hoistDigest)
}

// runStages runs the nodes' steps stage by stage: every node finishes a
// stage before any starts the next. A node that fails stops there; the
// others go on, except that nothing joins a cluster whose first master
// failed. Nodes no longer listed are removed before the cluster stage, so
// that the pod network is made for the nodes that stay. It returns each
// node's error and each removal's, in the plan's order.
func (r *runner) runStages(ctx context.Context, byIP map[string]clusterfile.Node, plans []NodePlan, remove []string) ([]error, []error) {
	errs := make([]error, len(plans))
	var removeErrs []error
	start := time.Now()
	first := ""
	if m := r.c.Masters(); len(m) > 0 {
		first = m[0].IP.String()
	}
	for stage := range stages {
		if stage == stageCluster {
			removeErrs = ssh.ForEach(ctx, remove, r.opts.Jobs, r.removeNode)
			// A node that joined may have a new pod range (a node that
			// rejoins gets a new one): every node's routes are made
			// again. A node set up again (it restarted and lost its
			// services) also gets its routes again, and is waited for.
			all := r.joined.Load() || len(remove) > 0
			for i := range plans {
				_, again := r.setUp.Load(plans[i].Node)
				for k := range plans[i].Steps {
					s := &plans[i].Steps[k]
					if (s.Name == StepKubeNetwork && (all || again)) || (s.Name == StepKubeReady && again) {
						s.Done = false
					}
				}
			}
		}
		var todo []int
		for i := range plans {
			if errs[i] != nil || !slices.ContainsFunc(plans[i].Steps, func(s PlannedStep) bool { return s.stage == stage }) {
				continue
			}
			todo = append(todo, i)
		}
		if stage > stageHost && r.kube != nil {
			if i := slices.IndexFunc(plans, func(np NodePlan) bool { return np.Node == first }); i >= 0 && errs[i] != nil {
				for _, j := range todo {
					if j != i {
						step := plans[j].Steps[slices.IndexFunc(plans[j].Steps, func(s PlannedStep) bool { return s.stage == stage })].Name
						errs[j] = &NodeError{Node: plans[j].Node, Step: step, Err: fmt.Errorf("not run: the first master %s failed", first)}
					}
				}
				continue
			}
		}
		jobs := r.opts.Jobs
		if stage == stageJoinMasters {
			// etcd grows one member at a time.
			jobs = 1
		}
		stageErrs := ssh.ForEach(ctx, todo, jobs, func(ctx context.Context, i int) error {
			return r.runSteps(ctx, byIP[plans[i].Node], &plans[i], stage)
		})
		for k, i := range todo {
			errs[i] = stageErrs[k]
		}
	}
	for i, np := range plans {
		var ne *NodeError
		if errors.As(errs[i], &ne) {
			r.journal.SetFailed(np.Node, ne.Step, ne.Err)
			r.report(progress.Event{Node: np.Node, State: progress.StateNodeFailed, Step: ne.Step, Error: ne.Err.Error(), Elapsed: time.Since(start).Seconds()})
			continue
		}
		r.journal.SetFailed(np.Node, "", nil)
		r.report(progress.Event{Node: np.Node, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	}
	return errs, removeErrs
}

// runSteps runs the node's steps of one stage, in order; a failure is a
// NodeError naming the step.
func (r *runner) runSteps(ctx context.Context, n clusterfile.Node, np *NodePlan, stage int) error {
	node := np.Node
	var exec ssh.Executor
	for _, s := range np.Steps {
		if s.stage != stage {
			continue
		}
		if s.Done && !r.lost(ctx, n, s.Name, &exec) {
			r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateSkipped})
			continue
		}
		if exec == nil {
			var err error
			if exec, err = r.pool.Get(ctx, r.access(node, n.SSH)); err != nil {
				return &NodeError{Node: node, Step: "connect", Err: err}
			}
		}
		r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateStart})
		t := time.Now()
		err := r.runStep(ctx, exec, n, s.Name)
		if err == nil {
			err = r.journal.MarkDone(node, s.Name, s.Key)
		}
		if err != nil {
			r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateFailed, Error: err.Error(), Elapsed: time.Since(t).Seconds()})
			return &NodeError{Node: node, Step: s.Name, Err: err}
		}
		r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateDone, Elapsed: time.Since(t).Seconds()})
	}
	return nil
}

// lostProbe is a command that exits with agent.ExitNotRunning when what a
// done step left on a node is gone: the services it started (a machine
// that restarted without systemd), the routes it added (any restart).
// "" for steps whose results stay on disk.
func (r *runner) lostProbe(step string) string {
	status := func(services ...string) string {
		for i, s := range services {
			services[i] = ssh.Quote(s)
		}
		return fmt.Sprintf("%s node service status %s --state-dir %s", ssh.Quote(r.remoteHoist()), strings.Join(services, " "),
			ssh.Quote(path.Join(NodeDir(r.c), "state")))
	}
	switch step {
	case StepRegistry:
		return status("hoist-registry-" + r.c.Name)
	case StepKubeNode:
		return status("containerd", "kubelet")
	case StepKubeNetwork:
		return fmt.Sprintf(`[ -f %s ] && { [ %d -lt 2 ] || [ -n "$(ip route show proto %s)" ]; } || exit %d`,
			kubeadm.CNIConf, len(r.c.Nodes), kubeadm.RouteProto, agent.ExitNotRunning)
	}
	return ""
}

// lost tells whether what a done step left on the node is gone: the step
// then runs again. A node that cannot be asked keeps its step done.
func (r *runner) lost(ctx context.Context, n clusterfile.Node, step string, exec *ssh.Executor) bool {
	probe := r.lostProbe(step)
	if probe == "" {
		return false
	}
	if *exec == nil {
		e, err := r.pool.Get(ctx, r.access(n.IP.String(), n.SSH))
		if err != nil {
			return false
		}
		*exec = e
	}
	// Only the probe's own answer says so.
	var exit *ssh.ExitError
	return errors.As((*exec).Run(ctx, probe, nil, nil), &exit) && exit.Status == agent.ExitNotRunning
}

func (r *runner) isRegistry(n clusterfile.Node) bool {
	return slices.Contains(r.c.Registry.Nodes, n.IP) && !r.noRegistry
}

func (r *runner) runStep(ctx context.Context, exec ssh.Executor, n clusterfile.Node, step string) error {
	q := ssh.Quote
	dir := NodeDir(r.c)
	switch {
	case step == StepInstallHoist:
		_, _, err := InstallSelf(ctx, exec, r.opts.Binary, r.hoistDigest, path.Join(dir, "bin"))
		return err
	case step == StepRootfs:
		withRegistry := r.isRegistry(n)
		packed, err := r.pack(withRegistry)
		if err != nil {
			return err
		}
		_, err = Distribute(ctx, exec, r.remoteHoist(), packed, RootfsKey(r.image.Digest, withRegistry), path.Join(dir, "rootfs"),
			func(sent, total int64) {
				r.report(progress.Event{Node: n.IP.String(), Step: step, State: progress.StateProgress, Bytes: sent, Total: total})
			})
		return err
	case step == StepRegistry:
		pki := path.Join(dir, "pki")
		if err := ssh.WriteFile(ctx, exec, pki+"/registry.crt", r.tls.Cert); err != nil {
			return err
		}
		if err := ssh.WriteFile(ctx, exec, pki+"/registry.key", r.tls.Key); err != nil {
			return err
		}
		return exec.Run(ctx, fmt.Sprintf("%s node registry start --cluster %s --state-dir %s --root %s --listen %s --port %d --tls-cert %s --tls-key %s",
			q(r.remoteHoist()), q(r.c.Name), q(path.Join(dir, "state")), q(path.Join(dir, "rootfs", "registry")), q(n.IP.String()), r.c.Registry.Port,
			q(pki+"/registry.crt"), q(pki+"/registry.key")), nil, nil)
	case step == StepMirrors:
		return exec.Run(ctx, fmt.Sprintf("%s node mirrors --cluster %s --registry %s --registry-ip %s --hosts %s --certs-dir %s --hosts-file %s --record %s",
			q(r.remoteHoist()), q(r.c.Name), q(fmt.Sprintf("%s:%d", r.c.Registry.Domain, r.c.Registry.Port)), q(r.c.Registry.Nodes[0].String()),
			q(strings.Join(r.registryHosts, ",")), q(CertsDir), q(HostsFile), q(path.Join(dir, "state", "mirrors"))), strings.NewReader(string(r.tls.CA)), nil)
	case strings.HasPrefix(step, "hook:"):
		return r.runHooks(ctx, exec, n, strings.TrimPrefix(step, "hook:"), path.Join(dir, "rootfs"))
	case strings.HasPrefix(step, "kube-"):
		return r.runKubeStep(ctx, exec, n, step)
	}
	return fmt.Errorf("unknown step %q", step)
}

// pack packs the rootfs, once per variant (with or without registry/) for
// the whole apply; nodes that need it meanwhile wait for it.
func (r *runner) pack(withRegistry bool) (Packed, error) {
	r.packMu.Lock()
	defer r.packMu.Unlock()
	if p, ok := r.packed[withRegistry]; ok {
		return p, nil
	}
	var exclude []string
	if !withRegistry {
		exclude = []string{"registry"}
	}
	p, err := Pack(r.image.Rootfs, r.tmpDir, exclude...)
	if err != nil {
		return Packed{}, fmt.Errorf("packing the rootfs: %w", err)
	}
	r.packed[withRegistry] = p
	return p, nil
}

// HooksOf returns the plugins of a phase that apply to a node with these
// roles, in the order they run (by name).
func HooksOf(plugins []clusterfile.Plugin, phase string, roles []string) []clusterfile.Plugin {
	var hooks []clusterfile.Plugin
	for _, p := range plugins {
		if p.Phase != phase {
			continue
		}
		if len(p.Scope) > 0 && !slices.ContainsFunc(p.Scope, func(r string) bool { return slices.Contains(roles, r) }) {
			continue
		}
		hooks = append(hooks, p)
	}
	slices.SortFunc(hooks, func(a, b clusterfile.Plugin) int { return strings.Compare(a.Name, b.Name) })
	return hooks
}

// runHooks runs the phase's hooks on the node in dir (or / when dir is
// gone), the cluster's and the host's env exported, each hook's output
// kept for its error.
func (r *runner) runHooks(ctx context.Context, exec ssh.Executor, n clusterfile.Node, phase, dir string) error {
	env := r.nodeEnv(n)
	env["HOIST_PHASE"] = phase
	prelude := fmt.Sprintf("cd %s 2>/dev/null || cd /\n", ssh.Quote(dir)) + exports(env)
	for _, h := range HooksOf(r.plugins, phase, n.Roles) {
		// The hook's stdout joins its stderr, which the error carries.
		script := prelude + "exec 1>&2\n" + h.Data
		if err := exec.Run(ctx, script, nil, nil); err != nil {
			return fmt.Errorf("hook %s: %w", h.Name, err)
		}
	}
	return nil
}

// saveOnMaster copies the journal and the Clusterfile, without secrets, to
// the first master that is reachable, so the state survives this machine.
func (r *runner) saveOnMaster(ctx context.Context) {
	masters := r.c.Masters()
	if len(masters) == 0 {
		return
	}
	m := masters[0]
	if !r.journal.Done(m.IP.String(), StepInstallHoist, r.hoistDigest) {
		return
	}
	exec, err := r.pool.Get(ctx, r.access(m.IP.String(), m.SSH))
	if err != nil {
		return
	}
	data, err := r.journal.Bytes()
	if err != nil {
		return
	}
	state := path.Join(NodeDir(r.c), "state")
	ssh.WriteFile(ctx, exec, state+"/journal.json", data)
}

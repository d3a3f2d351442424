package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/registry"
)

// nodeDir is the cluster's directory on its nodes.
func nodeDir(c clusterfile.Cluster) layout.Node { return layout.NodeDir(c.DataRoot, c.Name) }

// runner holds what the steps of an apply (or a delete) share.
type runner struct {
	c           clusterfile.Cluster
	opts        Options
	journal     *Journal
	pool        *ssh.Pool
	poolOnce    sync.Once
	plugins     []clusterfile.Plugin
	hoistDigest string
	tls         clusterTLS
	image       Image
	dir         layout.Node
	// registryHosts are the registry hosts bundled in the image.
	registryHosts []string
	// rt is the image's runtime, nil for an image that brings none up.
	rt    step.Runtime
	in    step.Input
	steps []step.Step
	apps  []PlannedStep
	plan  Plan
	// joined tells that a step that Joins ran in this apply; restarted
	// holds the nodes where a step that Restarts ran.
	joined    atomic.Bool
	restarted sync.Map
	// deleteCluster: every node of the cluster is being deleted.
	deleteCluster bool
	// made: the journal recorded the cluster as made when the run began.
	made bool
	// The master the run asks (master).
	masterMu   sync.Mutex
	masterIP   string
	masterExec ssh.Executor

	packMu sync.Mutex
	packed map[bool]packedTree // with registry/ → packed file
	tmpDir string
	// rendered are the templates of the rootfs (render.go).
	rendered []renderedFile
}

// dial reaches a node of the Clusterfile.
func (r *runner) dial(ctx context.Context, n clusterfile.Node) (ssh.Executor, error) {
	s := n.SSH
	cfg := ssh.Config{Host: n.IP.String(), Port: s.Port, User: s.User, Password: s.Password, PrivateKey: s.PrivateKey,
		Passphrase: s.Passphrase, KnownHosts: layout.Local{Root: r.opts.Root}.KnownHosts(), AcceptNew: r.opts.AcceptNewHostKeys}
	if r.opts.Dial != nil {
		return r.opts.Dial(ctx, cfg)
	}
	// Nodes are dialled in parallel: one pool for all of them.
	r.poolOnce.Do(func() { r.pool = ssh.NewPool() })
	return r.pool.Get(ctx, cfg)
}

// close ends what the run holds: its connections and the packed rootfs
// streams it opened.
func (r *runner) close() {
	if r.pool != nil {
		r.pool.Close()
	}
	r.packMu.Lock()
	defer r.packMu.Unlock()
	for _, p := range r.packed {
		p.Close()
	}
	r.packed = nil
}

// master reaches a master for what is asked of the cluster (join tokens,
// the admin kubeconfig, the network, drains, hooks, shell apps): the first
// member of its control plane that answers, the one that made the cluster
// first; before the cluster is made, the master that makes it. No master
// is special once the cluster is made: any one of them may be down or
// gone. The choice holds for the run.
func (r *runner) master(ctx context.Context) (ssh.Executor, string, error) {
	r.masterMu.Lock()
	defer r.masterMu.Unlock()
	if r.masterExec == nil {
		n, e, err := r.masterExcept(ctx, "")
		if err != nil {
			return nil, "", err
		}
		r.masterIP, r.masterExec = n.IP.String(), e
	}
	return r.masterExec, r.masterIP, nil
}

// clusterSteps are the steps that make a cluster and join it, as the
// journal records them: the run's, or every runtime's for a run without
// an image (delete, kubeconfig).
func (r *runner) clusterSteps() []step.Step {
	if len(r.steps) > 0 {
		return r.steps
	}
	return recordedSteps()
}

// membership reads from the journal what the run needs of the cluster's
// making: whether it was made, and the master that makes it.
func (r *runner) membership() {
	steps := r.clusterSteps()
	r.made = made(r.journal, steps)
	r.in.InitNode = initNode(r.journal, r.c, steps)
}

// masterExcept reaches a master as master does, but never node (one that
// leaves the cluster).
func (r *runner) masterExcept(ctx context.Context, node string) (clusterfile.Node, ssh.Executor, error) {
	masters := r.c.Masters()
	if len(masters) == 0 {
		return clusterfile.Node{}, nil, fmt.Errorf("cluster %s has no master", r.c.Name)
	}
	var candidates []clusterfile.Node
	if r.journal != nil {
		steps := r.clusterSteps()
		by := madeBy(r.journal, steps)
		for _, m := range masters {
			if ip := m.IP.String(); ip != node && controlPlane(r.journal, steps, ip) {
				if ip == by {
					candidates = append([]clusterfile.Node{m}, candidates...)
				} else {
					candidates = append(candidates, m)
				}
			}
		}
	}
	if len(candidates) == 0 {
		// No cluster yet: the master that makes it.
		init := r.in.InitNode
		if init == "" {
			init = masters[0].IP.String()
		}
		for _, m := range masters {
			if ip := m.IP.String(); ip == init && ip != node {
				candidates = append(candidates, m)
			}
		}
	}
	var errs []string
	for _, m := range candidates {
		e, err := r.dial(ctx, m)
		if err == nil {
			return m, e, nil
		}
		if ctx.Err() != nil {
			return clusterfile.Node{}, nil, ctx.Err()
		}
		errs = append(errs, m.IP.String()+": "+err.Error())
	}
	if len(errs) == 0 {
		return clusterfile.Node{}, nil, fmt.Errorf("no master of cluster %s but %s is in its control plane", r.c.Name, node)
	}
	return clusterfile.Node{}, nil, fmt.Errorf("no master answers: %s", strings.Join(errs, "; "))
}

// remoteHoist is where the node's copy of this hoist is.
func (r *runner) remoteHoist() string { return remoteHoistPath(r.dir.Bin(), r.hoistDigest) }

// nodeEnv is what the image's scripts and the hooks see: the cluster's
// env, the host's over it, and hoist's own.
func (r *runner) nodeEnv(n clusterfile.Node) map[string]string {
	env := map[string]string{}
	for k, v := range r.c.Env {
		env[k] = v
	}
	for k, v := range n.Env {
		env[k] = v
	}
	env["HOIST_CLUSTER"] = r.c.Name
	env["HOIST_NODE"] = n.IP.String()
	env["HOIST_ROLES"] = strings.Join(clusterfile.RoleNames(n.Roles), ",")
	env["HOIST_ROOTFS"] = r.dir.Rootfs()
	return env
}

// target is what the steps of node n are given; Exec is filled once the
// node is reached, Progress for each step.
func (r *runner) target(n clusterfile.Node) *step.Target {
	return &step.Target{Node: n, Cluster: &r.c, Input: &r.in, Dir: r.dir, Hoist: r.remoteHoist(), Env: r.nodeEnv(n),
		Master: r.master, Done: r.journal.Done}
}

func (r *runner) report(e progress.Event) { progress.Send(r.opts.Reporter, e) }

// stepPushImages pushes the bundled images to Options.PushTo;
// stepKubeVersion is the KUBEVERSION check; stepClusterVersion the
// runtime's check of the running cluster; stepUpgradeCheck what an
// upgrade needs first (every node, an etcd snapshot): all before any
// node step.
const (
	stepPushImages     = "push-images"
	stepKubeVersion    = "kube-version"
	stepClusterVersion = "cluster-version"
	stepUpgradeCheck   = "upgrade-check"
)

// checkCluster asks the runtime, on a master, whether the cluster an
// earlier apply made can take this image (its Kubernetes version), and
// plans again with the upgrade it brings, if any.
func (r *runner) checkCluster(ctx context.Context) error {
	if r.rt == nil || !r.made {
		return nil
	}
	master, ip, err := r.master(ctx)
	if err != nil {
		return fmt.Errorf("asking the cluster its version: %w", err)
	}
	up, err := r.rt.CheckCluster(ctx, master)
	if err != nil {
		return fmt.Errorf("%s: %w", ip, err)
	}
	if began := r.journal.Upgrade(); up == nil && began != nil && began.To == r.rt.Version() {
		// An apply that began this upgrade stopped: the cluster may not
		// tell (its API server restarting after its master's kubelet
		// was upgraded), the journal does.
		up = began
	}
	if up != nil {
		r.in.Upgrade = up
		r.makePlan()
	}
	return nil
}

// apply runs the plan; see Apply.Run.
func (r *runner) apply(ctx context.Context, rep progress.Reporter) (*Result, error) {
	r.opts.Reporter = rep
	defer r.close()
	// Refusals come before any change: status shows them as the apps'.
	if err := r.checkKubeVersion(ctx); err != nil {
		r.journal.SetFailed(AppsNode, stepKubeVersion, err)
		return nil, err
	}
	if r.in.Upgrade != nil {
		if err := r.beforeUpgrade(ctx); err != nil {
			r.journal.SetFailed(AppsNode, stepUpgradeCheck, err)
			return nil, err
		}
		if err := r.journal.SetUpgrade(r.in.Upgrade); err != nil {
			return nil, err
		}
	}
	if r.opts.PushTo != "" {
		if err := r.push(ctx); err != nil {
			r.journal.SetFailed(AppsNode, stepPushImages, err)
			return nil, err
		}
	}
	if f, failed := r.journal.Failed(AppsNode); failed && (slices.Contains([]string{stepKubeVersion, stepPushImages, stepClusterVersion, stepUpgradeCheck}, f.Step)) {
		// Passed this time: an image without apps would keep it forever.
		r.journal.SetFailed(AppsNode, "", nil)
	}
	if err := r.tmp("apply-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmpDir)

	p := &r.plan
	res := &Result{Errors: map[string]error{}, Kept: p.Kept()}
	byIP := map[string]clusterfile.Node{}
	for _, n := range r.c.Nodes {
		byIP[n.IP.String()] = n
	}
	for _, np := range p.Nodes {
		n := byIP[np.Node]
		var steps []string
		for _, s := range np.Steps {
			steps = append(steps, s.Name)
		}
		if err := r.journal.SetHost(np.Node, HostRecord{Roles: clusterfile.RoleNames(n.Roles), User: n.SSH.User, Port: n.SSH.Port, PrivateKey: n.SSH.PrivateKey, Steps: steps}); err != nil {
			return nil, err
		}
		res.Nodes = append(res.Nodes, np.Node)
	}
	remove := p.Removed()
	res.Nodes = append(res.Nodes, remove...)
	var apps []string
	for _, a := range p.Apps {
		apps = append(apps, a.Name)
	}
	if err := r.journal.SetPlannedApps(apps); err != nil {
		return nil, err
	}

	nodeErrs, removeErrs := r.runStages(ctx, byIP, p.Nodes, remove)
	nodesOK := true
	for i, np := range p.Nodes {
		res.Errors[np.Node] = nodeErrs[i]
		nodesOK = nodesOK && nodeErrs[i] == nil
	}
	if r.in.Upgrade != nil && !slices.ContainsFunc(nodeErrs, func(err error) bool { return err != nil }) {
		if err := r.journal.SetUpgrade(nil); err != nil {
			return nil, err
		}
	}
	for i, n := range remove {
		res.Errors[n] = removeErrs[i]
		nodesOK = nodesOK && removeErrs[i] == nil
	}
	if len(p.Apps) > 0 {
		res.Nodes = append(res.Nodes, AppsNode)
		var err error
		switch {
		case !nodesOK:
			err = errors.New("not launched: nodes failed")
		case r.rt != nil:
			if err = r.useKubeconfig(ctx); err == nil {
				err = r.launchApps(ctx, p.Apps)
			}
		default:
			err = r.launchApps(ctx, p.Apps)
		}
		res.Errors[AppsNode] = err
	}
	r.saveOnMaster(ctx)
	return res, nil
}

// push copies the bundled images to opts.PushTo, reported as a step of
// the apps.
func (r *runner) push(ctx context.Context) error {
	r.report(progress.Event{Node: AppsNode, Step: stepPushImages + " " + r.opts.PushTo, State: progress.StateStart})
	t := time.Now()
	n, err := registry.PushImages(ctx, r.image.Rootfs, r.image.Meta, r.opts.PushTo, r.opts.PushInsecure)
	if err != nil {
		r.report(progress.Event{Node: AppsNode, Step: stepPushImages, State: progress.StateFailed, Error: err.Error(), Elapsed: time.Since(t).Seconds()})
		return err
	}
	r.report(progress.Event{Node: AppsNode, Step: fmt.Sprintf("%s: %d images", stepPushImages, n), State: progress.StateDone, Elapsed: time.Since(t).Seconds()})
	return nil
}

// runStages runs the nodes' steps stage by stage: every node finishes a
// stage before any starts the next. A node that fails stops there; the
// others go on, except that nothing joins a cluster not yet made whose
// first node (the one with a step of stage Init) failed. Nodes no longer
// listed are removed before the cluster stage, so that what spans the
// nodes (the pod network) is made for the nodes that stay. It returns each node's error
// and each removal's, in the plan's order.
func (r *runner) runStages(ctx context.Context, byIP map[string]clusterfile.Node, plans []NodePlan, remove []string) ([]error, []error) {
	errs := make([]error, len(plans))
	var removeErrs []error
	start := time.Now()
	first := slices.IndexFunc(plans, func(np NodePlan) bool {
		return slices.ContainsFunc(np.Steps, func(s PlannedStep) bool { return s.step.Stage == step.Init })
	})
	// A scale-up: nodes join a cluster an earlier apply made.
	scaling := r.made && slices.ContainsFunc(plans, joining)
	// hook runs a phase of the whole cluster on a master, its error that
	// master's.
	hook := func(phase clusterfile.Phase) error {
		n, hooks, err := r.hookMaster(ctx, phase)
		if hooks && err == nil {
			err = r.clusterHook(ctx, n, phase, r.dir.Rootfs())
		}
		if i := slices.IndexFunc(plans, func(np NodePlan) bool { return np.Node == n.IP.String() }); err != nil && i >= 0 && errs[i] == nil {
			errs[i] = err
		}
		return err
	}
	for stage := range step.Stages {
		if stage == step.JoinMasters && scaling {
			// sealer's pre-scaleup: on a master, before nodes join the
			// cluster; should it fail, none joins.
			if err := hook(clusterfile.PhasePreScaleUp); err != nil {
				for j, np := range plans {
					if errs[j] == nil && joining(np) {
						errs[j] = &NodeError{Node: np.Node, Step: hookName(clusterfile.PhasePreScaleUp), Err: fmt.Errorf("not run: the pre-scaleup hooks failed: %w", err)}
					}
				}
			}
		}
		if stage == step.Cluster {
			removeErrs = ssh.ForEach(ctx, remove, r.opts.Jobs, r.removeNode)
			// Steps that follow the membership run again on every node
			// when it changed; those that follow a node's services, on
			// the nodes where they were started again.
			joined := r.joined.Load() || len(remove) > 0
			for i := range plans {
				_, restarted := r.restarted.Load(plans[i].Node)
				for k := range plans[i].Steps {
					s := &plans[i].Steps[k]
					if (s.step.RedoOnJoin && joined) || (s.step.RedoOnRestart && restarted) {
						s.Done = false
					}
				}
			}
		}
		var todo []int
		for i := range plans {
			if errs[i] != nil || !slices.ContainsFunc(plans[i].Steps, func(s PlannedStep) bool { return s.step.Stage == stage }) {
				continue
			}
			todo = append(todo, i)
		}
		// Before the cluster is made, nothing can join it if its first
		// node failed; once made, any master will do.
		if stage > step.Host && first >= 0 && errs[first] != nil && !r.made {
			for _, j := range todo {
				if j != first {
					name := plans[j].Steps[slices.IndexFunc(plans[j].Steps, func(s PlannedStep) bool { return s.step.Stage == stage })].Name
					errs[j] = &NodeError{Node: plans[j].Node, Step: name, Err: fmt.Errorf("not run: the first master %s failed", plans[first].Node)}
				}
			}
			continue
		}
		jobs := r.opts.Jobs
		switch stage {
		case step.UpgradeMasters, step.JoinMasters:
			// etcd grows one member at a time; a control plane is
			// upgraded one master at a time.
			jobs = 1
		case step.UpgradeWorkers:
			jobs = r.maxUnavailable()
		}
		stageErrs := ssh.ForEach(ctx, todo, jobs, func(ctx context.Context, i int) error {
			return r.runSteps(ctx, byIP[plans[i].Node], &plans[i], stage)
		})
		for k, i := range todo {
			errs[i] = stageErrs[k]
		}
	}
	if r.in.Upgrade != nil && !slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		// sealer's upgrade: on a master, once every node is upgraded.
		hook(clusterfile.PhaseUpgrade)
	}
	if scaling {
		// sealer's post-scaleup: on a master, once a node joined (the
		// plan's Done flags are still those from before the run).
		for i, np := range plans {
			if errs[i] == nil && joining(np) {
				hook(clusterfile.PhasePostScaleUp)
				break
			}
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
		if r.rt != nil && r.rt.Version() != "" {
			r.journal.SetVersion(np.Node, r.rt.Version())
		}
		r.report(progress.Event{Node: np.Node, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	}
	return errs, removeErrs
}

// joining tells whether a node has a step that joins it to the cluster
// still to do.
func joining(np NodePlan) bool {
	return slices.ContainsFunc(np.Steps, func(s PlannedStep) bool {
		return !s.Done && (s.step.Stage == step.JoinMasters || s.step.Stage == step.JoinWorkers)
	})
}

// runSteps runs the node's steps of one stage, in order; a failure is a
// NodeError naming the step.
func (r *runner) runSteps(ctx context.Context, n clusterfile.Node, np *NodePlan, stage step.Stage) error {
	node := np.Node
	t := r.target(n)
	for _, s := range np.Steps {
		if s.step.Stage != stage {
			continue
		}
		if s.Done {
			lost, err := r.lost(ctx, t, s.step)
			if err != nil {
				return &NodeError{Node: node, Step: "connect", Err: err}
			}
			if !lost {
				r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateSkipped})
				continue
			}
		}
		if t.Exec == nil {
			var err error
			if t.Exec, err = r.dial(ctx, n); err != nil {
				return &NodeError{Node: node, Step: "connect", Err: err}
			}
		}
		if s.step.Joins {
			r.joined.Store(true)
		}
		if s.step.Restarts {
			r.restarted.Store(node, true)
		}
		end := progress.Start(r.opts.Reporter, node, s.Name)
		t.Progress = func(sent, total int64) {
			r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateProgress, Bytes: sent, Total: total})
		}
		err := s.step.Run(ctx, t)
		if err == nil {
			err = r.journal.MarkDone(node, s.Name, s.Key)
		}
		end(err)
		if err != nil {
			return &NodeError{Node: node, Step: s.Name, Err: err}
		}
	}
	return nil
}

// lost tells whether what a done step left on the node is gone, by its
// Probe: the step then runs again. A node that cannot be reached to ask
// fails (a dead machine is not reported ok); one that answers otherwise
// than the probe's own way keeps its step done.
func (r *runner) lost(ctx context.Context, t *step.Target, s *step.Step) (bool, error) {
	if s.Probe == nil {
		return false, nil
	}
	if t.Exec == nil {
		e, err := r.dial(ctx, t.Node)
		if err != nil {
			return false, err
		}
		t.Exec = e
	}
	// Only the probe's own answer says so.
	var exit *ssh.ExitError
	return errors.As(t.Exec.Run(ctx, s.Probe(t), nil, nil), &exit) && exit.Status == agent.ExitNotRunning, nil
}

// saveOnMaster copies the journal (which holds no secret) to a master that
// answers (master), so the state survives this machine.
func (r *runner) saveOnMaster(ctx context.Context) {
	if len(r.c.Masters()) == 0 {
		return
	}
	exec, ip, err := r.master(ctx)
	if err != nil || !r.journal.Done(ip, stepInstallHoist, r.hoistDigest) {
		return
	}
	data, err := r.journal.Bytes()
	if err != nil {
		return
	}
	ssh.WriteFile(ctx, exec, r.dir.Journal(), data)
}

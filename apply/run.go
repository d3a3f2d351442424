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
	plan  Plan
	// joined tells that a step that Joins ran in this apply; restarted
	// holds the nodes where a step that Restarts ran.
	joined    atomic.Bool
	restarted sync.Map
	// deleteCluster: every node of the cluster is being deleted.
	deleteCluster bool

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

// master reaches the first master.
func (r *runner) master(ctx context.Context) (ssh.Executor, string, error) {
	m := r.c.Masters()[0]
	e, err := r.dial(ctx, m)
	return e, m.IP.String(), err
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
// stepKubeVersion is the KUBEVERSION check, both before any node step.
const (
	stepPushImages  = "push-images"
	stepKubeVersion = "kube-version"
)

// apply runs the plan; see Apply.Run.
func (r *runner) apply(ctx context.Context, rep progress.Reporter) (*Result, error) {
	r.opts.Reporter = rep
	defer r.close()
	// Refusals come before any change: status shows them as the apps'.
	if err := r.checkKubeVersion(ctx); err != nil {
		r.journal.SetFailed(AppsNode, stepKubeVersion, err)
		return nil, err
	}
	if r.opts.PushTo != "" {
		if err := r.push(ctx); err != nil {
			r.journal.SetFailed(AppsNode, stepPushImages, err)
			return nil, err
		}
	}
	if f, failed := r.journal.Failed(AppsNode); failed && (f.Step == stepKubeVersion || f.Step == stepPushImages) {
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
// others go on, except that nothing joins a cluster whose first node (the
// one with a step of stage Init) failed. Nodes no longer listed are
// removed before the cluster stage, so that what spans the nodes (the pod
// network) is made for the nodes that stay. It returns each node's error
// and each removal's, in the plan's order.
func (r *runner) runStages(ctx context.Context, byIP map[string]clusterfile.Node, plans []NodePlan, remove []string) ([]error, []error) {
	errs := make([]error, len(plans))
	var removeErrs []error
	start := time.Now()
	first := slices.IndexFunc(plans, func(np NodePlan) bool {
		return slices.ContainsFunc(np.Steps, func(s PlannedStep) bool { return s.step.Stage == step.Init })
	})
	scaling := scalingUp(plans, first)
	for stage := range step.Stages {
		if stage == step.JoinMasters && scaling && errs[first] == nil {
			// sealer's pre-scaleup: on the first master, before nodes
			// join the cluster; should it fail, none joins.
			errs[first] = r.clusterHook(ctx, byIP[plans[first].Node], clusterfile.PhasePreScaleUp, r.dir.Rootfs())
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
		if stage > step.Host && first >= 0 && errs[first] != nil {
			for _, j := range todo {
				if j != first {
					name := plans[j].Steps[slices.IndexFunc(plans[j].Steps, func(s PlannedStep) bool { return s.step.Stage == stage })].Name
					errs[j] = &NodeError{Node: plans[j].Node, Step: name, Err: fmt.Errorf("not run: the first master %s failed", plans[first].Node)}
				}
			}
			continue
		}
		jobs := r.opts.Jobs
		if stage == step.JoinMasters {
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
	if scaling && errs[first] == nil {
		// sealer's post-scaleup: on the first master, once a node joined
		// (the plan's Done flags are still those from before the run).
		for i, np := range plans {
			if errs[i] == nil && joining(np) {
				errs[first] = r.clusterHook(ctx, byIP[plans[first].Node], clusterfile.PhasePostScaleUp, r.dir.Rootfs())
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
		r.report(progress.Event{Node: np.Node, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	}
	return errs, removeErrs
}

// scalingUp tells whether an apply makes nodes join a cluster that an
// earlier apply brought up: the first master's Init step was done before,
// and a node has a join step still to do.
func scalingUp(plans []NodePlan, first int) bool {
	if first < 0 || !slices.ContainsFunc(plans[first].Steps, func(s PlannedStep) bool { return s.step.Stage == step.Init && s.Done }) {
		return false
	}
	return slices.ContainsFunc(plans, joining)
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
		if s.Done && !r.lost(ctx, t, s.step) {
			r.report(progress.Event{Node: node, Step: s.Name, State: progress.StateSkipped})
			continue
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
// Probe: the step then runs again. A node that cannot be asked keeps its
// step done.
func (r *runner) lost(ctx context.Context, t *step.Target, s *step.Step) bool {
	if s.Probe == nil {
		return false
	}
	if t.Exec == nil {
		e, err := r.dial(ctx, t.Node)
		if err != nil {
			return false
		}
		t.Exec = e
	}
	// Only the probe's own answer says so.
	var exit *ssh.ExitError
	return errors.As(t.Exec.Run(ctx, s.Probe(t), nil, nil), &exit) && exit.Status == agent.ExitNotRunning
}

// saveOnMaster copies the journal (which holds no secret) to the first
// master that is reachable, so the state survives this machine.
func (r *runner) saveOnMaster(ctx context.Context) {
	masters := r.c.Masters()
	if len(masters) == 0 {
		return
	}
	m := masters[0]
	if !r.journal.Done(m.IP.String(), stepInstallHoist, r.hoistDigest) {
		return
	}
	exec, err := r.dial(ctx, m)
	if err != nil {
		return
	}
	data, err := r.journal.Bytes()
	if err != nil {
		return
	}
	ssh.WriteFile(ctx, exec, r.dir.Journal(), data)
}

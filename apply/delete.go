package apply

import (
	"context"
	"errors"
	"fmt"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"net/netip"
	"path"
	"slices"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/progress"
)

// StepClean is the step that removes a cluster from a node.
const StepClean = "clean"

// cleanScript runs the image's scripts/clean-node.sh (the Kubernetes
// runtime's reset), stops the registry and removes the hosts entry, the
// mirror files and the data directory, with whichever hoist the node holds (it
// may be another version than this one); without one, nothing but the
// directory can be there.
//
// wholeCluster tells the image's script that every node goes: a master
// then need not leave etcd (which, with the others going at once, could
// not answer).
func cleanScript(c clusterfile.Cluster, wholeCluster bool) (string, error) {
	dir := NodeDir(c)
	if err := agent.CheckClusterDir(dir, c.Name); err != nil {
		return "", err
	}
	q := ssh.Quote
	return fmt.Sprintf(`for b in %[1]s/bin/hoist-????????????????; do
  if [ -x "$b" ]; then
    if [ -f %[1]s/rootfs/%[5]s ]; then
      (cd %[1]s/rootfs && HOIST="$b" HOIST_STATE=%[1]s/state HOIST_DELETE_CLUSTER=%[6]d sh %[5]s) >&2 || exit 1
    fi
    exec "$b" node clean --cluster %[2]s --dir %[1]s --certs-dir %[3]s --hosts-file %[4]s
  fi
done
rm -rf %[1]s`, q(dir), q(c.Name), q(CertsDir), q(HostsFile), kubeadm.CleanScript, b2i(wholeCluster)), nil
}

// cleanNode runs the clean hooks around the clean itself on one node.
func (r *runner) cleanNode(ctx context.Context, n clusterfile.Node) (err error) {
	node := n.IP.String()
	start := time.Now()
	step := ""
	defer func() {
		if err != nil {
			r.report(progress.Event{Node: node, State: progress.StateNodeFailed, Step: step, Error: err.Error(), Elapsed: time.Since(start).Seconds()})
			err = &NodeError{Node: node, Step: step, Err: err}
			return
		}
		r.report(progress.Event{Node: node, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	}()
	step = StepClean
	script, err := cleanScript(r.c, r.deleteCluster)
	if err != nil {
		return err
	}
	step = "connect"
	exec, err := r.pool.Get(ctx, r.access(node, n.SSH))
	if err != nil {
		return err
	}
	run := func(name string, fn func() error) error {
		step = name
		r.report(progress.Event{Node: node, Step: name, State: progress.StateStart})
		t := time.Now()
		if err := fn(); err != nil {
			r.report(progress.Event{Node: node, Step: name, State: progress.StateFailed, Error: err.Error(), Elapsed: time.Since(t).Seconds()})
			return err
		}
		r.report(progress.Event{Node: node, Step: name, State: progress.StateDone, Elapsed: time.Since(t).Seconds()})
		return nil
	}
	rootfs := path.Join(NodeDir(r.c), "rootfs")
	if len(HooksOf(r.plugins, clusterfile.PhasePreCleanHost, n.Roles)) > 0 {
		if err := run("hook:"+clusterfile.PhasePreCleanHost, func() error { return r.runHooks(ctx, exec, n, clusterfile.PhasePreCleanHost, rootfs) }); err != nil {
			return err
		}
	}
	if err := run(StepClean, func() error { return exec.Run(ctx, script, nil, nil) }); err != nil {
		return err
	}
	if len(HooksOf(r.plugins, clusterfile.PhasePostCleanHost, n.Roles)) > 0 {
		if err := run("hook:"+clusterfile.PhasePostCleanHost, func() error { return r.runHooks(ctx, exec, n, clusterfile.PhasePostCleanHost, "/") }); err != nil {
			return err
		}
	}
	step = ""
	return r.journal.Forget(node)
}

// recordedNode is a node the journal knows, reached as recorded, with the
// cluster's default secrets.
func (r *runner) recordedNode(ip string) (clusterfile.Node, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return clusterfile.Node{}, err
	}
	h, ok := r.journal.Host(ip)
	if !ok {
		return clusterfile.Node{IP: addr, SSH: r.c.SSH}, nil
	}
	s := r.c.SSH
	s.User, s.Port = h.User, h.Port
	if h.PrivateKey != "" {
		s.PrivateKey = h.PrivateKey
	}
	return clusterfile.Node{IP: addr, Roles: h.Roles, SSH: s, Env: r.c.Env}, nil
}

// removeNode cleans a node the Clusterfile no longer lists.
func (r *runner) removeNode(ctx context.Context, ip string) error {
	n, err := r.recordedNode(ip)
	if err != nil {
		return err
	}
	return r.leave(ctx, n)
}

// leave takes a node out of the cluster: drained and deleted from
// Kubernetes first, when hoist brought Kubernetes up, then cleaned.
func (r *runner) leave(ctx context.Context, n clusterfile.Node) error {
	ip := n.IP.String()
	if r.kube != nil {
		if err := r.drain(ctx, ip); err != nil {
			r.report(progress.Event{Node: ip, Step: "drain", State: progress.StateNodeFailed, Error: err.Error()})
			return &NodeError{Node: ip, Step: "drain", Err: err}
		}
	}
	return r.cleanNode(ctx, n)
}

// DeleteNodes lists the nodes a delete touches: those given, or every node
// of the Clusterfile and of the journal.
func DeleteNodes(c clusterfile.Cluster, j *Journal, only []netip.Addr) []string {
	var all []string
	for _, n := range c.Nodes {
		all = append(all, n.IP.String())
	}
	for _, n := range j.Nodes() {
		if !slices.Contains(all, n) {
			all = append(all, n)
		}
	}
	if len(only) == 0 {
		return all
	}
	var out []string
	for _, a := range only {
		out = append(out, a.String())
	}
	return out
}

// Delete removes the cluster from the nodes: clean hooks, registry, hosts
// entries, mirror files, the data directory. With force, a node that
// cannot be reached is forgotten rather than failed.
func Delete(ctx context.Context, c clusterfile.Cluster, plugins []clusterfile.Plugin, j *Journal, nodes []string, force bool, opts Options) *Result {
	r := &runner{c: c, opts: opts, journal: j, pool: ssh.NewPool(), plugins: plugins}
	defer r.pool.Close()
	if m := c.Masters(); len(m) > 0 && j.Done(m[0].IP.String(), StepKubeInit, kubeInitKey) {
		if slices.Contains(nodes, m[0].IP.String()) {
			r.deleteCluster = true
		} else {
			// Some nodes of a Kubernetes cluster that stays: they
			// leave it as removed hosts do, drained first.
			r.kube = &kubeadm.Runtime{}
		}
	}
	byIP := map[string]clusterfile.Node{}
	for _, n := range c.Nodes {
		byIP[n.IP.String()] = n
	}
	res := &Result{Nodes: nodes, Errors: map[string]error{}}
	errs := ssh.ForEach(ctx, nodes, opts.Jobs, func(ctx context.Context, ip string) error {
		n, ok := byIP[ip]
		if !ok {
			var err error
			if n, err = r.recordedNode(ip); err != nil {
				return err
			}
		}
		err := r.leave(ctx, n)
		var se *ssh.Error
		var ne *NodeError
		if err != nil && force && errors.As(err, &ne) && ne.Step == "connect" && errors.As(err, &se) {
			r.report(progress.Event{Node: ip, Step: StepClean, State: progress.StateSkipped, Error: "unreachable, forgotten (--force): " + err.Error()})
			return j.Forget(ip)
		}
		return err
	})
	for i, n := range nodes {
		res.Errors[n] = errs[i]
	}
	return res
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

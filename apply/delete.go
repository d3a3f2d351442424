package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
)

// cleanScript removes the cluster from a node with whichever hoist the
// node holds (it may be another version than this one): the Undo of every
// step hoist and its runtimes know, from the last step's to the first
// (the runtime's reset, then the agent's clean of the registry, the hosts
// entry, the mirror files and the directory); without a hoist there,
// nothing but the directory can be.
//
// wholeCluster tells the runtime that every node goes: a master then need
// not leave etcd (which, with the others going at once, could not answer).
func cleanScript(c clusterfile.Cluster, wholeCluster bool) (string, error) {
	dir := nodeDir(c)
	if err := agent.CheckClusterDir(dir.Dir, c.Name); err != nil {
		return "", err
	}
	u := step.Undo{Cluster: c.Name, Dir: dir, WholeCluster: wholeCluster}
	var all []step.Step
	for _, rt := range runtimes {
		all = append(all, (&runner{}).stepList(rt)...)
	}
	var undo strings.Builder
	seen := map[string]bool{}
	for _, s := range slices.Backward(all) {
		if s.Undo != nil && !seen[s.Name] {
			seen[s.Name] = true
			undo.WriteString(s.Undo(u))
		}
	}
	return fmt.Sprintf("for b in %[1]s/hoist-????????????????; do\n  if [ -x \"$b\" ]; then\n%[2]s  fi\ndone\nrm -rf %[3]s",
		ssh.Quote(dir.Bin()), undo.String(), ssh.Quote(dir.Dir)), nil
}

// cleanNode runs the clean hooks around the clean itself on one node.
func (r *runner) cleanNode(ctx context.Context, n clusterfile.Node) (err error) {
	node := n.IP.String()
	start := time.Now()
	name := ""
	defer func() {
		if err != nil {
			r.report(progress.Event{Node: node, State: progress.StateNodeFailed, Step: name, Error: err.Error(), Elapsed: time.Since(start).Seconds()})
			err = &NodeError{Node: node, Step: name, Err: err}
			return
		}
		r.report(progress.Event{Node: node, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	}()
	name = stepClean
	script, err := cleanScript(r.c, r.deleteCluster)
	if err != nil {
		return err
	}
	name = "connect"
	exec, err := r.dial(ctx, n)
	if err != nil {
		return err
	}
	run := func(step string, fn func() error) error {
		name = step
		end := progress.Start(r.opts.Reporter, node, step)
		err := fn()
		end(err)
		return err
	}
	if len(hooksOf(r.plugins, clusterfile.PhasePreCleanHost, n.Roles)) > 0 {
		if err := run(hookName(clusterfile.PhasePreCleanHost), func() error {
			return r.runHooks(ctx, exec, n, clusterfile.PhasePreCleanHost, r.dir.Rootfs())
		}); err != nil {
			return err
		}
	}
	if err := run(stepClean, func() error { return exec.Run(ctx, script, nil, nil) }); err != nil {
		return err
	}
	if len(hooksOf(r.plugins, clusterfile.PhasePostCleanHost, n.Roles)) > 0 {
		if err := run(hookName(clusterfile.PhasePostCleanHost), func() error {
			return r.runHooks(ctx, exec, n, clusterfile.PhasePostCleanHost, "/")
		}); err != nil {
			return err
		}
	}
	name = ""
	return r.journal.Forget(node)
}

// hookMaster is the master the hooks of a phase of the whole cluster run
// on (master); ok is false when no master has hooks of the phase, and
// then none is reached.
func (r *runner) hookMaster(ctx context.Context, phase clusterfile.Phase) (n clusterfile.Node, ok bool, err error) {
	masters := r.c.Masters()
	if !slices.ContainsFunc(masters, func(m clusterfile.Node) bool { return len(hooksOf(r.plugins, phase, m.Roles)) > 0 }) {
		return n, false, nil
	}
	_, ip, err := r.master(ctx)
	if err != nil {
		return n, true, err
	}
	i := slices.IndexFunc(masters, func(m clusterfile.Node) bool { return m.IP.String() == ip })
	return masters[i], true, nil
}

// clusterHook runs the hooks of a phase of the whole cluster (sealer's
// pre-uninstall, post-uninstall, pre-scaleup, post-scaleup) on the master
// n (hookMaster), reported as its steps; a phase without hooks does
// nothing.
func (r *runner) clusterHook(ctx context.Context, n clusterfile.Node, phase clusterfile.Phase, dir string) error {
	if len(hooksOf(r.plugins, phase, n.Roles)) == 0 {
		return nil
	}
	node := n.IP.String()
	exec, err := r.dial(ctx, n)
	if err != nil {
		return &NodeError{Node: node, Step: "connect", Err: err}
	}
	end := progress.Start(r.opts.Reporter, node, hookName(phase))
	err = r.runHooks(ctx, exec, n, phase, dir)
	end(err)
	if err != nil {
		return &NodeError{Node: node, Step: hookName(phase), Err: err}
	}
	return nil
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
	return clusterfile.Node{IP: addr, Roles: clusterfile.RolesOf(h.Roles), SSH: s, Env: r.c.Env}, nil
}

// removeNode cleans a node the Clusterfile no longer lists.
func (r *runner) removeNode(ctx context.Context, ip string) error {
	n, err := r.recordedNode(ip)
	if err != nil {
		return err
	}
	return r.forgetUnreachable(ip, r.leave(ctx, n), r.opts.Force)
}

// forgetUnreachable is the error of a node's leaving, unless force and the
// node could not be reached (it is out of the cluster by then: drained
// and deleted from another master): then it is forgotten.
func (r *runner) forgetUnreachable(ip string, err error, force bool) error {
	var se *ssh.Error
	var ne *NodeError
	if err == nil || !force || !errors.As(err, &ne) || ne.Step != "connect" || !errors.As(err, &se) {
		return err
	}
	r.report(progress.Event{Node: ip, Step: stepClean, State: progress.StateSkipped, Error: "unreachable, forgotten (--force): " + err.Error()})
	return r.journal.Forget(ip)
}

// leave takes a node out of the cluster: drained and deleted from it by
// the runtime first, when the cluster has one, then cleaned.
func (r *runner) leave(ctx context.Context, n clusterfile.Node) error {
	ip := n.IP.String()
	if r.rt != nil {
		if err := r.drain(ctx, ip); err != nil {
			r.report(progress.Event{Node: ip, Step: "drain", State: progress.StateNodeFailed, Error: err.Error()})
			return &NodeError{Node: ip, Step: "drain", Err: err}
		}
	}
	return r.cleanNode(ctx, n)
}

// drain takes a node that leaves the cluster out of the runtime first
// (drained, deleted, out of etcd), from another master: any master may
// leave, but not the last one, which is the cluster.
func (r *runner) drain(ctx context.Context, ip string) error {
	_, master, err := r.masterExcept(ctx, ip)
	if err != nil {
		return fmt.Errorf("draining %s: %w (hoist delete removes the whole cluster)", ip, err)
	}
	return r.rt.Drain(ctx, master, ip)
}

// Delete is hoist delete: the cluster removed from its nodes (clean hooks,
// the runtime's reset, registry, hosts entries, mirror files, the data
// directory), or from some of them. Targets first (it takes the cluster's
// lock), then Run; Close releases the lock.
type Delete struct {
	Cluster clusterfile.Cluster
	// Plugins are the Clusterfile's; ImageHooks adds the image's.
	Plugins []clusterfile.Plugin
	// Only: these nodes rather than all of the Clusterfile and journal.
	Only []netip.Addr
	// Force: a node that cannot be reached is forgotten rather than
	// failed.
	Force bool
	// Lacking are the secrets that the cluster's kept Clusterfile left out
	// and that were not given (clusterfile.Kept.Fill): Targets refuses to
	// go on when a node it would touch needs one.
	Lacking clusterfile.Lacking
	Options

	journal *Journal
	nodes   []string
	unlock  func()
}

// Targets takes the cluster's lock, opens its journal and lists the nodes
// the delete touches.
func (d *Delete) Targets() ([]string, error) {
	var err error
	if d.unlock, err = lock(d.Root, d.Cluster.Name); err != nil {
		return nil, err
	}
	if d.journal, err = OpenJournal(layout.Local{Root: d.Root}.Cluster(d.Cluster.Name).Journal(), d.Cluster.Name); err != nil {
		return nil, err
	}
	d.nodes = deleteNodes(d.Cluster, d.journal, d.Only)
	if err := d.checkSecrets(); err != nil {
		return nil, err
	}
	return d.nodes, nil
}

// SecretsError is a delete from a kept Clusterfile that lacks the secrets
// some of its nodes are reached with: the SSH password (Password lists
// those nodes) or the private key's passphrase.
type SecretsError struct {
	Cluster, File        string
	Password, Passphrase []string
}

func (e *SecretsError) Error() string {
	var need []string
	if len(e.Password) > 0 {
		need = append(need, fmt.Sprintf("the SSH password (for %s)", strings.Join(e.Password, ", ")))
	}
	if len(e.Passphrase) > 0 {
		need = append(need, fmt.Sprintf("the private key's passphrase (for %s)", strings.Join(e.Passphrase, ", ")))
	}
	return fmt.Sprintf("cluster %s: delete needs %s, which hoist does not keep in %s", e.Cluster, strings.Join(need, " and "), e.File)
}

// checkSecrets refuses, before anything is asked or done, a delete that
// would reach a node without the secret it needs: it would fail there
// after the others were cleaned. A node the Clusterfile no longer lists
// is reached as recordedNode does, with the defaults' secrets.
func (d *Delete) checkSecrets() error {
	e := &SecretsError{Cluster: d.Cluster.Name, File: layout.Local{Root: d.Root}.Cluster(d.Cluster.Name).Clusterfile()}
	listed := map[string]bool{}
	for _, n := range d.Cluster.Nodes {
		listed[n.IP.String()] = true
	}
	for _, ip := range d.nodes {
		password, passphrase := ip, ip
		if !listed[ip] {
			key := d.Cluster.SSH.PrivateKey
			if h, ok := d.journal.Host(ip); ok && h.PrivateKey != "" {
				key = h.PrivateKey
			}
			password, passphrase = clusterfile.DefaultSSH, ""
			if key != "" {
				password, passphrase = "", clusterfile.DefaultSSH
			}
		}
		if slices.Contains(d.Lacking.Password, password) {
			e.Password = append(e.Password, ip)
		}
		if slices.Contains(d.Lacking.Passphrase, passphrase) {
			e.Passphrase = append(e.Passphrase, ip)
		}
	}
	if len(e.Password) > 0 || len(e.Passphrase) > 0 {
		return e
	}
	return nil
}

// deleteNodes lists the nodes a delete touches: those given, or every node
// of the Clusterfile and of the journal.
func deleteNodes(c clusterfile.Cluster, j *Journal, only []netip.Addr) []string {
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

// Run removes the cluster from the nodes of Targets; when no node is left
// in the journal, the cluster's state here goes too.
func (d *Delete) Run(ctx context.Context) (*Result, error) {
	if d.journal == nil {
		return nil, errors.New("delete: Run before Targets")
	}
	c, j := d.Cluster, d.journal
	r := &runner{c: c, opts: d.Options, journal: j, plugins: d.Plugins, dir: nodeDir(c)}
	defer r.close()
	if rt := clusterRuntime(j); rt != nil {
		// The cluster goes when every master of its control plane does.
		stays := slices.ContainsFunc(c.Masters(), func(m clusterfile.Node) bool {
			ip := m.IP.String()
			return controlPlane(j, recordedSteps(), ip) && !slices.Contains(d.nodes, ip)
		})
		if stays {
			// Some nodes of a cluster that stays: they leave it as
			// removed hosts do, drained first.
			r.rt = rt
		} else {
			r.deleteCluster = true
		}
	}
	byIP := map[string]clusterfile.Node{}
	for _, n := range c.Nodes {
		byIP[n.IP.String()] = n
	}
	res := &Result{Nodes: d.nodes, Errors: map[string]error{}}
	// The whole cluster goes: every node (or, with Kubernetes, every
	// master of its control plane).
	whole := (len(d.Only) == 0 || r.deleteCluster) && len(c.Masters()) > 0
	if whole {
		// sealer's pre-uninstall: on a master, before any node is
		// cleaned; should it fail, none is.
		n, hooks, err := r.hookMaster(ctx, clusterfile.PhasePreUninstall)
		if hooks && err == nil {
			err = r.clusterHook(ctx, n, clusterfile.PhasePreUninstall, r.dir.Rootfs())
		}
		if err != nil {
			for _, ip := range d.nodes {
				res.Errors[ip] = err
			}
			return res, nil
		}
	}
	errs := ssh.ForEach(ctx, d.nodes, d.Jobs, func(ctx context.Context, ip string) error {
		n, ok := byIP[ip]
		if !ok {
			var err error
			if n, err = r.recordedNode(ip); err != nil {
				return err
			}
		}
		return r.forgetUnreachable(ip, r.leave(ctx, n), d.Force)
	})
	for i, n := range d.nodes {
		res.Errors[n] = errs[i]
	}
	if whole && res.Err() == nil {
		// sealer's post-uninstall: on a master (the one of pre-uninstall,
		// when it had hooks), once every node is clean (its cluster
		// directory gone: the hook runs in /).
		n, hooks, err := r.hookMaster(ctx, clusterfile.PhasePostUninstall)
		if hooks && err == nil {
			err = r.clusterHook(ctx, n, clusterfile.PhasePostUninstall, "/")
		}
		if err != nil {
			// The error of the master asked, or of the first node when
			// none answered.
			at := d.nodes[0]
			if n.IP.IsValid() {
				at = n.IP.String()
			}
			res.Errors[at] = err
			return res, nil
		}
	}
	if res.Err() == nil && len(j.Nodes()) == 0 {
		// Nothing left: the cluster's state goes too.
		return res, os.RemoveAll(layout.Local{Root: d.Root}.Cluster(c.Name).Dir)
	}
	return res, d.forgetKept()
}

// forgetKept takes the nodes that left the cluster out of its kept
// Clusterfile, as sealer does after a scale-down, so that a later delete
// or status without -f does not list them. A Clusterfile that would be
// left without a master stays as it is: delete cleans a clean node again
// without harm.
func (d *Delete) forgetKept() error {
	kept, err := KeptClusterfile(d.Root, d.Cluster.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	recorded := d.journal.Nodes()
	var gone []string
	for _, ip := range d.nodes {
		if !slices.Contains(recorded, ip) {
			gone = append(gone, ip)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	rest, ok := kept.Without(gone)
	if !ok {
		return nil
	}
	data, err := rest.Marshal()
	if err != nil {
		return err
	}
	return writeKept(d.Root, d.Cluster.Name, data)
}

// ImageHooks adds the clean hooks of the cluster's image, whose tree is at
// rootfs, to the Clusterfile's; an image whose hooks cannot be read adds
// none (the image is not needed to delete).
func (d *Delete) ImageHooks(rootfs string) {
	if ps, err := imagePlugins(rootfs); err == nil {
		d.Plugins = mergePlugins(ps, d.Plugins)
	}
}

// Close releases the cluster's lock.
func (d *Delete) Close() {
	if d.unlock != nil {
		d.unlock()
		d.unlock = nil
	}
}

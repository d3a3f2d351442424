package apply

import (
	"context"
	"fmt"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
)

// kubeRuntime is the cluster's Kubernetes runtime when the image brings
// Kubernetes up (it has etc/kubeadm.yaml), else nil. The Clusterfile's
// kubeadm documents are checked here, before anything runs.
func kubeRuntime(c clusterfile.Cluster, image Image) (*kubeadm.Runtime, error) {
	if !kubeadm.IsKubernetes(image.Rootfs) {
		if len(c.Kubeadm) > 0 {
			return nil, fmt.Errorf("the Clusterfile has kubeadm documents, but image %s does not bring up Kubernetes (no %s)", c.Image, kubeadm.DefaultsFile)
		}
		return nil, nil
	}
	if len(c.Masters()) == 0 {
		return nil, fmt.Errorf("image %s brings up Kubernetes: the Clusterfile needs a host with the %s role", c.Image, clusterfile.RoleMaster)
	}
	cfg, err := kubeadm.Load(image.Rootfs, "Clusterfile", c.Kubeadm)
	if err != nil {
		return nil, err
	}
	dir := NodeDir(c)
	return &kubeadm.Runtime{Config: cfg, Rootfs: path.Join(dir, "rootfs"), State: path.Join(dir, "state")}, nil
}

// master reaches the first master.
func (r *runner) master(ctx context.Context) (ssh.Executor, string, error) {
	m := r.c.Masters()[0]
	e, err := r.pool.Get(ctx, r.access(m.IP.String(), m.SSH))
	return e, m.IP.String(), err
}

// runKubeStep runs one of the Kubernetes runtime's steps on a node.
func (r *runner) runKubeStep(ctx context.Context, e ssh.Executor, n clusterfile.Node, step string) error {
	ip := n.IP.String()
	if step == StepKubeNode {
		r.setUp.Store(ip, true)
		return r.kube.PrepareNode(ctx, e, exports(r.nodeEnv(n)))
	}
	if step == StepKubeInit {
		r.joined.Store(true)
		return r.kube.Init(ctx, e, ip)
	}
	master, masterIP, err := r.master(ctx)
	if err != nil {
		return fmt.Errorf("the first master: %w", err)
	}
	switch step {
	case StepKubeJoin:
		in, err := r.kube.NewJoinInput(ctx, master, masterIP, n.IsMaster())
		if err != nil {
			return fmt.Errorf("on the first master %s: %w", masterIP, err)
		}
		r.joined.Store(true)
		return r.kube.Join(ctx, e, ip, in)
	case StepKubeNetwork:
		// Every node that has joined, so far, gets a route here.
		var joined []string
		for _, o := range r.c.Nodes {
			if r.journal.Done(o.IP.String(), StepKubeInit, kubeInitKey) || r.journal.Done(o.IP.String(), StepKubeJoin, joinKey(o)) {
				joined = append(joined, o.IP.String())
			}
		}
		nodes, err := r.kube.WaitRegistered(ctx, master, joined)
		if err != nil {
			return err
		}
		return r.kube.Network(ctx, e, ip, nodes)
	case StepKubeReady:
		if err := r.kube.WaitReady(ctx, master, e, ip); err != nil {
			return err
		}
		return r.kube.Configure(ctx, master, ip, n.Labels, n.Taints)
	}
	return fmt.Errorf("unknown step %q", step)
}

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
	env["HOIST_ROLES"] = strings.Join(n.Roles, ",")
	env["HOIST_ROOTFS"] = path.Join(NodeDir(r.c), "rootfs")
	return env
}

// useKubeconfig fetches the admin kubeconfig from the first master for
// the apps: kept in the apply's temporary directory, never in the state.
func (r *runner) useKubeconfig(ctx context.Context) error {
	master, _, err := r.master(ctx)
	if err != nil {
		return fmt.Errorf("the first master: %w", err)
	}
	data, err := kubeadm.Kubeconfig(ctx, master)
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

// Kubeconfig returns the admin kubeconfig of a cluster hoist brought up,
// from its first master.
func Kubeconfig(ctx context.Context, c clusterfile.Cluster, opts Options) ([]byte, error) {
	masters := c.Masters()
	if len(masters) == 0 {
		return nil, fmt.Errorf("cluster %s has no master", c.Name)
	}
	r := &runner{c: c, opts: opts, pool: ssh.NewPool()}
	defer r.pool.Close()
	e, err := r.pool.Get(ctx, r.access(masters[0].IP.String(), masters[0].SSH))
	if err != nil {
		return nil, err
	}
	data, err := kubeadm.Kubeconfig(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", masters[0].IP, err)
	}
	return data, nil
}

// drain takes a node that leaves the cluster out of Kubernetes first. The
// first master cannot leave: the others join through it.
func (r *runner) drain(ctx context.Context, ip string) error {
	master, masterIP, err := r.master(ctx)
	if ip == masterIP {
		return fmt.Errorf("%s is the first master: it cannot be removed while the cluster lives (hoist delete removes the whole cluster)", ip)
	}
	if err != nil {
		return fmt.Errorf("the first master: %w", err)
	}
	return r.kube.Drain(ctx, master, ip)
}

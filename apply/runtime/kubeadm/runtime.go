package kubeadm

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// The runtime's steps, in the order they run on a node.
const (
	StepNode     = "kube-node"     // binaries, containerd, kubelet service
	StepEndpoint = "kube-endpoint" // the control plane's name, balanced on the node
	StepInit     = "kube-init"     // kubeadm init, on the master that makes the cluster
	StepUpgrade  = "kube-upgrade"  // kubeadm upgrade, member by member, in an upgrade
	StepJoin     = "kube-join"     // kubeadm join, every other node
	StepNetwork  = "kube-network"  // hoist's pod network: bridge and routes
	StepReady    = "kube-ready"    // Ready, then labels and taints
)

// Detect is the runtime of an image that has etc/kubeadm.yaml; the
// Clusterfile's kubeadm documents are checked here, before anything runs.
func (*Runtime) Detect(c clusterfile.Cluster, image step.Image) (step.Runtime, error) {
	if !IsKubernetes(image.Rootfs) {
		if len(c.Kubeadm) > 0 {
			return nil, fmt.Errorf("the Clusterfile has kubeadm documents, but image %s does not bring up Kubernetes (no %s)", c.Image, DefaultsFile)
		}
		return nil, nil
	}
	if len(c.Masters()) == 0 {
		return nil, fmt.Errorf("image %s brings up Kubernetes: the Clusterfile needs a host with the %s role", c.Image, clusterfile.RoleMaster)
	}
	var imageEnv map[string]string
	if image.Meta != nil {
		imageEnv = image.Meta.Env
	}
	cfg, err := Load(image.Rootfs, "Clusterfile", imageEnv, c.Env, c.Kubeadm)
	if err != nil {
		return nil, err
	}
	return &Runtime{Config: cfg, Rootfs: image.Dir.Rootfs(), State: image.Dir.State(), Hoist: image.Hoist,
		OwnCNI: image.Meta != nil && len(image.Meta.CNI) > 0}, nil
}

// Steps lists the runtime's node steps; the zero Runtime lists them all.
func (k *Runtime) Steps() []step.Step {
	steps := []step.Step{nodeStep(k), endpointStep(k), initStep(k), upgradeStep(k, step.UpgradeMasters), joinStep(k, step.JoinMasters),
		upgradeStep(k, step.UpgradeWorkers), joinStep(k, step.JoinWorkers)}
	if !k.OwnCNI {
		steps = append(steps, networkStep(k))
	}
	return append(steps, readyStep(k))
}

// Version is the kubernetesVersion of the kubeadm configuration.
func (k *Runtime) Version() string {
	if k.Config == nil {
		return ""
	}
	return k.Config.Get(KindCluster, "kubernetesVersion")
}

// Kubeconfig returns the cluster's admin kubeconfig, from a master. Its
// server is the control plane's endpoint, unless that is the local name,
// which resolves on the nodes only: then it is that master's own API
// server, which its certificate names.
func (k *Runtime) Kubeconfig(ctx context.Context, master ssh.Executor, masterIP string) ([]byte, error) {
	data, err := ssh.Output(ctx, master, "cat "+AdminConf)
	if err != nil {
		return nil, err
	}
	port := 6443
	if k.Config != nil {
		port = k.Config.APIServerPort()
	}
	return serverFromNodes(data, net.JoinHostPort(masterIP, strconv.Itoa(port)))
}

// serverFromNodes is the kubeconfig with every cluster whose server is the
// local name pointed at address instead.
func serverFromNodes(kubeconfig []byte, address string) ([]byte, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", AdminConf, err)
	}
	changed := false
	for name, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			return nil, fmt.Errorf("%s: cluster %q: server %q: %w", AdminConf, name, c.Server, err)
		}
		if u.Hostname() == LocalEndpointName {
			u.Host = address
			c.Server = u.String()
			changed = true
		}
	}
	if !changed {
		return kubeconfig, nil
	}
	return clientcmd.Write(*cfg)
}

// serverOf is the address (host:port) of the server of a kubeconfig's
// current context.
func serverOf(kubeconfig []byte) (string, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return "", err
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return "", fmt.Errorf("no current context %q", cfg.CurrentContext)
	}
	c, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		return "", fmt.Errorf("context %q: no cluster %q", cfg.CurrentContext, ctx.Cluster)
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Port() == "" {
		return "", fmt.Errorf("cluster %q: server %q is not https://HOST:PORT", ctx.Cluster, c.Server)
	}
	return u.Host, nil
}

package kubeadm

import (
	"context"
	"fmt"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// The runtime's steps, in the order they run on a node.
const (
	StepNode    = "kube-node"    // binaries, containerd, kubelet service
	StepInit    = "kube-init"    // kubeadm init, first master
	StepJoin    = "kube-join"    // kubeadm join, every other node
	StepNetwork = "kube-network" // hoist's pod network: bridge and routes
	StepReady   = "kube-ready"   // Ready, then labels and taints
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
	steps := []step.Step{nodeStep(k), initStep(k), joinStep(k, step.JoinMasters), joinStep(k, step.JoinWorkers)}
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

// Kubeconfig returns the cluster's admin kubeconfig, from a master.
func (k *Runtime) Kubeconfig(ctx context.Context, master ssh.Executor) ([]byte, error) {
	return ssh.Output(ctx, master, "cat "+AdminConf)
}

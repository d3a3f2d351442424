package kubeadm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// upgradeStep upgrades the cluster's members in kubeadm's order when the
// apply brings a newer Kubernetes (step.Input.Upgrade): the masters one at
// a time (stage UpgradeMasters: the first to go runs kubeadm upgrade
// apply, the others kubeadm upgrade node), before any new master joins;
// then the workers, MaxUnavailable at a time (stage UpgradeWorkers). Its
// key is the version it brings the node to; each run asks the node where
// it stands, so that an upgrade stopped anywhere goes on from there.
func upgradeStep(k *Runtime, stage step.Stage) step.Step {
	return step.Step{
		Name:  StepUpgrade,
		Stage: stage,
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			if in.Upgrade == nil {
				return "", false
			}
			return in.Upgrade.To, n.IsMaster() == (stage == step.UpgradeMasters)
		},
		Run: func(ctx context.Context, t *step.Target) error {
			master, _, err := t.Master(ctx)
			if err != nil {
				return fmt.Errorf("a master of the cluster: %w", err)
			}
			return k.Upgrade(ctx, t.Exec, master, t.Node.IP.String(), t.Node.IsMaster(), t.Input.Upgrade.To, step.Exports(t.Env))
		},
		// The kubelet started again is waited for by kube-ready too.
		Restarts: true,
	}
}

// NodeVersions is where a node stands in an upgrade.
type NodeVersions struct {
	// Member: the node is in the cluster (kubeadm wrote its kubelet.conf).
	Member bool
	// Kubelet is its installed kubelet's version; ControlPlane, on a
	// master, its kube-apiserver manifest's ("" when it has none).
	Kubelet, ControlPlane string
}

// ReadNodeVersions asks a node where it stands.
func ReadNodeVersions(ctx context.Context, e ssh.Executor) (NodeVersions, error) {
	out, err := ssh.Output(ctx, e, fmt.Sprintf(`[ -e /etc/kubernetes/kubelet.conf ] && echo member
printf 'kubelet '; /usr/bin/kubelet --version 2>/dev/null || echo
[ -f %[1]s ] && head -c %[2]d %[1]s
true`, ssh.Quote(apiServerManifestPath), maxManifestSize))
	if err != nil {
		return NodeVersions{}, err
	}
	return parseNodeVersions(string(out))
}

// parseNodeVersions reads ReadNodeVersions' answer: "member" or not, then
// "kubelet Kubernetes vX.Y.Z" (or just "kubelet" when it has none), then
// the kube-apiserver manifest, if any.
func parseNodeVersions(out string) (NodeVersions, error) {
	var v NodeVersions
	if rest, ok := strings.CutPrefix(out, "member\n"); ok {
		v.Member, out = true, rest
	}
	line, manifest, _ := strings.Cut(out, "\n")
	kubelet, ok := strings.CutPrefix(line, "kubelet")
	if !ok {
		return v, fmt.Errorf("the node's answer %q is not its kubelet's version", clip(line, 80))
	}
	if kubelet = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(kubelet), "Kubernetes")); kubelet != "" {
		parsed, err := ParseVersion(kubelet)
		if err != nil {
			return v, fmt.Errorf("/usr/bin/kubelet --version: %w", err)
		}
		v.Kubelet = parsed
	}
	if strings.TrimSpace(manifest) != "" {
		var err error
		if v.ControlPlane, err = apiServerVersion([]byte(manifest)); err != nil {
			return v, fmt.Errorf("%s: %w", apiServerManifestPath, err)
		}
	}
	return v, nil
}

// Upgrade brings one member of the cluster to Kubernetes to, as kubeadm's
// upgrade guide does, with the image's binaries (its rootfs on the node
// is the new image's by now):
//   - on a master, kubeadm upgrade apply when the cluster's configuration
//     is still older (the first master to go), else kubeadm upgrade node:
//     its control plane's static pods;
//   - on a worker, kubeadm upgrade node: its kubelet's configuration;
//   - then the node drained, the image's init-node.sh run with its
//     kubelet stopped (the new binaries, the kubelet started again), the
//     node back Ready at the new version, and uncordoned.
//
// A node already at to is uncordoned only, when cordoned (a run stopped
// between the drain and the uncordon: a node cordoned by hand before the
// upgrade is uncordoned too, as kubeadm's guide would); one that is not a
// member yet joins later, at the image's version.
func (k *Runtime) Upgrade(ctx context.Context, e, master ssh.Executor, ip string, controlPlane bool, to, env string) error {
	v, err := ReadNodeVersions(ctx, e)
	if err != nil {
		return err
	}
	if !v.Member {
		return nil
	}
	kubeadm := ssh.Quote(path.Join(k.Rootfs, "bin/kubeadm"))
	ignore := ""
	if list := k.Config.IgnoredPreflightErrors(controlPlane); len(list) > 0 {
		ignore = " --ignore-preflight-errors=" + ssh.Quote(strings.Join(list, ","))
	}
	if Older(v.Kubelet, to) || (controlPlane && Older(v.ControlPlane, to)) {
		what, args := "kubeadm upgrade node", " upgrade node"
		if controlPlane {
			stored, cluster, err := k.clusterConfiguration(ctx, e)
			if err != nil {
				return err
			}
			if Older(cluster, to) {
				if err := k.retag(ctx, e, stored); err != nil {
					return err
				}
				what, args = "kubeadm upgrade apply "+to, " upgrade apply "+ssh.Quote(to)+" --yes"
			}
		}
		if err := e.Run(ctx, kubeadm+args+ignore+" >&2", nil, nil); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	n, err := k.node(ctx, master, ip)
	if err != nil {
		return err
	}
	drained := Older(v.Kubelet, to)
	if drained {
		if err := k.drain(ctx, master, n.Name); err != nil {
			return err
		}
		stop := fmt.Sprintf("%s node service stop kubelet --state-dir %s", ssh.Quote(k.Hoist), ssh.Quote(k.State))
		if err := e.Run(ctx, stop, nil, nil); err != nil {
			return fmt.Errorf("stopping the kubelet: %w", err)
		}
		if err := k.PrepareNode(ctx, e, env); err != nil {
			return fmt.Errorf("%s: %w", InitScript, err)
		}
		// Its status said Ready before the restart: the new kubelet's
		// own report is what counts.
		err := k.waitNode(ctx, master, e, ip, "Ready at "+to, func(n NodeInfo) bool { return n.Ready && n.KubeletVersion == to })
		if err != nil {
			return err
		}
	}
	if controlPlane {
		// A kubelet of another minor sees the control plane's static pods
		// as new pods and restarts them, after it reports the node
		// Ready: the next node's drain must not start while this
		// master's controller manager is down (no evicted pod would be
		// replaced, so a PodDisruptionBudget holds the drain).
		if err := k.waitStaticPods(ctx, master, e, n.Name); err != nil {
			return err
		}
	}
	if !drained && !n.Unschedulable {
		return nil
	}
	if err := master.Run(ctx, k.kubectl("uncordon "+ssh.Quote(n.Name)+" >&2"), nil, nil); err != nil {
		return fmt.Errorf("uncordon %s: %w", n.Name, err)
	}
	return nil
}

// clusterConfiguration is the cluster's kubeadm ClusterConfiguration
// (kube-system/kubeadm-config), which kubeadm upgrade works from, and its
// Kubernetes version (kubeadm upgrade apply sets it once the control plane
// of its master is upgraded), asked on a master.
func (k *Runtime) clusterConfiguration(ctx context.Context, master ssh.Executor) (stored []byte, version string, err error) {
	stored, err = ssh.Output(ctx, master, k.kubectl("-n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'"))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", storedConfig, err)
	}
	var cfg struct {
		KubernetesVersion string `json:"kubernetesVersion"`
	}
	if err := yaml.Unmarshal(stored, &cfg); err != nil {
		return nil, "", fmt.Errorf("%s: %w", storedConfig, err)
	}
	if version, err = ParseVersion(cfg.KubernetesVersion); err != nil {
		return nil, "", fmt.Errorf("%s: kubernetesVersion %w", storedConfig, err)
	}
	return stored, version, nil
}

const storedConfig = "the cluster's kubeadm configuration (kube-system/kubeadm-config)"

// retag gives the cluster's stored configuration the image's etcd and
// CoreDNS tags (Config.Retag) before kubeadm upgrade apply reads it. An
// upgrade stopped after this does it again, unchanged.
func (k *Runtime) retag(ctx context.Context, master ssh.Executor, stored []byte) error {
	retagged, changed, err := k.Config.Retag(stored)
	if err != nil {
		return fmt.Errorf("%s: %w", storedConfig, err)
	}
	if !changed {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{"ClusterConfiguration": string(retagged)}})
	if err != nil {
		return err
	}
	cmd := k.kubectl("-n kube-system patch configmap kubeadm-config --type merge --patch-file /dev/stdin >&2")
	if err := master.Run(ctx, cmd, bytes.NewReader(patch), nil); err != nil {
		return fmt.Errorf("%s: the image's etcd and CoreDNS tags: %w", storedConfig, err)
	}
	return nil
}

// kubeletPod is a pod a kubelet runs from its manifest directory, as the
// kubelet itself reports it.
type kubeletPod struct {
	Name, Component string
	Ready           bool
}

// controlPlanePods are the static pods kubeadm gives every master (and
// etcd, unless the cluster's etcd is external: waited for when there).
var controlPlanePods = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// waitStaticPods waits until the kubelet of the master named name runs
// kubeadm's control plane and reports every static pod of its Ready.
// It asks the kubelet (its /pods, through the API server), not the mirror
// pods: right after a kubelet restart those are still the old kubelet's.
func (k *Runtime) waitStaticPods(ctx context.Context, master, node ssh.Executor, name string) error {
	var waiting []string
	return k.untilKubelet(ctx, node, func() (bool, error) {
		out, err := ssh.Output(ctx, master, k.kubectl("get --raw /api/v1/nodes/"+ssh.Quote(name)+"/proxy/pods"))
		if err != nil {
			waiting = []string{"the kubelet's pods: " + clip(strings.TrimSpace(err.Error()), 200)}
			return false, nil
		}
		pods, err := parseStaticPods(out)
		if err != nil {
			return false, fmt.Errorf("the kubelet of %s: %w", name, err)
		}
		waiting = notReady(pods)
		return len(waiting) == 0, nil
	}, func(timeout time.Duration) string {
		return fmt.Sprintf("the control plane of %s is not ready after %s: %s", name, timeout, strings.Join(waiting, ", "))
	})
}

// notReady names what keeps a master's control plane from being ready:
// static pods not Ready, kubeadm's components missing.
func notReady(pods []kubeletPod) []string {
	var out []string
	for _, component := range controlPlanePods {
		if !slices.ContainsFunc(pods, func(p kubeletPod) bool { return p.Component == component }) {
			out = append(out, component+" not started")
		}
	}
	for _, p := range pods {
		if !p.Ready {
			out = append(out, p.Name+" not ready")
		}
	}
	return out
}

// parseStaticPods reads a kubelet's /pods (a v1 PodList): its static pods
// are those of the file source, with the status its status manager holds.
func parseStaticPods(data []byte) ([]kubeletPod, error) {
	var list struct {
		Kind  string
		Items []struct {
			Metadata struct {
				Name        string
				Labels      map[string]string
				Annotations map[string]string
			}
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("its pods: %w", err)
	}
	if list.Kind != "PodList" {
		return nil, fmt.Errorf("its pods: a %q, not a PodList", clip(list.Kind, 40))
	}
	var pods []kubeletPod
	for _, it := range list.Items {
		if it.Metadata.Annotations["kubernetes.io/config.source"] != "file" {
			continue
		}
		p := kubeletPod{Name: it.Metadata.Name, Component: it.Metadata.Labels["component"]}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				p.Ready = c.Status == "True"
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}

package kubeadm

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// RunningVersion is the Kubernetes version of a master's control plane:
// the tag of its kube-apiserver manifest's image, read from disk, so that
// a control plane that is down (a machine restarted without systemd) still
// tells it.
func RunningVersion(ctx context.Context, master ssh.Executor) (string, error) {
	data, err := ssh.Output(ctx, master, "cat "+ssh.Quote(apiServerManifestPath))
	if err != nil {
		return "", fmt.Errorf("%s: %w", apiServerManifestPath, err)
	}
	v, err := apiServerVersion(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", apiServerManifestPath, err)
	}
	return v, nil
}

// apiServerManifestPath is the kube-apiserver's static pod on a master.
const apiServerManifestPath = ManifestsDir + "/kube-apiserver.yaml"

// apiServerVersion is the Kubernetes version of a kube-apiserver static
// pod manifest: its image's tag.
func apiServerVersion(manifest []byte) (string, error) {
	pod, err := ParseStaticPod(manifest)
	if err != nil {
		return "", err
	}
	return ImageVersion(pod.Image)
}

// CheckSkew refuses to apply an image of Kubernetes image to a cluster that
// runs running, before anything changes: a downgrade (kubeadm has none)
// and a skipped minor version. The same version, a newer patch and the
// next minor pass: the last two are upgrades.
func CheckSkew(running, image string) error {
	r, err := semver(running)
	if err != nil {
		return fmt.Errorf("the cluster's version: %w", err)
	}
	i, err := semver(image)
	if err != nil {
		return fmt.Errorf("the image's version: %w", err)
	}
	switch {
	case less(i, r):
		return fmt.Errorf("the cluster runs Kubernetes %s, the image %s: a downgrade, which kubeadm cannot do (apply an image of %s or later)", running, image, running)
	case i[0] != r[0] || i[1] > r[1]+1:
		return fmt.Errorf("the cluster runs Kubernetes %s, the image %s: that skips a minor version, which Kubernetes does not allow (go through v%d.%d first)", running, image, r[0], r[1]+1)
	}
	return nil
}

// semver reads v1.37.2 (a pre-release or build suffix is not compared).
func semver(v string) ([3]int, error) {
	var out [3]int
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	if !strings.HasPrefix(v, "v") || len(parts) != 3 {
		return out, fmt.Errorf("%s is not a version such as v1.37.2", strconv.QuoteToASCII(clip(v, 80)))
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(p) > 6 {
			return out, fmt.Errorf("%s is not a version such as v1.37.2", strconv.QuoteToASCII(clip(v, 80)))
		}
		out[i] = n
	}
	return out, nil
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// CheckCluster refuses an image whose Kubernetes the running cluster
// cannot take (CheckSkew against its control plane's version, asked on a
// master), and returns the upgrade when some part of the cluster runs an
// older version than the image's: its control plane, or a node's kubelet
// (an upgrade an earlier apply left half done: kubeadm upgrades a node's
// kubelet last). An image whose configuration names no version installs
// what its kubeadm does: not checked.
func (k *Runtime) CheckCluster(ctx context.Context, master ssh.Executor) (*step.Upgrade, error) {
	image := k.Version()
	if !version.MatchString(image) {
		return nil, nil
	}
	running, err := RunningVersion(ctx, master)
	if err != nil {
		return nil, err
	}
	if err := CheckSkew(running, image); err != nil {
		return nil, err
	}
	oldest := running
	// An API server that does not answer (a control plane still coming
	// back) tells no kubelet's version: its control plane's decides.
	if nodes, err := k.Nodes(ctx, master); err == nil {
		for _, n := range nodes {
			if Older(n.KubeletVersion, oldest) {
				oldest = n.KubeletVersion
			}
		}
	}
	if !Older(oldest, image) {
		return nil, nil
	}
	return &step.Upgrade{From: oldest, To: image}, nil
}

// Older tells whether version a is older than b; a version that does not
// parse is not older than any.
func Older(a, b string) bool {
	va, err := semver(a)
	if err != nil {
		return false
	}
	vb, err := semver(b)
	return err == nil && less(va, vb)
}

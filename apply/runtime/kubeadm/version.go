package kubeadm

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/apply/ssh"
)

// RunningVersion is the Kubernetes version of a master's control plane:
// the tag of its kube-apiserver manifest's image, read from disk, so that
// a control plane that is down (a machine restarted without systemd) still
// tells it.
func RunningVersion(ctx context.Context, master ssh.Executor) (string, error) {
	manifest := path.Join(ManifestsDir, "kube-apiserver.yaml")
	data, err := ssh.Output(ctx, master, "cat "+ssh.Quote(manifest))
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifest, err)
	}
	pod, err := ParseStaticPod(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifest, err)
	}
	v, err := ImageVersion(pod.Image)
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifest, err)
	}
	return v, nil
}

// ErrUpgrade is the refusal of an image of a newer Kubernetes than the
// cluster runs: hoist does not upgrade a control plane yet, and installing
// the image's kubelet on nodes ahead of it breaks Kubernetes' version skew
// policy.
var ErrUpgrade = errors.New("upgrading Kubernetes is not supported yet")

// CheckSkew refuses to apply an image of Kubernetes image to a cluster that
// runs running, before anything changes: a downgrade (kubeadm has none),
// a skipped minor version, and, for now, any upgrade (ErrUpgrade).
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
	case r == i:
		return nil
	case less(i, r):
		return fmt.Errorf("the cluster runs Kubernetes %s, the image %s: a downgrade, which kubeadm cannot do (to go back after an upgrade, restore a backup taken before it: hoist restore)", running, image)
	case i[0] != r[0] || i[1] > r[1]+1:
		return fmt.Errorf("the cluster runs Kubernetes %s, the image %s: that skips a minor version, which Kubernetes does not allow (go through v%d.%d first)", running, image, r[0], r[1]+1)
	}
	return fmt.Errorf("the cluster runs Kubernetes %s, the image %s: %w (apply an image of %s)", running, image, ErrUpgrade, running)
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
// cannot take (CheckSkew), asked on a master. An image whose configuration
// names no version installs what its kubeadm does: not checked.
func (k *Runtime) CheckCluster(ctx context.Context, master ssh.Executor) error {
	image := k.Version()
	if !version.MatchString(image) {
		return nil
	}
	running, err := RunningVersion(ctx, master)
	if err != nil {
		return err
	}
	return CheckSkew(running, image)
}

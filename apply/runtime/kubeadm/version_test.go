package kubeadm

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckSkew: kubeadm's rules for a version change, checked before
// anything changes: no downgrade, no skipped minor, and no upgrade yet.
func TestCheckSkew(t *testing.T) {
	for _, c := range []struct{ running, image, want string }{
		{"v1.37.2", "v1.37.2", ""},
		{"v1.37.2", "v1.37.1", "the cluster runs Kubernetes v1.37.2, the image v1.37.1: a downgrade, which kubeadm cannot do (to go back after an upgrade, restore a backup taken before it: hoist restore)"},
		{"v1.37.2", "v1.36.9", "the cluster runs Kubernetes v1.37.2, the image v1.36.9: a downgrade"},
		{"v1.35.4", "v1.37.2", "the cluster runs Kubernetes v1.35.4, the image v1.37.2: that skips a minor version, which Kubernetes does not allow (go through v1.36 first)"},
		{"v1.37.2", "v2.0.0", "that skips a minor version"},
		{"v1.36.3", "v1.37.2", "the cluster runs Kubernetes v1.36.3, the image v1.37.2: upgrading Kubernetes is not supported yet (apply an image of v1.36.3)"},
		{"v1.37.2", "v1.37.10", "upgrading Kubernetes is not supported yet"},
		{"v1.37.2-rc.1", "v1.37.2", ""},
		{"1.37.2", "v1.37.2", `the cluster's version: "1.37.2" is not a version such as v1.37.2`},
		{"v1.37.2", "v1.37", `the image's version: "v1.37" is not a version such as v1.37.2`},
	} {
		err := CheckSkew(c.running, c.image)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s -> %s: %v", c.running, c.image, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: %v\nwant %s", c.running, c.image, err, c.want)
		}
	}
	if err := CheckSkew("v1.36.3", "v1.36.4"); !errors.Is(err, ErrUpgrade) {
		t.Errorf("a patch upgrade: %v, want ErrUpgrade", err)
	}
}

// FuzzCheckSkew: the running version comes from a node's manifest. Only
// the same version passes.
func FuzzCheckSkew(f *testing.F) {
	f.Add("v1.37.2", "v1.37.2")
	f.Add("v1.37.2-rc.0+abc", "v1.37.2")
	f.Add("v01.037.2", "v1.37.2")
	f.Add("v1.37.99999999999999999999", "v1.37.2")
	f.Add("v-1.37.2", "v1.37.2")
	f.Fuzz(func(t *testing.T, running, image string) {
		if err := CheckSkew(running, image); err == nil {
			r, _ := semver(running)
			i, _ := semver(image)
			if r != i {
				t.Fatalf("%q -> %q passed", running, image)
			}
		}
	})
}

package kubeadm

import (
	"strings"
	"testing"
)

// TestCheckSkew: kubeadm's rules for a version change, checked before
// anything changes: no downgrade, no skipped minor; a patch or the next
// minor is an upgrade.
func TestCheckSkew(t *testing.T) {
	for _, c := range []struct{ running, image, want string }{
		{"v1.37.2", "v1.37.2", ""},
		{"v1.37.2", "v1.37.1", "the cluster runs Kubernetes v1.37.2, the image v1.37.1: a downgrade, which kubeadm cannot do (apply an image of v1.37.2 or later)"},
		{"v1.37.2", "v1.36.9", "the cluster runs Kubernetes v1.37.2, the image v1.36.9: a downgrade"},
		{"v1.35.4", "v1.37.2", "the cluster runs Kubernetes v1.35.4, the image v1.37.2: that skips a minor version, which Kubernetes does not allow (go through v1.36 first)"},
		{"v1.37.2", "v2.0.0", "that skips a minor version"},
		{"v1.36.3", "v1.37.2", ""},
		{"v1.37.2", "v1.37.10", ""},
		{"v1.36.9", "v1.37.0-rc.1", ""},
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
}

// TestOlder: what tells an upgrade from a version that stays.
func TestOlder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"v1.36.3", "v1.37.2", true},
		{"v1.37.1", "v1.37.2", true},
		{"v1.37.2", "v1.37.2", false},
		{"v1.37.10", "v1.37.2", false},
		{"v1.37.2-rc.1", "v1.37.2", false},
		{"", "v1.37.2", false},
		{"garbage", "v1.37.2", false},
		{"v1.36.3", "", false},
	} {
		if got := Older(c.a, c.b); got != c.want {
			t.Errorf("Older(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// FuzzCheckSkew: the running version comes from a node's manifest. What
// passes is the same version, a newer patch or the next minor.
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
			if less(i, r) || i[0] != r[0] || i[1] > r[1]+1 {
				t.Fatalf("%q -> %q passed", running, image)
			}
		}
	})
}

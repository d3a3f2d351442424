package discover

import (
	"testing"

	"github.com/Masterminds/semver/v3"
)

// FuzzKubeVersion: --kube-version and a Kubefile's KUBEVERSION are read
// from outside. What ParseKubeVersion accepts reads back as itself; what
// KubeVersionInRange returns is a version the range allows; neither
// panics on anything.
func FuzzKubeVersion(f *testing.F) {
	for _, s := range []string{"1.31", "v1.31.4", "v1.31.0-rc.1", "2.0", ">=1.25.0-0", ">=1.28 <1.38", "~1.31", "^1.30",
		"<1.0", ">=1.40", "1.x", "", "v", "1.31 || 1.33", ">=1.28,<1.30", "=v1.37.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseKubeVersion(s); err == nil {
			again, err := ParseKubeVersion(v)
			if err != nil || again != v {
				t.Fatalf("ParseKubeVersion(%q) = %q, which reads back as %q, %v", s, v, again, err)
			}
		}
		v, err := KubeVersionInRange(s)
		if err != nil {
			return
		}
		c, err := semver.NewConstraint(s)
		if err != nil {
			t.Fatalf("KubeVersionInRange(%q) = %q for a range semver refuses: %v", s, v, err)
		}
		if !c.Check(semver.MustParse(v)) {
			t.Fatalf("KubeVersionInRange(%q) = %q, which the range does not allow", s, v)
		}
		_ = CheckAPIVersions([]string{s})
	})
}

package discover

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chartutil"
)

// NewestKubeVersion is the newest Kubernetes version that hoist's own base
// image ships (KUBERNETES_VERSION in images/kubernetes/binaries.sh, which a
// test keeps this in step with). Charts are rendered for it when nothing
// says another version: Helm's own default, v1.20.0, is older than what
// most charts accept today (kubeVersion: ">=1.25.0-0").
const NewestKubeVersion = "v1.37.2"

// kubeVersionShape is what --kube-version takes: 1.31, 1.31.4, v1.31.4,
// with an optional pre-release or build part (v1.31.0-rc.1).
var kubeVersionShape = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)?([-+].+)?$`)

// ParseKubeVersion reads a Kubernetes version (1.31, 1.31.4, v1.31.4) and
// returns it as Kubernetes writes it (v1.31.0, v1.31.4).
func ParseKubeVersion(s string) (string, error) {
	if !kubeVersionShape.MatchString(s) {
		return "", fmt.Errorf("%q is not a Kubernetes version such as v1.31.4", s)
	}
	v, err := semver.NewVersion(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a Kubernetes version such as v1.31.4: %w", s, err)
	}
	if v.Major() != 1 {
		return "", fmt.Errorf("%q is not a Kubernetes version: Kubernetes versions are 1.x", s)
	}
	return "v" + v.String(), nil
}

// CheckAPIVersions checks the --api-versions values: an API group version
// (apps/v1, v1) or a resource of one (monitoring.coreos.com/v1/ServiceMonitor),
// as `helm template --api-versions` takes them.
func CheckAPIVersions(list []string) error {
	for _, a := range list {
		if a == "" || strings.ContainsAny(a, " \t\n,") || strings.Count(a, "/") > 2 || strings.HasPrefix(a, "/") || strings.HasSuffix(a, "/") {
			return fmt.Errorf("%q is not an API version such as apps/v1 or monitoring.coreos.com/v1/ServiceMonitor", a)
		}
	}
	return nil
}

// KubeVersionInRange returns the highest Kubernetes version that a
// KUBEVERSION range (">=1.28 <1.38", "~1.31", "v1.37.2") allows, among
// those hoist can name without a list of releases: NewestKubeVersion and
// the patches below it, then each older minor from its .0 (a release every
// minor has) or, when the range starts within that minor, from the first
// patch it allows. A range that only allows versions newer than
// NewestKubeVersion gets the first one it allows.
func KubeVersionInRange(r string) (string, error) {
	c, err := semver.NewConstraint(r)
	if err != nil {
		return "", fmt.Errorf("KUBEVERSION %q: %w", r, err)
	}
	newest := semver.MustParse(NewestKubeVersion)
	allows := func(minor, patch uint64) bool {
		return c.Check(semver.New(1, minor, patch, "", ""))
	}
	// The newest minor: from the patch hoist ships down.
	for p := int64(newest.Patch()); p >= 0; p-- {
		if allows(newest.Minor(), uint64(p)) {
			return fmt.Sprintf("v1.%d.%d", newest.Minor(), p), nil
		}
	}
	// Older minors: the first patch the range allows in each, from the top.
	for m := int64(newest.Minor()) - 1; m >= 0; m-- {
		if p, ok := firstPatch(allows, uint64(m)); ok {
			return fmt.Sprintf("v1.%d.%d", m, p), nil
		}
	}
	// Newer minors than hoist knows: the first the range allows.
	for m := newest.Minor(); m <= newest.Minor()+20; m++ {
		from := uint64(0)
		if m == newest.Minor() {
			from = newest.Patch() + 1
		}
		for p := from; p < maxPatch; p++ {
			if allows(m, p) {
				return fmt.Sprintf("v1.%d.%d", m, p), nil
			}
		}
	}
	return "", fmt.Errorf("KUBEVERSION %q allows no Kubernetes 1.x version", r)
}

// maxPatch bounds the patches tried in one minor: Kubernetes has never
// gone past a few dozen.
const maxPatch = 100

// firstPatch finds the lowest patch of minor that allows accepts.
func firstPatch(allows func(minor, patch uint64) bool, minor uint64) (uint64, bool) {
	for p := uint64(0); p < maxPatch; p++ {
		if allows(minor, p) {
			return p, true
		}
	}
	return 0, false
}

// capabilities are Helm's client-only capabilities for a render: the
// Kubernetes version (as `helm template --kube-version`) and Helm's default
// API versions with the extra ones (as `--api-versions`).
func capabilities(kubeVersion string, apiVersions []string) (*chartutil.KubeVersion, chartutil.VersionSet, error) {
	if kubeVersion == "" {
		kubeVersion = NewestKubeVersion
	}
	v, err := ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, nil, fmt.Errorf("Kubernetes version: %w", err)
	}
	kv, err := chartutil.ParseKubeVersion(v)
	if err != nil {
		return nil, nil, fmt.Errorf("Kubernetes version: %w", err)
	}
	if err := CheckAPIVersions(apiVersions); err != nil {
		return nil, nil, fmt.Errorf("API versions: %w", err)
	}
	return kv, chartutil.VersionSet(apiVersions), nil
}

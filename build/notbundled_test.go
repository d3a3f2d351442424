package build_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/test/fixture"
)

// TestNotBundledWarnings: a build leaves out what only a chart's Helm test
// runs unless --include-tests, bundles what an operator's flags name, and
// warns of both the test's images and the possible references it does not
// bundle.
func TestNotBundledWarnings(t *testing.T) {
	ctx := fixture.Context(t, map[string]string{
		"Kubefile":             "FROM scratch\nAPP op local://charts/op\nLAUNCH [\"op\"]\n",
		"charts/op/Chart.yaml": "apiVersion: v2\nname: op\nversion: 0.1.0\n",
		"charts/op/templates/op.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: op
spec:
  template:
    spec:
      containers:
        - name: op
          image: ghcr.io/acme/op:1
          args: [--sidecar-image=ghcr.io/acme/sidecar:2]
          env:
            - name: HINT
              value: quay.io/acme/hint:3
`,
		"charts/op/templates/test.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: op-test
  annotations:
    helm.sh/hook: test
spec:
  containers:
    - name: t
      image: docker.io/acme/curl:8
`,
	})
	for _, include := range []bool{false, true} {
		rec := &recorder{}
		previews, err := DryRun(context.Background(), nil, Options{ContextDir: ctx, Reporter: rec, IncludeTests: include})
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, img := range previews[0].Metadata.Images {
			refs = append(refs, img.Ref)
		}
		want := "ghcr.io/acme/op:1 ghcr.io/acme/sidecar:2"
		if include {
			want = "docker.io/acme/curl:8 " + want
		}
		if got := strings.Join(refs, " "); got != want {
			t.Errorf("include tests %v: images %s, want %s", include, got, want)
		}
		var warnings []string
		for _, e := range rec.events {
			if e.State == progress.StateWarning {
				warnings = append(warnings, e.Message)
			}
		}
		all := strings.Join(warnings, "\n")
		if !strings.Contains(all, "warning: possible image, not bundled: quay.io/acme/hint:3 in charts/op/templates/op.yaml (Deployment/op) spec.template.spec.containers[0].env[0].value") {
			t.Errorf("include tests %v: no warning of the possible image:\n%s", include, all)
		}
		if tests := strings.Contains(all, "only Helm test hooks run it: docker.io/acme/curl:8"); tests == include {
			t.Errorf("include tests %v: warning of the test's image %v:\n%s", include, tests, all)
		}
	}
}

package build_test

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/test/fixture"
)

// toolsChart names two images: kubectl of the Kubernetes version the chart
// is rendered for, and an app whose tag is a value. Its vendored subchart
// old is outside the range its dependency asks for.
func toolsChart() map[string]string {
	return map[string]string{
		"charts/tools/Chart.yaml":  "apiVersion: v2\nname: tools\nversion: 0.1.0\nkubeVersion: \">=1.25.0-0\"\ndependencies:\n- {name: old, version: ^2.0.0}\n",
		"charts/tools/values.yaml": "registry: registry.invalid\ntag: default\n",
		"charts/tools/templates/job.yaml": `apiVersion: batch/v1
kind: Job
metadata: {name: tools}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: kubectl
        image: "{{ .Values.registry }}/tools/kubectl:{{ .Capabilities.KubeVersion.Version }}"
      - name: app
        image: "{{ .Values.registry }}/acme/app:{{ .Values.tag }}"
`,
		"charts/tools/charts/old/Chart.yaml":            "apiVersion: v2\nname: old\nversion: 1.0.0\n",
		"charts/tools/charts/old/templates/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\n",
	}
}

// TestBuildRendersForTheBase: an image built FROM a base labelled with the
// Kubernetes version it installs renders its charts for that version (not
// the highest its KUBEVERSION allows), records it, and bundles the images
// of that render; per-app values beat APPENV and the global flags; the
// chart's warnings reach the reporter, once. The dry run agrees.
func TestBuildRendersForTheBase(t *testing.T) {
	store := fixture.Store(t)
	reg := fixture.Registry(t, nil)
	fixture.PushRandom(t, reg+"/tools/kubectl:v1.31.4", 1024, 1)
	fixture.PushRandom(t, reg+"/acme/app:per-app", 1024, 1)

	base := fixture.Context(t, map[string]string{
		"Kubefile": "FROM scratch\nLABEL io.hoist.kubernetes.version=v1.31.4\nCOPY VERSION /etc/kubernetes-version\n",
		"VERSION":  "v1.31.4\n",
	})
	if _, err := Build(context.Background(), store, Options{ContextDir: base, Tags: []string{"test/kube:v1"}}); err != nil {
		t.Fatalf("base: %v", err)
	}

	files := toolsChart()
	files["Kubefile"] = "FROM test/kube:v1\nAPP tools local://charts/tools\nAPPENV tools tag=from-appenv\nKUBEVERSION >=1.28 <1.38\nLAUNCH tools\n"
	ctx := fixture.Context(t, files)
	rec := &recorder{}
	opts := Options{
		ContextDir: ctx, Tags: []string{"test/tools:v1"}, TLSNoVerify: true, Reporter: rec,
		Set: []string{"tag=global", "tools:registry=" + reg, "tools:tag=per-app"},
	}
	if _, err := Build(context.Background(), store, opts); err != nil {
		t.Fatal(err)
	}
	d, err := store.Inspect(context.Background(), "test/tools:v1")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, img := range d.Metadata.Images {
		refs = append(refs, img.Ref)
	}
	sort.Strings(refs)
	want := []string{reg + "/acme/app:per-app", reg + "/tools/kubectl:v1.31.4"}
	if d.Metadata.RenderKubeVersion != "v1.31.4" || !reflect.DeepEqual(refs, want) {
		t.Errorf("renderKubeVersion %q, images %v; want v1.31.4, %v", d.Metadata.RenderKubeVersion, refs, want)
	}
	var warnings []string
	for _, e := range rec.events {
		if e.State == progress.StateWarning {
			warnings = append(warnings, e.Step+": "+e.Message)
		}
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "find-images: warning: chart apps/tools: the vendored subchart apps/tools/charts/old is version 1.0.0") {
		t.Errorf("warnings: %q", warnings)
	}

	// The dry run reads the base's label from the store, and finds the
	// same images from the chart's sources.
	opts.Reporter = &recorder{}
	previews, err := DryRun(context.Background(), store, opts)
	if err != nil {
		t.Fatal(err)
	}
	meta := previews[0].Metadata
	refs = nil
	for _, img := range meta.Images {
		refs = append(refs, img.Ref)
		if img.Digest != "" || !strings.HasPrefix(img.FoundIn, "charts/tools/templates/job.yaml") {
			t.Errorf("dry-run record %+v", img)
		}
	}
	if meta.RenderKubeVersion != "v1.31.4" || !reflect.DeepEqual(refs, want) {
		t.Errorf("dry run: renderKubeVersion %q, images %v", meta.RenderKubeVersion, refs)
	}

	// --kube-version, then --label, come before the base's label.
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{KubeVersion: "1.30"}, "v1.30.0"},
		{Options{Labels: []string{"io.hoist.kubernetes.version=v1.29.1"}}, "v1.29.1"},
	} {
		o := opts
		o.KubeVersion, o.Labels = tt.opts.KubeVersion, tt.opts.Labels
		previews, err := DryRun(context.Background(), store, o)
		if err != nil {
			t.Fatal(err)
		}
		if got := previews[0].Metadata.RenderKubeVersion; got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.opts, got, tt.want)
		}
	}
}

// TestDryRunKubeVersionOutsideRange: a version given outside KUBEVERSION
// renders as asked, with a warning; an invalid one names the flag.
func TestDryRunKubeVersionOutsideRange(t *testing.T) {
	files := toolsChart()
	files["Kubefile"] = "FROM scratch\nAPP tools local://charts/tools\nKUBEVERSION >=1.28 <1.38\n"
	ctx := fixture.Context(t, files)
	rec := &recorder{}
	previews, err := DryRun(context.Background(), nil, Options{ContextDir: ctx, KubeVersion: "v1.27.3", Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	if got := previews[0].Metadata.RenderKubeVersion; got != "v1.27.3" {
		t.Errorf("renderKubeVersion %s", got)
	}
	found := false
	for _, e := range rec.events {
		if e.State == progress.StateWarning && strings.Contains(e.Message, "charts are rendered for Kubernetes v1.27.3 (--kube-version), which KUBEVERSION >=1.28 <1.38 excludes") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning: %+v", rec.events)
	}
	_, err = DryRun(context.Background(), nil, Options{ContextDir: ctx, KubeVersion: "next"})
	if err == nil || !strings.Contains(err.Error(), "--kube-version: ") {
		t.Errorf("bad version: %v", err)
	}
}

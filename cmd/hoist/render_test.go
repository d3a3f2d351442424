package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// renderCharts are the charts of build/discover's render tests.
const renderCharts = "../../build/discover/testdata/render"

func TestFindImagesKubeVersion(t *testing.T) {
	kubectl := filepath.Join(renderCharts, "kubectl")
	out, errOut, err := findImagesErr(t, kubectl)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "registry.example.com/tools/kubectl:v1.37.2 ") || errOut != "charts rendered for Kubernetes v1.37.2\n" {
		t.Errorf("default:\n%s\nstderr: %q", out, errOut)
	}
	out, errOut, err = findImagesErr(t, "--kube-version", "1.31.2", kubectl)
	if err != nil || !strings.Contains(out, "registry.example.com/tools/kubectl:v1.31.2 ") || errOut != "charts rendered for Kubernetes v1.31.2\n" {
		t.Errorf("--kube-version 1.31.2: %v\n%s\nstderr: %q", err, out, errOut)
	}
	// JSON stays the list it was, and nothing more is said.
	out, errOut, err = findImagesErr(t, "--format", "json", "--kube-version", "v1.30.0", kubectl)
	var images []struct{ Ref string }
	if err != nil || json.Unmarshal([]byte(out), &images) != nil || len(images) != 1 || images[0].Ref != "registry.example.com/tools/kubectl:v1.30.0" || errOut != "" {
		t.Errorf("json: %v\n%s\nstderr: %q", err, out, errOut)
	}
	// --api-versions, repeatable or comma-separated, as helm template's.
	out, _, err = findImagesErr(t, "--api-versions", "apps/v1,monitoring.example.com/v1", filepath.Join(renderCharts, "apis"))
	if err != nil || !strings.Contains(out, "metrics-sidecar:0.9.1") {
		t.Errorf("--api-versions: %v\n%s", err, out)
	}
}

func TestFindImagesFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--kube-version", "latest", renderCharts}, `--kube-version: "latest" is not a Kubernetes version`},
		{[]string{"--api-versions", "/v1", renderCharts}, `--api-versions: "/v1" is not an API version`},
		{[]string{"--values", "web=" + filepath.Join(t.TempDir(), "none.yaml"), renderCharts}, "--values web="},
	} {
		_, _, err := findImagesErr(t, tt.args...)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestFindImagesWarnings: warnings go to stderr, one a line, and do not
// fail the command.
func TestFindImagesWarnings(t *testing.T) {
	out, errOut, err := findImagesErr(t, "--set", "pinnned:x=1", filepath.Join(renderCharts, "pinned"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "warning: chart ../../build/discover/testdata/render/pinned: the vendored subchart") ||
		!strings.HasPrefix(lines[1], "warning: values given for pinnned") || lines[2] != "charts rendered for Kubernetes v1.37.2" {
		t.Errorf("stderr:\n%s", errOut)
	}
	if !strings.Contains(out, "registry.example.com/acme/worker:1.4.0") {
		t.Errorf("stdout:\n%s", out)
	}
}

// writeKubefile writes a Kubefile in a directory of its own and returns it.
func writeKubefile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Kubefile")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dryRunMeta runs build --dry-run --format json and returns its metadata.
func dryRunMeta(t *testing.T, args ...string) (struct {
	RenderKubeVersion string `json:"renderKubeVersion"`
	Images            []struct{ Ref, FoundIn string }
}, string, error) {
	t.Helper()
	var meta struct {
		RenderKubeVersion string `json:"renderKubeVersion"`
		Images            []struct{ Ref, FoundIn string }
	}
	out, errOut, err := hoist(t, append([]string{"build", "--dry-run", "--format", "json"}, args...)...)
	if err != nil {
		return meta, errOut, err
	}
	var plan struct{ Metadata json.RawMessage }
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if err := json.Unmarshal(plan.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	return meta, errOut, nil
}

// TestBuildDryRunKubeVersion: the version charts are rendered for is
// --kube-version, else the highest KUBEVERSION allows; it is recorded, and
// the images follow it.
func TestBuildDryRunKubeVersion(t *testing.T) {
	kubefile := writeKubefile(t, "FROM scratch\nAPP tools local://kubectl\nKUBEVERSION >=1.28 <1.33\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "v1.32.0"},
		{[]string{"--kube-version", "1.30.1"}, "v1.30.1"},
	} {
		meta, _, err := dryRunMeta(t, append(tt.args, "-f", kubefile, renderCharts)...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if meta.RenderKubeVersion != tt.want || len(meta.Images) != 1 || meta.Images[0].Ref != "registry.example.com/tools/kubectl:"+tt.want || meta.Images[0].FoundIn != "kubectl/templates/job.yaml (Job/hoist-upgrade-crds)" {
			t.Errorf("%v: %+v, want %s", tt.args, meta, tt.want)
		}
	}
	_, _, err := hoist(t, "build", "--dry-run", "--kube-version", "v1", "-f", kubefile, renderCharts)
	if err == nil || !strings.HasPrefix(err.Error(), "--kube-version: ") {
		t.Errorf("bad --kube-version: %v", err)
	}
}

// TestBuildDryRunValues: per-app values reach the app's chart over its
// APPENV; a per-app flag naming no Helm app is refused; the Kubefile's
// IMAGE and the chart warnings are part of the dry run.
func TestBuildDryRunValues(t *testing.T) {
	kubefile := writeKubefile(t, `FROM scratch
APP front local://frontend
APPENV front image.tag=from-appenv
APP pinned local://pinned
APP cfg local://plain
IMAGE registry.example.com/acme/extra:1
`)
	run := func(args ...string) ([]string, string, error) {
		meta, errOut, err := dryRunMeta(t, append(args, "-f", kubefile, renderCharts)...)
		var refs []string
		for _, img := range meta.Images {
			refs = append(refs, img.Ref)
		}
		return refs, errOut, err
	}
	refs, errOut, err := run()
	if err != nil {
		t.Fatal(err)
	}
	want := "registry.example.com/acme/extra:1 registry.example.com/acme/main:1.0.0 registry.example.com/acme/report:0.3.0 registry.example.com/acme/web:from-appenv registry.example.com/acme/worker:1.4.0"
	if strings.Join(refs, " ") != want {
		t.Errorf("images %v, want %s", refs, want)
	}
	if !strings.Contains(errOut, "warning: chart pinned: the vendored subchart pinned/charts/worker") {
		t.Errorf("stderr: %s", errOut)
	}
	refs, _, err = run("--set", "image.tag=global", "--set", "front:image.tag=per-app")
	if err != nil || !strings.Contains(strings.Join(refs, " "), "registry.example.com/acme/web:per-app") {
		t.Errorf("per-app --set: %v, %v", refs, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "fronnt:image.tag=1"}, "--set fronnt:image.tag=1: there is no app fronnt (apps: front, pinned, cfg)"},
		{[]string{"--values", "cfg=x.yaml"}, "--values cfg=x.yaml: app cfg is not a Helm chart"},
	} {
		if _, _, err := run(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

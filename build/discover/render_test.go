package discover

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// renderDir holds the charts of these tests (testdata/render), written for
// them from Helm's documentation.
const renderDir = "testdata/render"

// findIn runs Find on charts of renderDir, FoundIn relative to it, and
// returns the references found and the warnings.
func findIn(t *testing.T, opts Options, charts ...string) ([]string, []string, error) {
	t.Helper()
	var warnings []string
	opts.Warn = func(m string) { warnings = append(warnings, m) }
	opts.BaseDir = renderDir
	var paths []string
	for _, c := range charts {
		paths = append(paths, filepath.Join(renderDir, c))
	}
	images, err := Find(paths, opts)
	var refs []string
	for _, img := range images {
		refs = append(refs, img.Ref)
	}
	return refs, warnings, err
}

// TestRenderKubeVersion: a chart that asks for kubeVersion >=1.25.0-0
// renders (Helm's own default, v1.20.0, fails it), and a tag taken from
// .Capabilities.KubeVersion follows --kube-version, else NewestKubeVersion.
func TestRenderKubeVersion(t *testing.T) {
	for _, tt := range []struct {
		kubeVersion string
		want        []string
	}{
		{"", []string{"registry.example.com/acme/api:2.1.0", "registry.example.com/tools/kubectl:" + NewestKubeVersion}},
		{"1.30.4", []string{"registry.example.com/acme/api:2.1.0", "registry.example.com/tools/kubectl:v1.30.4"}},
		{"v1.29", []string{"registry.example.com/acme/api:2.1.0", "registry.example.com/tools/kubectl:v1.29.0"}},
	} {
		refs, warnings, err := findIn(t, Options{KubeVersion: tt.kubeVersion}, "modern", "kubectl")
		if err != nil {
			t.Fatalf("%q: %v", tt.kubeVersion, err)
		}
		if !reflect.DeepEqual(refs, tt.want) || len(warnings) != 0 {
			t.Errorf("%q: %v (warnings %v), want %v", tt.kubeVersion, refs, warnings, tt.want)
		}
	}
	// Below the chart's kubeVersion: Helm's refusal, naming the chart's
	// directory and the version rendered for.
	_, _, err := findIn(t, Options{KubeVersion: "1.24.9"}, "modern")
	if err == nil || !strings.Contains(err.Error(), "chart modern:") || !strings.Contains(err.Error(), "v1.24.9") {
		t.Errorf("1.24.9: %v", err)
	}
}

// TestRenderAPIVersions: --api-versions makes a template's branch on
// .Capabilities.APIVersions.Has appear, as with helm template -a.
func TestRenderAPIVersions(t *testing.T) {
	refs, _, err := findIn(t, Options{}, "apis")
	if err != nil || !reflect.DeepEqual(refs, []string{"registry.example.com/acme/web:3.0.0"}) {
		t.Errorf("without: %v, %v", refs, err)
	}
	refs, _, err = findIn(t, Options{APIVersions: []string{"monitoring.example.com/v1"}}, "apis")
	want := []string{"registry.example.com/acme/metrics-sidecar:0.9.1", "registry.example.com/acme/web:3.0.0"}
	if err != nil || !reflect.DeepEqual(refs, want) {
		t.Errorf("with: %v, %v; want %v", refs, err, want)
	}
}

func TestRenderBadCapabilities(t *testing.T) {
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{KubeVersion: "latest"}, `Kubernetes version: "latest" is not a Kubernetes version`},
		{Options{KubeVersion: "2.0.0"}, "Kubernetes versions are 1.x"},
		{Options{APIVersions: []string{"apps/v1", "a b"}}, `API versions: "a b" is not an API version`},
	} {
		// Refused before any chart is read.
		if _, err := Find([]string{t.TempDir()}, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.opts, err, tt.want)
		}
	}
}

// TestSubchartOutOfRange: a vendored subchart outside its dependency's
// range is warned of, naming both charts and the range; Helm then renders
// it although its (aliased) condition says no, which is why. A subchart in
// range is not warned of.
func TestSubchartOutOfRange(t *testing.T) {
	refs, warnings, err := findIn(t, Options{}, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"registry.example.com/acme/main:1.0.0", "registry.example.com/acme/worker:1.4.0"}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("images %v, want %v", refs, want)
	}
	if len(warnings) != 1 {
		t.Fatalf("warnings: %q", warnings)
	}
	for _, part := range []string{
		"chart pinned: the vendored subchart pinned/charts/worker is version 1.4.0",
		`outside the range "^2.0.0" of dependency worker in pinned/Chart.yaml`,
		"ignores its alias jobs", "condition and tags do not switch it off",
		"helm dependency update",
	} {
		if !strings.Contains(warnings[0], part) {
			t.Errorf("warning lacks %q:\n%s", part, warnings[0])
		}
	}
}

// TestMissingDependency: a dependency not in charts/ fails, naming the
// chart's directory and what to run.
func TestMissingDependency(t *testing.T) {
	_, _, err := findIn(t, Options{}, "unfetched")
	if err == nil {
		t.Fatal("no error")
	}
	for _, part := range []string{"chart unfetched:", "missing in charts/ directory: database", "run `helm dependency build unfetched`"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error lacks %q: %v", part, err)
		}
	}
	// In an archive, the hint is to package it again.
	dir := t.TempDir()
	archive := filepath.Join(dir, "unfetched-0.1.0.tgz")
	data, _ := os.ReadFile(filepath.Join(renderDir, "unfetched/Chart.yaml"))
	if err := os.WriteFile(archive, []byte(tgz(t, map[string]string{"unfetched/Chart.yaml": string(data)})), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Find([]string{archive}, Options{BaseDir: dir})
	if err == nil || !strings.Contains(err.Error(), "chart unfetched-0.1.0.tgz:") || !strings.Contains(err.Error(), "then `helm package`") {
		t.Errorf("archive: %v", err)
	}
}

// TestTemplateErrorNamesDirectory: the chart web lives in frontend/; a
// template error points at frontend/templates/..., where the file is, and
// keeps Helm's error underneath.
func TestTemplateErrorNamesDirectory(t *testing.T) {
	_, _, err := findIn(t, Options{}, "frontend")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "chart frontend:") || !strings.Contains(msg, "frontend/templates/deployment.yaml:") || !strings.Contains(msg, "image.tag is required") {
		t.Errorf("error: %s", msg)
	}
	if regexp.MustCompile(`(^|[\s(])web/templates/`).MatchString(msg) {
		t.Errorf("error still names the chart's name as a directory: %s", msg)
	}
	var re *renderError
	if !errors.As(err, &re) || re.err == nil {
		t.Errorf("Helm's error is not kept underneath: %#v", err)
	}
	// In an archive, the place is inside it.
	if got := templateError(errors.New("template: web/templates/x.yaml:3:4: executing"), "web", func(n string) string { return "web-1.0.tgz/" + n }); got.Error() != "template: web-1.0.tgz/web/templates/x.yaml:3:4: executing" {
		t.Errorf("archive: %v", got)
	}
	// With the value given, it renders.
	refs, _, err := findIn(t, Options{Set: []string{"image.tag=4.2"}}, "frontend")
	if err != nil || !reflect.DeepEqual(refs, []string{"registry.example.com/acme/web:4.2"}) {
		t.Errorf("with the tag: %v, %v", refs, err)
	}
}

// TestPerAppValues: in find-images a chart's app, for --values APP=FILE
// and --set APP:K=V, is its Chart.yaml name; with Options.Apps (the
// build), its app's, whose APPENV comes before the flags; values for an
// app no chart has are warned of.
func TestPerAppValues(t *testing.T) {
	refs, warnings, err := findIn(t, Options{Set: []string{"web:image.tag=5.0", "image.tag=1.0", "nope:x=1"}}, "frontend")
	if err != nil || !reflect.DeepEqual(refs, []string{"registry.example.com/acme/web:5.0"}) {
		t.Errorf("by chart name: %v, %v", refs, err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "no chart named nope was found") {
		t.Errorf("warnings: %q", warnings)
	}
	dir := t.TempDir()
	prod := filepath.Join(dir, "prod.yaml")
	if err := os.WriteFile(prod, []byte("image: {tag: from-file}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	apps := map[string]App{filepath.Join(renderDir, "frontend"): {Name: "front", Env: map[string]string{"image.tag": "from-appenv"}}}
	for _, tt := range []struct {
		opts Options
		tag  string
	}{
		{Options{}, "from-appenv"},
		{Options{ValueFiles: []string{"front=" + prod}}, "from-file"},
		{Options{ValueFiles: []string{"front=" + prod}, Set: []string{"front:image.tag=from-set"}}, "from-set"},
		// The chart's name is not its app's: web: does not reach it.
		{Options{Set: []string{"web:image.tag=by-name"}}, "from-appenv"},
	} {
		tt.opts.Apps = apps
		refs, _, err := findIn(t, tt.opts, "frontend")
		if want := []string{"registry.example.com/acme/web:" + tt.tag}; err != nil || !reflect.DeepEqual(refs, want) {
			t.Errorf("%+v: %v, %v; want %v", tt.opts, refs, err, want)
		}
	}
}

func TestParseKubeVersion(t *testing.T) {
	for in, want := range map[string]string{"1.31": "v1.31.0", "v1.31.4": "v1.31.4", "1.32.0-rc.1": "v1.32.0-rc.1"} {
		if got, err := ParseKubeVersion(in); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "v1", "latest", "1.x", "3.1.0", "1.31.4.5"} {
		if got, err := ParseKubeVersion(in); err == nil {
			t.Errorf("%q: %q, want an error", in, got)
		}
	}
}

func TestKubeVersionInRange(t *testing.T) {
	for r, want := range map[string]string{
		">=1.28 <1.38":      NewestKubeVersion, // the newest hoist ships
		">=1.28":            NewestKubeVersion,
		">=1.28 <1.36":      "v1.35.0",
		"~1.31":             "v1.31.0",
		">=1.30.5 <1.31":    "v1.30.5",
		"v1.37.2":           "v1.37.2",
		"<1.37.1":           "v1.37.0",
		">=1.25.0-0":        NewestKubeVersion,
		">=1.40":            "v1.40.0", // newer than hoist knows: the first allowed
		"=1.37.5":           "v1.37.5",
		">=1.20.0 <=1.22.3": "v1.22.0",
	} {
		if got, err := KubeVersionInRange(r); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", r, got, err, want)
		}
	}
	if _, err := KubeVersionInRange("not a range"); err == nil || !strings.Contains(err.Error(), `KUBEVERSION "not a range"`) {
		t.Errorf("bad range: %v", err)
	}
	if _, err := KubeVersionInRange("<1.0"); err == nil {
		t.Error("<1.0: no error")
	}
}

// TestNewestKubeVersionIsTheBaseImages: the constant follows the version
// images/kubernetes builds, so that a default render matches hoist's own
// clusters.
func TestNewestKubeVersionIsTheBaseImages(t *testing.T) {
	data, err := os.ReadFile("../../images/kubernetes/binaries.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KUBERNETES_VERSION=(\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no KUBERNETES_VERSION= line in images/kubernetes/binaries.sh")
	}
	if string(m[1]) != NewestKubeVersion {
		t.Errorf("images/kubernetes/binaries.sh builds %s, NewestKubeVersion is %s", m[1], NewestKubeVersion)
	}
}

// TestChartTarGz: a chart archive named .tar.gz (the Kubefile takes one
// as a Helm app) is rendered like a .tgz.
func TestChartTarGz(t *testing.T) {
	dir := t.TempDir()
	chart, _ := os.ReadFile(filepath.Join(renderDir, "modern/Chart.yaml"))
	deploy, _ := os.ReadFile(filepath.Join(renderDir, "modern/templates/deployment.yaml"))
	archive := filepath.Join(dir, "modern.tar.gz")
	if err := os.WriteFile(archive, []byte(tgz(t, map[string]string{"modern/Chart.yaml": string(chart), "modern/templates/deployment.yaml": string(deploy)})), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{archive, dir} { // named, and walked
		images, err := Find([]string{p}, Options{BaseDir: dir})
		if err != nil || len(images) != 1 || images[0].Ref != "registry.example.com/acme/api:2.1.0" || images[0].FoundIn[0] != "modern.tar.gz/modern/templates/deployment.yaml (Deployment/hoist-api)" {
			t.Errorf("%s: %+v, %v", p, images, err)
		}
	}
}

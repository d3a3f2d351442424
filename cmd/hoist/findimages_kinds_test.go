package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures of package discover: an operator, custom resources, a
// ConfigMap, and charts with tests and image annotations.
const objectsDir = "../../build/discover/testdata/objects"

// TestFindImagesKinds: --format json keeps its list of images, each with
// its kinds and sources; what is not bundled is a warning on stderr.
func TestFindImagesKinds(t *testing.T) {
	out, stderr, err := findImagesErr(t, "--format", "json", filepath.Join(objectsDir, "operator.yaml"), filepath.Join(objectsDir, "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var images []struct {
		Ref     string   `json:"ref"`
		FoundIn []string `json:"foundIn"`
		Kinds   []string `json:"kinds"`
		Sources []struct {
			FoundIn, Kind, Field string
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(out), &images); err != nil {
		t.Fatalf("not a JSON list: %v\n%s", err, out)
	}
	kinds := map[string]string{}
	for _, img := range images {
		kinds[img.Ref] = strings.Join(img.Kinds, ",")
		if img.Ref == "quay.io/acme/config-reloader:v0.75.0" {
			want := filepath.ToSlash(filepath.Join(objectsDir, "operator.yaml")) + " (Deployment/widget-operator)"
			if len(img.Sources) != 1 || img.Sources[0].FoundIn != want || img.Sources[0].Field != "spec.template.spec.containers[0].args[0]" || img.FoundIn[0] != want {
				t.Errorf("%s: %+v", img.Ref, img)
			}
		}
	}
	for ref, want := range map[string]string{
		"ghcr.io/acme/widget-operator:v0.9.0":  "pod",
		"quay.io/acme/config-reloader:v0.75.0": "argument",
		"docker.io/acme/kubectl:1.31":          "argument",
		"quay.io/acme/models:v1":               "pod",
	} {
		if kinds[ref] != want {
			t.Errorf("%s: kinds %q, want %q (all: %v)", ref, kinds[ref], want, kinds)
		}
	}
	if _, ok := kinds["quay.io/acme/from-config:v1"]; ok {
		t.Errorf("a ConfigMap's reference is bundled")
	}
	if !strings.Contains(stderr, "warning: possible image, not bundled: quay.io/acme/from-config:v1 in ") {
		t.Errorf("no warning of the ConfigMap's reference:\n%s", stderr)
	}
}

// TestFindImagesIncludeTests: a chart's Helm test hooks are not bundled
// but warned of, unless --include-tests.
func TestFindImagesIncludeTests(t *testing.T) {
	chart := filepath.Join(objectsDir, "charts", "tested")
	for _, include := range []bool{false, true} {
		args := []string{"--format", "{{.Ref}}", chart}
		if include {
			args = append([]string{"--include-tests"}, args...)
		}
		out, stderr, err := findImagesErr(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		want := "docker.io/acme/migrate:3\ndocker.io/acme/web:1.0\n"
		if include {
			want = "docker.io/acme/curl:8.9\n" + want + "docker.io/library/busybox:1.36\n"
		}
		if out != want {
			t.Errorf("--include-tests %v: got\n%s\nwant\n%s", include, out, want)
		}
		warned := strings.Contains(stderr, "warning: not bundled, only Helm test hooks run it: docker.io/acme/curl:8.9 in ")
		if warned == include {
			t.Errorf("--include-tests %v: warned %v:\n%s", include, warned, stderr)
		}
	}
}

// TestBuildIncludeTests: build --include-tests reaches the image search.
func TestBuildIncludeTests(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Kubefile":                       "FROM scratch\nAPP t local://charts/t\nLAUNCH [\"t\"]\n",
		"charts/t/Chart.yaml":            "apiVersion: v2\nname: t\nversion: 0.1.0\n",
		"charts/t/templates/test.yaml":   "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers:\n    - name: t\n      image: docker.io/acme/curl:8.9\n",
		"charts/t/templates/deploy.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: w\nspec:\n  containers:\n    - name: w\n      image: docker.io/acme/web:1.0\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, include := range []bool{false, true} {
		args := []string{"build", "--dry-run", "--format", "{{range .Metadata.Images}}{{.Ref}} {{end}}", dir}
		if include {
			args = append(args, "--include-tests")
		}
		out, stderr, err := hoist(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		want := "docker.io/acme/web:1.0 \n"
		if include {
			want = "docker.io/acme/curl:8.9 " + want
		}
		if out != want {
			t.Errorf("--include-tests %v: images %q, want %q", include, out, want)
		}
		if warned := strings.Contains(stderr, "only Helm test hooks run it: docker.io/acme/curl:8.9"); warned == include {
			t.Errorf("--include-tests %v: warned %v:\n%s", include, warned, stderr)
		}
	}
}

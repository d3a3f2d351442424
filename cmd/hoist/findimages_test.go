package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// findImages runs find-images in process with args and returns its
// standard output.
func findImages(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := findImagesErr(t, args...)
	return out, err
}

// findImagesErr runs find-images in process with args and returns its
// standard output and standard error apart.
func findImagesErr(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newFindImagesCommand(&globalOptions{root: t.TempDir()})
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestFindImagesTable(t *testing.T) {
	out, err := findImages(t, "../../examples/platform")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "IMAGE FOUND IN" {
		t.Fatalf("want a header and 3 images:\n%s", out)
	}
	want := []string{
		"docker.io/library/nginx:1.27.3 ../../examples/platform/charts/web/templates/deployment.yaml (Deployment/hoist)",
		"quay.io/prometheus/node-exporter:v1.8.2 ../../examples/platform/manifests/monitoring/node-exporter.yaml (DaemonSet/node-exporter)",
		"registry.k8s.io/pause:3.10 ../../examples/platform/rootfs/manifests/imageList:2",
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != w {
			t.Errorf("line %d: got %q, want %q", i+1, got, w)
		}
	}
}

func TestFindImagesJSON(t *testing.T) {
	out, err := findImages(t, "--format", "json", "--set", "image.tag=1.28.0",
		"--exclude-image", "registry.k8s.io/*", "../../examples/platform")
	if err != nil {
		t.Fatal(err)
	}
	var images []struct {
		Ref     string   `json:"ref"`
		FoundIn []string `json:"foundIn"`
	}
	if err := json.Unmarshal([]byte(out), &images); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	var refs []string
	for _, img := range images {
		refs = append(refs, img.Ref)
		if len(img.FoundIn) == 0 {
			t.Errorf("%s: no foundIn", img.Ref)
		}
	}
	if got, want := strings.Join(refs, " "), "docker.io/library/nginx:1.28.0 quay.io/prometheus/node-exporter:v1.8.2"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}

	// Nothing found is an empty list, not null.
	out, err = findImages(t, "--format", "json", t.TempDir())
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty: %q, %v", out, err)
	}
}

func TestFindImagesTemplate(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "images.txt")
	if err := os.WriteFile(list, []byte("nginx\n# comment\nbusybox:1.36\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := findImages(t, "--image-list", list, "--format", "{{.Ref}}", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "docker.io/library/busybox:1.36\ndocker.io/library/nginx:latest\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestFindImagesErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "imageList")
	if err := os.WriteFile(bad, []byte("nginx:1\nNot/Valid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{dir}, filepath.ToSlash(bad) + ":2"},
		{nil, "requires at least 1 arg"},
		{[]string{"--format", "table", "../../examples/platform"}, "--format"},
	} {
		out, err := findImages(t, tt.args...)
		if err == nil {
			t.Errorf("%v: no error:\n%s", tt.args, out)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q, want one line with %q", tt.args, err, tt.want)
		}
	}
}

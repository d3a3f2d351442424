package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildContextFlag: --build-context NAME=docker-image://REF builds a
// sealer Kubefile, unchanged, on REF; a malformed value names the flag and
// the value.
func TestBuildContextFlag(t *testing.T) {
	dir := t.TempDir()
	kubefile := filepath.Join(dir, "Kubefile")
	os.WriteFile(kubefile, []byte("FROM docker.io/sealerio/kubernetes:v1.22.15\nCMD kubectl get nodes\n"), 0o644)

	out, _, err := hoist(t, "build", "--dry-run", "--format", "{{.Dockerfile}}{{json .Metadata.Launch}}",
		"--build-context", "docker.io/sealerio/kubernetes:v1.22.15=docker-image://hoist.dev/kubernetes:v1.37.2", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "# hoist: FROM docker.io/sealerio/kubernetes:v1.22.15\nFROM hoist.dev/kubernetes:v1.37.2\nCMD kubectl get nodes\n" + `{"apps":[],"cmds":["kubectl get nodes"],"cmd":["kubectl get nodes"]}` + "\n"
	if out != want {
		t.Errorf("dry run:\n%s\nwant:\n%s", out, want)
	}

	_, _, err = hoist(t, "build", "--dry-run", dir)
	if err == nil || !strings.HasPrefix(err.Error(), kubefile+":1: FROM docker.io/sealerio/kubernetes:v1.22.15: a sealer image") {
		t.Errorf("without --build-context: %v", err)
	}

	for _, tc := range []struct{ value, want string }{
		{"sealerio/kubernetes:v1.22.15", `--build-context "sealerio/kubernetes:v1.22.15": want NAME=docker-image://REF`},
		{"base=./rootfs", `--build-context "base=./rootfs": only an image is supported`},
		{"base=docker-image://Bad:Tag", `--build-context "base=docker-image://Bad:Tag": "Bad:Tag" is not an image reference`},
	} {
		if _, _, err := hoist(t, "build", "--dry-run", "--build-context", tc.value, dir); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("--build-context %s: error %v, want %q", tc.value, err, tc.want)
		}
	}
}

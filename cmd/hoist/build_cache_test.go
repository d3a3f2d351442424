package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/test/fixture"
)

// TestBuildCachedRebuild: `hoist build` of unchanged inputs prints what
// the first build printed (its tags, then the same ID), names the image
// with the new tags, and says it used the cache; -q prints the ID alone;
// --no-cache runs buildah's steps again.
func TestBuildCachedRebuild(t *testing.T) {
	root := fixture.Root(t)
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := newRootCommand()
		var stdout, stderr bytes.Buffer
		cmd.SetOut(&stdout)
		cmd.SetErr(&stderr)
		cmd.SetArgs(append([]string{"--root", root}, args...))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("hoist %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY a /a\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "a"), []byte("a file\n"), 0o644)

	first, _ := run("build", "-t", "test/cached:v1", ctx)
	lines := strings.Split(strings.TrimSpace(first), "\n")
	id := lines[len(lines)-1]
	if !strings.Contains(first, "COMMIT") || len(id) != 64 {
		t.Fatalf("first build:\n%s", first)
	}
	again, _ := run("build", "-t", "test/cached:v1", "-t", "test/cached:v2", ctx)
	want := "--> Using cache " + id + ": nothing that goes into the build changed (--no-cache builds again)\n" +
		"Successfully tagged test/cached:v1\nSuccessfully tagged test/cached:v2\n" + id + "\n"
	if again != want {
		t.Errorf("rebuild printed\n%s\nwant\n%s", again, want)
	}
	if out, _ := run("images"); strings.Count(out, id[:12]) != 2 {
		t.Errorf("both tags should name %s:\n%s", id[:12], out)
	}
	if out, _ := run("build", "-q", "-t", "test/cached:v1", ctx); out != id+"\n" {
		t.Errorf("-q rebuild printed %q", out)
	}
	if out, _ := run("build", "--no-cache", "-t", "test/cached:v1", ctx); !strings.Contains(out, "COMMIT") || strings.Contains(out, "Using cache") {
		t.Errorf("--no-cache:\n%s", out)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/test/fixture"
)

// TestSaveLoadCommands: save's --compress, --split-size and --since from
// the command line, each loaded back as the same image, and their flag
// errors.
func TestSaveLoadCommands(t *testing.T) {
	needRoot(t)
	root := fixture.Root(t)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := hoistAt(t, root, "", args...)
		if err != nil {
			t.Fatalf("hoist %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	inspect := func(format, name string) string {
		t.Helper()
		return strings.TrimSpace(run("inspect", "--format", format, name))
	}
	oldCtx := fixture.Context(t, map[string]string{
		"Kubefile": "FROM scratch\nCOPY tool /bin/tool\nAPP web web.yaml\nLAUNCH web\n",
		"tool":     strings.Repeat("old tool\n", 2000), "web.yaml": "kind: Namespace\n",
	})
	run("build", "-q", "-t", "acme/app:v1", oldCtx)
	newCtx := fixture.Context(t, map[string]string{
		"Kubefile": "FROM localhost/acme/app:v1\nCOPY extra /extra\n",
		"extra":    strings.Repeat("new data\n", 2000),
	})
	run("build", "-q", "-t", "acme/app:v2", newCtx)
	id, digest := inspect("{{.ID}}", "acme/app:v2"), inspect("{{.Digest}}", "acme/app:v2")
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }

	run("save", "-q", "-o", at("zstd.tar"), "acme/app:v2")
	run("save", "-q", "--compress", "gzip", "-o", at("gzip.tar"), "acme/app:v2")
	run("save", "-q", "--compress", "none", "--split-size", "4K", "-o", at("split.tar"), "acme/app:v2")
	run("save", "-q", "--since", "acme/app:v1", "-o", at("diff.tar"), "acme/app:v2")
	if _, err := os.Stat(at("split.tar.001")); err != nil {
		t.Errorf("no second part: %v", err)
	}
	zstd, _ := os.Stat(at("zstd.tar"))
	none := int64(0)
	parts, _ := filepath.Glob(at("split.tar.0*"))
	for _, p := range parts {
		info, _ := os.Stat(p)
		none += info.Size()
	}
	if zstd.Size() >= none {
		t.Errorf("the zstd archive (%d bytes) is not smaller than the uncompressed one (%d)", zstd.Size(), none)
	}
	if diff, _ := os.Stat(at("diff.tar")); diff.Size() >= zstd.Size() {
		t.Errorf("the differential archive (%d bytes) is not smaller than the full one (%d)", diff.Size(), zstd.Size())
	}

	for _, tc := range []struct{ input, want string }{
		{"zstd.tar", id},
		{"gzip.tar", id},
		{"split.tar.000", digest}, // uncompressed: the same manifest
		{"split.tar.json", digest},
		{"diff.tar", id}, // acme/app:v1 is in the store
	} {
		run("rmi", "acme/app:v2")
		if out := run("load", "-i", at(tc.input)); out != "Loaded image: localhost/acme/app:v2\n" {
			t.Errorf("load %s: %q", tc.input, out)
		}
		format := "{{.ID}}"
		if strings.HasPrefix(tc.want, "sha256:") {
			format = "{{.Digest}}"
		}
		if got := inspect(format, "acme/app:v2"); got != tc.want {
			t.Errorf("load %s: %s, want %s", tc.input, got, tc.want)
		}
		if got := inspect("{{.Metadata.Type}} {{len .Metadata.Apps}}", "acme/app:v2"); got != "cluster 1" {
			t.Errorf("load %s: metadata %q", tc.input, got)
		}
	}

	// Without its base, the differential archive is refused.
	bare := fixture.Root(t)
	if _, _, err := hoistAt(t, bare, "", "load", "-i", at("diff.tar")); err == nil || !strings.Contains(err.Error(), "needs image localhost/acme/app:v1 (sha256:") || !strings.Contains(err.Error(), "load it first") {
		t.Errorf("load of a differential archive without its base: %v", err)
	}
	if out, _, _ := hoistAt(t, bare, "", "images", "-a", "-q"); out != "" {
		t.Errorf("the refused load stored %q", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"save", "-o", at("x.tar"), "--compress", "lz4", "acme/app:v2"}, `--compress "lz4": use zstd, gzip or none`},
		{[]string{"save", "-o", at("x.tar"), "--split-size", "4X", "acme/app:v2"}, `--split-size: size "4X"`},
		{[]string{"save", "-o", at("x.tar"), "--split-size", "0", "acme/app:v2"}, `--split-size: size "0"`},
		{[]string{"save", "-o", at("x.tar"), "--format", "docker-archive", "--compress", "gzip", "acme/app:v2"}, "use oci-archive for --compress"},
		{[]string{"save", "-o", at("x.tar"), "--since", "nope:v1", "acme/app:v2"}, "--since: nope:v1: image not known"},
	} {
		if _, _, err := hoistAt(t, root, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// docker-archive keeps working, uncompressed by default.
	run("save", "-q", "--format", "docker-archive", "-o", at("docker.tar"), "acme/app:v2")
	run("rmi", "acme/app:v2")
	run("load", "-q", "-i", at("docker.tar"))
	if got := inspect("{{.ID}}", "acme/app:v2"); got != id {
		t.Errorf("docker-archive: %s, want %s", got, id)
	}
	if _, err := os.Stat(at("x.tar")); !os.IsNotExist(err) {
		t.Errorf("a refused save wrote x.tar: %v", err)
	}
}

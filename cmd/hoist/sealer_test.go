package main

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/hoistdev/hoist/test/fixture"
)

// TestSealerSpellings: sealer's spellings of hoist's flags do what hoist's
// do, and both spellings at once are refused.
func TestSealerSpellings(t *testing.T) {
	root := fixture.Root(t)
	dir := t.TempDir()
	kubefile := filepath.Join(dir, "Kubefile")
	os.WriteFile(kubefile, []byte("FROM scratch\n"), 0o644)
	for sealer, want := range map[string]string{"kube-installer": "cluster\n", "app-installer": "app\n", "app": "app\n"} {
		out, _, err := hoistAt(t, root, "", "build", "--dry-run", "--format", "{{.Metadata.Type}}", "--type", sealer, "-f", kubefile, dir)
		if err != nil || out != want {
			t.Errorf("build --type %s: %q %v, want %q", sealer, out, err, want)
		}
	}

	missing := filepath.Join(t.TempDir(), "sealer-Clusterfile")
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte("apiVersion: sealer.io/v2\nkind: Cluster\nmetadata: {name: my-cluster}\nspec:\n  image: demo/x:v1\n  hosts: [{ips: [10.0.0.2], roles: [master]}]\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		// --Clusterfile reads the file -f would: its absence names it.
		{[]string{"apply", "--Clusterfile", missing}, "open " + missing + ": no such file or directory"},
		{[]string{"run", "--Clusterfile", missing}, "open " + missing + ": no such file or directory"},
		{[]string{"delete", "--Clusterfile", missing}, "open " + missing + ": no such file or directory"},
		{[]string{"apply", "-f", cf, "--Clusterfile", cf}, "--file and --Clusterfile (sealer's spelling) cannot be given together"},
		{[]string{"delete", "-f", cf, "--Clusterfile", cf}, "--file and --Clusterfile (sealer's spelling) cannot be given together"},
		// sealer's run -f is apply -f; the flags that describe a cluster
		// are not merged into the file's.
		{[]string{"run", "-f", cf, "demo/x:v1"}, "give IMAGE or -f, not both"},
		{[]string{"run", "-f", cf, "--masters", "10.0.0.3"}, "installs the Clusterfile as apply -f does: --masters goes without it"},
		{[]string{"run", "-f", cf, "-p", "x"}, "--passwd goes without it"},
		{[]string{"run"}, "run needs IMAGE (or a Clusterfile with -f)"},
		{[]string{"push", "--tls-verify", "--skip-tls-verify", "demo/x:v1"}, "--tls-verify and --skip-tls-verify (sealer's spelling) cannot be given together"},
		{[]string{"images", "--json", "--format", "{{.ID}}"}, "--format and --json (sealer's spelling) cannot be given together"},
	} {
		_, _, err := hoistAt(t, root, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v\nwant %s", tc.args, err, tc.want)
		}
	}
	// run -f goes as far as apply -f: the image, which is not in the store.
	for _, cmd := range []string{"apply", "run"} {
		if _, _, err := hoistAt(t, root, "", cmd, "--Clusterfile", cf, "--dry-run"); err == nil || !strings.Contains(err.Error(), "demo/x:v1") {
			t.Errorf("%s --Clusterfile of a sealer Clusterfile: %v, want the image's absence", cmd, err)
		}
	}
	if _, stderr, err := hoistOnTerminal(t, root, "n\n", "delete", "--Clusterfile", cf); err == nil || !strings.Contains(stderr, "Delete cluster my-cluster from 1 node(s) (10.0.0.2)?") {
		t.Errorf("delete --Clusterfile: %v\n%s", err, stderr)
	}

	// Each sealer spelling is hidden, and named by the usage of hoist's flag.
	for _, c := range []struct{ cmd, flag, sealer string }{
		{"apply", "file", "Clusterfile"}, {"run", "file", "Clusterfile"}, {"delete", "file", "Clusterfile"},
		{"push", "tls-verify", "skip-tls-verify"}, {"images", "format", "json"}, {"build", "type", "kube-installer"},
	} {
		cmd, _, err := newRootCommand().Find([]string{c.cmd})
		if err != nil {
			t.Fatal(err)
		}
		usage := cmd.Flags().Lookup(c.flag).Usage
		if !strings.Contains(usage, "sealer's") || !strings.Contains(usage, c.sealer) {
			t.Errorf("%s --%s: usage %q does not name sealer's %s", c.cmd, c.flag, usage, c.sealer)
		}
		if f := cmd.Flags().Lookup(c.sealer); f != nil && !f.Hidden {
			t.Errorf("%s --%s is not hidden", c.cmd, c.sealer)
		}
	}
	if f := newDeleteCommand(&globalOptions{}).Flags().ShorthandLookup("a"); f == nil || f.Name != "all" {
		t.Errorf("delete -a is %v, want --all", f)
	}
}

// TestSealerSpellingsWithImages: images --json lists what --format json
// does, and push --skip-tls-verify reaches a plain HTTP registry, which
// push without it refuses.
func TestSealerSpellingsWithImages(t *testing.T) {
	needRoot(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	root := fixture.Root(t)
	dir := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY Kubefile /Kubefile\n"})
	if _, stderr, err := hoistAt(t, root, "", "build", "-q", "--type", "app-installer", "-t", host+"/acme/app:v1", dir); err != nil {
		t.Fatalf("build: %v %s", err, stderr)
	}
	sealerJSON, _, err1 := hoistAt(t, root, "", "images", "--json")
	hoistJSON, _, err2 := hoistAt(t, root, "", "images", "--format", "json")
	if err1 != nil || err2 != nil || sealerJSON != hoistJSON || !strings.Contains(sealerJSON, host+"/acme/app:v1") {
		t.Errorf("images --json (%v):\n%s\nimages --format json (%v):\n%s", err1, sealerJSON, err2, hoistJSON)
	}
	if out, _, err := hoistAt(t, root, "", "inspect", "--format", "{{.Metadata.Type}}", host+"/acme/app:v1"); err != nil || out != "app\n" {
		t.Errorf("type of a build --type app-installer: %q %v", out, err)
	}
	if _, _, err := hoistAt(t, root, "", "push", "-q", host+"/acme/app:v1"); err == nil {
		t.Fatal("push to a plain HTTP registry with TLS verification succeeded")
	}
	if _, stderr, err := hoistAt(t, root, "", "push", "-q", "--skip-tls-verify", host+"/acme/app:v1"); err != nil {
		t.Errorf("push --skip-tls-verify: %v %s", err, stderr)
	}
}

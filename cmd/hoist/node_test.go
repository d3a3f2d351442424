package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeCleanRefusesOtherPaths: hoist node clean removes a cluster's
// directory only when it is <dataRoot>/<valid name>; anything else is
// refused before any removal.
func TestNodeCleanRefusesOtherPaths(t *testing.T) {
	base := t.TempDir()
	hosts := filepath.Join(base, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.0.0.2 registry.hoist.local # hoist:demo\n"), 0o644)
	certs := filepath.Join(base, "certs.d")
	victim := filepath.Join(base, "victim")
	if err := os.MkdirAll(filepath.Join(victim, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	clean := func(cluster, dir string) error {
		_, _, err := hoist(t, "node", "clean", "--cluster", cluster, "--dir", dir, "--certs-dir", certs, "--hosts-file", hosts)
		return err
	}
	for _, tc := range []struct{ cluster, dir, want string }{
		{"demo", victim, "not <dataRoot>/demo"},
		{"victim", victim + "/", "not <dataRoot>/victim"},
		{"victim", victim + "/state/..", "not <dataRoot>/victim"},
		{"../victim", base + "/x/../victim", "not a DNS-1123 label"},
		{"", victim, "cluster name: empty"},
		{"tmp", "/tmp", "not directly under /"},
	} {
		if err := clean(tc.cluster, tc.dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("clean --cluster %q --dir %q: %v, want %q", tc.cluster, tc.dir, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(victim, "state")); err != nil {
		t.Fatalf("a refused clean removed something: %v", err)
	}
	if data, _ := os.ReadFile(hosts); !strings.Contains(string(data), "# hoist:demo") {
		t.Errorf("a refused clean edited the hosts file:\n%s", data)
	}

	// The cluster's own directory goes, with its hosts line.
	demo := filepath.Join(base, "demo")
	os.MkdirAll(filepath.Join(demo, "state"), 0o755)
	if err := clean("demo", demo); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(demo); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory is kept: %v", err)
	}
	if data, _ := os.ReadFile(hosts); strings.Contains(string(data), "hoist:demo") || !strings.Contains(string(data), "localhost") {
		t.Errorf("hosts file after clean:\n%s", data)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("another directory went with it: %v", err)
	}
}

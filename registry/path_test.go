package registry

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestHostsDecodesWhatEncodeHostStores: the hosts of a registry directory
// are read back as they were before EncodeHost stored them.
func TestHostsDecodesWhatEncodeHostStores(t *testing.T) {
	hosts := []string{"docker.io", "registry.corp:5000", "10.0.0.2:5000", "localhost", "quay.io"}
	root := t.TempDir()
	for _, h := range hosts {
		if got := DecodeHost(EncodeHost(h)); got != h {
			t.Errorf("DecodeHost(EncodeHost(%q)) = %q", h, got)
		}
		if err := os.MkdirAll(filepath.Join(root, v2, "repositories", EncodeHost(h), "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A stray file is no repository.
	os.WriteFile(filepath.Join(root, v2, "repositories", "README"), nil, 0o644)
	got := Hosts(root)
	slices.Sort(got)
	want := slices.Clone(hosts)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Hosts = %v, want %v", got, want)
	}
	if got := Hosts(filepath.Join(root, "missing")); len(got) != 0 {
		t.Errorf("Hosts of no registry = %v", got)
	}
}

package testbed

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ForTest starts a bed of n nodes for a test or benchmark, whose root
// accepts a new key, and tears it down when the test ends. It returns the
// bed and the key's file. It skips when not root (CI runs as root).
func ForTest(t testing.TB, n int) (*Bed, string) {
	t.Helper()
	return forTest(t, n, false)
}

// ForKubeTest is ForTest with nodes that can run containerd, the kubelet
// and kubeadm (Options.Kube).
func ForKubeTest(t testing.TB, n int) (*Bed, string) {
	t.Helper()
	return forTest(t, n, true)
}

func forTest(t testing.TB, n int, kube bool) (*Bed, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a test bed of nodes (network namespaces and mounts; CI runs as root)")
	}
	ctx := context.Background()
	rootfs := BaseRootfs
	if kube {
		rootfs = KubeRootfs
	}
	base, err := rootfs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	bed, err := Create(ctx, Options{Nodes: n, AuthorizedKey: string(pub), Base: base, Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Destroy() })
	return bed, key
}

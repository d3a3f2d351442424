package apply

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

func TestInstallSelfAndDistribute(t *testing.T) {
	ctx := context.Background()
	bed, key := testbed.ForTest(t, 3)
	bin := fixture.HoistBinary(t)
	binDigest, err := agent.FileDigest(bin)
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	pool := ssh.NewPool()
	defer pool.Close()
	connect := func(ctx context.Context, n testbed.Node) (ssh.Executor, error) {
		return pool.Get(ctx, ssh.Config{Host: n.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: known, AcceptNew: true})
	}

	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "kubeadm.yaml"), []byte("kind: ClusterConfiguration\n"), 0o644)
	os.Symlink("etc/kubeadm.yaml", filepath.Join(rootfs, "current"))
	const dest = "/var/lib/hoist/demo/rootfs"
	packed, err := packTree(rootfs, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	var uploads, sends atomic.Int32
	step := func(ctx context.Context, n testbed.Node) error {
		node, err := connect(ctx, n)
		if err != nil {
			return err
		}
		remote, uploaded, err := installSelf(ctx, node, bin, binDigest, "/var/lib/hoist/bin")
		if err != nil {
			return err
		}
		if uploaded {
			uploads.Add(1)
		}
		sent, err := distribute(ctx, node, remote, packed, "sha256:v1", dest, nil)
		if sent {
			sends.Add(1)
		}
		return err
	}
	for round := 1; round <= 2; round++ {
		for i, err := range ssh.ForEach(ctx, bed.Nodes, 3, step) {
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, bed.Nodes[i].Name, err)
			}
		}
	}
	// The first round uploads and sends to each node; the second finds
	// everything in place.
	if uploads.Load() != 3 || sends.Load() != 3 {
		t.Errorf("uploads %d, sends %d; want 3 and 3", uploads.Load(), sends.Load())
	}
	for _, n := range bed.Nodes {
		tree := filepath.Join(n.Upper, dest)
		if data, err := os.ReadFile(filepath.Join(tree, "etc", "kubeadm.yaml")); err != nil || string(data) != "kind: ClusterConfiguration\n" {
			t.Errorf("%s: %q %v", n.Name, data, err)
		}
		if link, _ := os.Readlink(filepath.Join(tree, "current")); link != "etc/kubeadm.yaml" {
			t.Errorf("%s: symlink %q", n.Name, link)
		}
	}
}

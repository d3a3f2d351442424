package testbed

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/ssh"
)

func TestBed(t *testing.T) {
	ctx := context.Background()
	bed, key := ForTest(t, 3)

	known := filepath.Join(t.TempDir(), "known_hosts")
	pool := ssh.NewPool()
	defer pool.Close()
	errs := ssh.ForEach(ctx, bed.Nodes, 3, func(ctx context.Context, n Node) error {
		e, err := pool.Get(ctx, ssh.Config{Host: n.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: known, AcceptNew: true})
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := e.Run(ctx, "hostname; ip -4 -o addr show eth0; echo mine > /root/mine", nil, &out); err != nil {
			return err
		}
		if !strings.HasPrefix(out.String(), n.Name+"\n") || !strings.Contains(out.String(), n.IP+"/24") {
			t.Errorf("%s: %q", n.Name, out.String())
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v\nsshd log:\n%s", bed.Nodes[i].Name, err, bed.Log(bed.Nodes[i]))
		}
	}
	// Each node has its own filesystem and host key.
	for _, n := range bed.Nodes {
		if data, err := os.ReadFile(filepath.Join(n.Upper, "root", "mine")); err != nil || string(data) != "mine\n" {
			t.Errorf("%s: its file is not in its own layer: %v", n.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(bed.base, "root", "mine")); err == nil {
		t.Errorf("a node wrote into the shared base tree")
	}
	data, _ := os.ReadFile(known)
	if lines := strings.Count(string(data), "\n"); lines != 3 {
		t.Errorf("known_hosts has %d lines, want 3 distinct host keys:\n%s", lines, data)
	}

	pool.Close()
	// Destroyed here to check it; ForTest's cleanup then finds nothing left.
	if err := bed.Destroy(); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), "hoist-"+bed.ID) {
		t.Errorf("namespaces left: %s", out)
	}
	if _, err := os.Stat(bed.dir); err == nil {
		t.Errorf("files left in %s", bed.dir)
	}
}

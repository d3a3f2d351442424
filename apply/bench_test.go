package apply

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/test/testbed"
)

// BenchmarkDistribute sends a 200 MB rootfs (incompressible) to 1 node and
// to 3 nodes at once, each as a ratio to `cat file | ssh node 'cat >
// /dev/null'` to one node, measured in the same run.
//
//	go test -run '^$' -bench Distribute -benchtime 2x ./apply
func BenchmarkDistribute(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: a test bed of nodes")
	}
	ctx := context.Background()
	base, err := testbed.BaseRootfs(ctx)
	if err != nil {
		b.Fatal(err)
	}
	key := filepath.Join(b.TempDir(), "id")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).Run()
	pub, _ := os.ReadFile(key + ".pub")
	bed, err := testbed.Create(ctx, testbed.Options{Nodes: 3, AuthorizedKey: string(pub), Base: base})
	if err != nil {
		b.Fatal(err)
	}
	defer bed.Destroy()
	bin := filepath.Join(b.TempDir(), "hoist")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs", "-o", bin, "../cmd/hoist")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v %s", err, out)
	}
	rootfs := b.TempDir()
	for i := range 20 {
		data := make([]byte, 10<<20)
		rand.Read(data)
		os.WriteFile(filepath.Join(rootfs, fmt.Sprintf("blob%02d", i)), data, 0o644)
	}
	raw := filepath.Join(b.TempDir(), "raw")
	exec.Command("sh", "-c", "cat "+rootfs+"/* > "+raw).Run()

	known := filepath.Join(b.TempDir(), "known_hosts")
	pool := ssh.NewPool()
	defer pool.Close()
	nodes := make([]ssh.Executor, len(bed.Nodes))
	remotes := make([]string, len(bed.Nodes))
	for i, n := range bed.Nodes {
		e, err := pool.Get(ctx, ssh.Config{Host: n.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: known, AcceptNew: true})
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = e
		if remotes[i], _, err = InstallSelf(ctx, e, bin, "/var/lib/hoist/bin"); err != nil {
			b.Fatal(err)
		}
	}
	var baseline, one, three time.Duration
	b.ResetTimer()
	for iter := range b.N {
		f, _ := os.Open(raw)
		start := time.Now()
		if err := nodes[0].Run(ctx, "cat > /dev/null", f, nil); err != nil {
			b.Fatal(err)
		}
		baseline += time.Since(start)
		f.Close()

		digest := fmt.Sprintf("sha256:bench-%d-one", iter)
		start = time.Now()
		packed, err := Pack(rootfs, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Distribute(ctx, nodes[0], remotes[0], packed, digest, "/var/lib/hoist/bench/rootfs", nil); err != nil {
			b.Fatal(err)
		}
		one += time.Since(start)

		digest = fmt.Sprintf("sha256:bench-%d-three", iter)
		start = time.Now()
		packed, err = Pack(rootfs, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		errs := ssh.ForEach(ctx, []int{0, 1, 2}, 3, func(ctx context.Context, i int) error {
			_, err := Distribute(ctx, nodes[i], remotes[i], packed, digest, "/var/lib/hoist/bench/rootfs", nil)
			return err
		})
		three += time.Since(start)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(baseline.Seconds()/float64(b.N), "cat-ssh-s/op")
	b.ReportMetric(one.Seconds()/baseline.Seconds(), "1-node-ratio")
	b.ReportMetric(three.Seconds()/baseline.Seconds(), "3-node-ratio")
	b.ReportMetric(three.Seconds()/one.Seconds(), "3-vs-1")
}

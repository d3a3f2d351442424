package apply

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

// BenchmarkDistribute sends a 200 MB rootfs (incompressible) to 1 node and
// to 3 nodes at once, each as a ratio to `cat file | ssh node 'cat >
// /dev/null'` to one node, measured in the same run.
//
// The test bed's nodes are processes of this machine: they share its cores
// with hoist. The CPU metrics tell a run bound by those cores (3 nodes
// doing 3 times the work on 2 cores) from a serial fan-out, and show
// hoist's own cost per node, which is what real nodes would share; and
// cat-ssh-3-vs-1, the raw copy to 3 nodes at once against 1, is the floor
// the machine itself sets on any fan-out's 3-vs-1.
//
//	go test -run '^$' -bench Distribute -benchtime 2x ./apply
func BenchmarkDistribute(b *testing.B) {
	ctx := context.Background()
	bed, key := testbed.ForTest(b, 3)
	bin := fixture.HoistBinary(b)
	binDigest, err := agent.FileDigest(bin)
	if err != nil {
		b.Fatal(err)
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
		if remotes[i], _, err = installSelf(ctx, e, bin, binDigest, "/var/lib/hoist/bin"); err != nil {
			b.Fatal(err)
		}
	}
	var baseline, baseline3, one, three, pack time.Duration
	var cpuOne, cpuThree, selfOne, selfThree float64
	b.ResetTimer()
	for iter := range b.N {
		f, _ := os.Open(raw)
		start := time.Now()
		if err := nodes[0].Run(ctx, "cat > /dev/null", f, nil); err != nil {
			b.Fatal(err)
		}
		baseline += time.Since(start)
		f.Close()

		// The same raw copy to the 3 nodes at once: the floor this
		// machine sets on any fan-out, its nodes sharing its cores.
		start = time.Now()
		errs := ssh.ForEach(ctx, []int{0, 1, 2}, 3, func(ctx context.Context, i int) error {
			f, err := os.Open(raw)
			if err != nil {
				return err
			}
			defer f.Close()
			return nodes[i].Run(ctx, "cat > /dev/null", f, nil)
		})
		baseline3 += time.Since(start)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}

		digest := fmt.Sprintf("sha256:bench-%d-one", iter)
		cpu, self := busyCPU(b), selfCPU()
		start = time.Now()
		packed, err := packTree(rootfs, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		pack += time.Since(start)
		if _, err := distribute(ctx, nodes[0], remotes[0], packed, digest, "/var/lib/hoist/bench/rootfs", nil); err != nil {
			b.Fatal(err)
		}
		one += time.Since(start)
		cpuOne += busyCPU(b) - cpu
		selfOne += selfCPU() - self

		digest = fmt.Sprintf("sha256:bench-%d-three", iter)
		cpu, self = busyCPU(b), selfCPU()
		start = time.Now()
		packed, err = packTree(rootfs, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		errs = ssh.ForEach(ctx, []int{0, 1, 2}, 3, func(ctx context.Context, i int) error {
			_, err := distribute(ctx, nodes[i], remotes[i], packed, digest, "/var/lib/hoist/bench/rootfs", nil)
			return err
		})
		three += time.Since(start)
		cpuThree += busyCPU(b) - cpu
		selfThree += selfCPU() - self
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
	b.ReportMetric(baseline3.Seconds()/baseline.Seconds(), "cat-ssh-3-vs-1")
	b.ReportMetric(pack.Seconds()/float64(b.N), "pack-s/op")
	// The nodes share this machine's cores: CPU seconds (client, sshd and
	// the nodes' unpack together) tell a CPU-bound run from a serial one.
	b.ReportMetric(cpuOne/float64(b.N), "1-node-cpu-s/op")
	b.ReportMetric(cpuThree/float64(b.N), "3-node-cpu-s/op")
	// This process is hoist's side (pack, encrypt, send): what a real
	// fan-out shares, the nodes having their own cores.
	b.ReportMetric(selfOne/float64(b.N), "1-node-hoist-cpu-s/op")
	b.ReportMetric(selfThree/float64(b.N), "3-node-hoist-cpu-s/op")
}

// BenchmarkRedistribute applies an image bundling 20 images of 10 MB
// (random, as gzip layers are) to a node, then a version of it that
// changed one of the 20 to the same node, each as an apply's rootfs step
// does it: the packed stream from --root (made there on first use) and
// distribute. It reports the second against the first (reapply-ratio; the
// issue's target is 0.3 or less), with the packing of the new version (an
// apply's first node) and without it (reapply-packed-ratio: its other
// nodes, the stream kept under --root), the bytes sent, and the first
// apply against `cat blobs | ssh node 'cat > /dev/null'` of the same 200 MB
// in the same run, packing included and not (a second node: the stream
// is kept).
//
//	go test -run '^$' -bench Redistribute -benchtime 3x ./apply
func BenchmarkRedistribute(b *testing.B) {
	ctx := context.Background()
	bed, key := testbed.ForTest(b, 1)
	bin := fixture.HoistBinary(b)
	binDigest, err := agent.FileDigest(bin)
	if err != nil {
		b.Fatal(err)
	}
	blobs := randomBlobs(20, 10<<20)
	v1 := imageTree(b, blobs)
	v2 := imageTree(b, append(slices.Clone(blobs[:19]), randomBlobs(1, 10<<20)[0]))
	raw := filepath.Join(b.TempDir(), "raw")
	exec.Command("sh", "-c", "cat "+v1+"/registry/docker/registry/v2/blobs/sha256/*/*/data > "+raw).Run()

	pool := ssh.NewPool()
	defer pool.Close()
	node, err := pool.Get(ctx, ssh.Config{Host: bed.Nodes[0].IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: filepath.Join(b.TempDir(), "known_hosts"), AcceptNew: true})
	if err != nil {
		b.Fatal(err)
	}
	remote, _, err := installSelf(ctx, node, bin, binDigest, "/var/lib/hoist/bin")
	if err != nil {
		b.Fatal(err)
	}
	var baseline, first, firstPacked, again, againCached time.Duration
	var sentFirst, sentAgain int64
	b.ResetTimer()
	for iter := range b.N {
		f, _ := os.Open(raw)
		start := time.Now()
		if err := node.Run(ctx, "cat > /dev/null", f, nil); err != nil {
			b.Fatal(err)
		}
		baseline += time.Since(start)
		f.Close()

		// A new --root each time: nothing packed yet.
		local := layout.Local{Root: b.TempDir()}
		apply := func(src, image, dest string) (time.Duration, int64) {
			var sent int64
			start := time.Now()
			p, err := packCached(local.PackedRootfs(image+"+registry"), src)
			if err != nil {
				b.Fatal(err)
			}
			progress := func(s, _ int64) { sent = s }
			if _, err := distribute(ctx, node, remote, p, image+"+registry", dest, progress); err != nil {
				b.Fatal(err)
			}
			return time.Since(start), sent
		}
		d1, d2 := fmt.Sprintf("/var/lib/hoist/bench%d/rootfs", iter), fmt.Sprintf("/var/lib/hoist/bench%d-b/rootfs", iter)
		img1, img2 := fmt.Sprintf("sha256:v1-%d", iter), fmt.Sprintf("sha256:v2-%d", iter)
		t, sent := apply(v1, img1, d1)
		first += t
		sentFirst += sent
		// v1 to a second, empty node: the stream is kept under --root.
		t, _ = apply(v1, img1, d2)
		firstPacked += t
		t, sent = apply(v2, img2, d1)
		again += t
		sentAgain += sent
		t, _ = apply(v2, img2, d2)
		againCached += t
		node.Run(ctx, fmt.Sprintf("rm -rf /var/lib/hoist/bench%d /var/lib/hoist/bench%d-b", iter, iter), nil, nil)
	}
	b.ReportMetric(first.Seconds()/float64(b.N), "first-apply-s/op")
	b.ReportMetric(first.Seconds()/baseline.Seconds(), "first-vs-cat-ssh")
	b.ReportMetric(firstPacked.Seconds()/baseline.Seconds(), "first-packed-vs-cat-ssh")
	b.ReportMetric(again.Seconds()/first.Seconds(), "reapply-ratio")
	b.ReportMetric(againCached.Seconds()/first.Seconds(), "reapply-packed-ratio")
	b.ReportMetric(float64(sentAgain)/float64(sentFirst), "reapply-bytes-ratio")
}

// busyCPU is the CPU time the whole machine has spent busy, in seconds,
// from /proc/stat (every process, the nodes' included).
func busyCPU(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	return busy / 100 // USER_HZ
}

// selfCPU is the CPU time of this process (hoist's side), in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

package apply

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/layout"
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

// imageTree makes the rootfs of an image bundling len(blobs) images, one
// layer each (the blob), in the Distribution layout, beside a few files
// outside registry/.
func imageTree(t testing.TB, blobs [][]byte) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/kubeadm.yaml", []byte("kind: ClusterConfiguration\n"))
	write("bin/tool", bytes.Repeat([]byte("tool "), 4000))
	os.Symlink("etc/kubeadm.yaml", filepath.Join(dir, "current"))
	for i, b := range blobs {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		write(agent.BlobPath(h), b)
		write(fmt.Sprintf("registry/docker/registry/v2/repositories/docker.io/library/img%d/_layers/sha256/%s/link", i, h), []byte("sha256:"+h))
	}
	return dir
}

func randomBlobs(n, size int) [][]byte {
	blobs := make([][]byte, n)
	for i := range blobs {
		blobs[i] = make([]byte, size)
		rand.Read(blobs[i])
	}
	return blobs
}

// TestPackCached: the packed rootfs is made once per image under --root
// and used again by the next apply as it is (the same file, not written
// again); one cut short or corrupted is found by its recorded digest and
// made again; only the streams used last are kept.
func TestPackCached(t *testing.T) {
	root := t.TempDir()
	src := imageTree(t, randomBlobs(3, 64<<10))
	digest := "sha256:" + strings.Repeat("1", 64)
	pack := func(digest string) packedTree {
		t.Helper()
		r := &runner{opts: Options{Root: root}, image: Image{Rootfs: src, Digest: digest}, packed: map[bool]packedTree{}}
		p, err := r.pack(true)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := layout.Local{Root: root}.PackedRootfs(digest + "+registry")
	stat := func() (uint64, time.Time) {
		t.Helper()
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime()
	}
	first := pack(digest)
	ino, mtime := stat()
	time.Sleep(10 * time.Millisecond)
	second := pack(digest) // another apply
	d1, _ := first.digest()
	// Recorded once computed: the next apply reads it.
	if data, _ := os.ReadFile(file + ".json"); !strings.Contains(string(data), d1) {
		t.Errorf("the stream's digest %s is not recorded in its index: %s", d1, data)
	}
	d2, _ := second.digest()
	if ino2, mtime2 := stat(); ino2 != ino || !mtime2.Equal(mtime) || d1 != d2 {
		t.Errorf("the second apply packed again: inode %d→%d, mtime %v→%v", ino, ino2, mtime, mtime2)
	}

	full, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(){
		"cut short": func() { os.Truncate(file, int64(len(full)/2)) },
		"corrupted": func() {
			bad := bytes.Clone(full)
			bad[len(bad)/2] ^= 1
			os.WriteFile(file, bad, 0o600)
		},
		"index lost": func() { os.Remove(file + ".json") },
	} {
		damage()
		ino, _ = stat()
		p := pack(digest)
		if ino2, _ := stat(); ino2 == ino {
			t.Errorf("%s: not made again", name)
		}
		data, _ := os.ReadFile(file)
		d, err := p.digest()
		if h := sha256.Sum256(data); err != nil || d != "sha256:"+hex.EncodeToString(h[:]) || int64(len(data)) != p.Size {
			t.Errorf("%s: made again with digest %s (%v), the file has %x", name, d, err, h)
		}
	}

	// Five more images: the one used last stays with the newest three.
	for i := range 5 {
		if i == 3 {
			pack(digest)
		}
		pack("sha256:" + strings.Repeat(strconv.Itoa(i+2), 64))
		time.Sleep(10 * time.Millisecond)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "*.tar.zst"))
	if len(left) != keepPacked {
		t.Errorf("%d streams kept, want %d: %v", len(left), keepPacked, left)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the stream used fifth last is gone: %v", err)
	}
	if _, err := os.Stat(layout.Local{Root: root}.PackedRootfs("sha256:" + strings.Repeat("2", 64) + "+registry")); err == nil {
		t.Error("the stream used least recently is kept")
	}
}

// countingExec counts the bytes sent to a node's commands.
type countingExec struct {
	ssh.Executor
	sent *atomic.Int64
}

func (c countingExec) Run(ctx context.Context, command string, stdin io.Reader, stdout io.Writer) error {
	if stdin != nil {
		stdin = &countingReader{r: stdin, progress: func(int64, int64) {}, total: 0}
		defer func(r *countingReader) { c.sent.Add(r.sent) }(stdin.(*countingReader))
	}
	return c.Executor.Run(ctx, command, stdin, stdout)
}

// TestDistributeSendsOnlyMissingBlobs: to a node with the tree of v1, v2
// (one of its bundled images changed) costs about that image's blob and
// the small files outside registry/ (a large binary it has is linked), and
// leaves exactly v2's tree; a node
// without v1 gets the whole stream; a node whose blob is corrupted gets
// the whole stream after its agent refuses to link it.
func TestDistributeSendsOnlyMissingBlobs(t *testing.T) {
	ctx := context.Background()
	bed, key := testbed.ForTest(t, 2)
	bin := fixture.HoistBinary(t)
	binDigest, err := agent.FileDigest(bin)
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	pool := ssh.NewPool()
	defer pool.Close()

	const n, size = 6, 512 << 10
	blobs := randomBlobs(n, size)
	v1 := imageTree(t, blobs)
	changed := randomBlobs(1, size)[0]
	v2 := imageTree(t, append(slices.Clone(blobs[:n-1]), changed))
	// A large binary outside registry/, the same in both: linked as well.
	kubelet := randomBlobs(1, agent.MinFileSegment+1)[0]
	for _, dir := range []string{v1, v2} {
		if err := os.WriteFile(filepath.Join(dir, "bin/kubelet"), kubelet, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	p1, err := packTree(v1, tmp)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := packTree(v2, tmp)
	if err != nil {
		t.Fatal(err)
	}
	// What v2 holds outside registry blobs and large files, packed
	// (compressed) or not.
	var other int64
	files := 0
	for _, s := range p2.Segments {
		if s.Blob == "" {
			other += s.Length
		}
		if s.Path != "" {
			files++
		}
	}
	if files != 1 {
		t.Errorf("%d large files are segments of their own, want 1 (bin/kubelet)", files)
	}

	const dest = "/var/lib/hoist/demo/rootfs"
	type node struct {
		exec   ssh.Executor
		remote string
		sent   *atomic.Int64
		tree   string
	}
	nodes := make([]node, len(bed.Nodes))
	for i, bn := range bed.Nodes {
		e, err := pool.Get(ctx, ssh.Config{Host: bn.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: known, AcceptNew: true})
		if err != nil {
			t.Fatal(err)
		}
		remote, _, err := installSelf(ctx, e, bin, binDigest, "/var/lib/hoist/bin")
		if err != nil {
			t.Fatal(err)
		}
		sent := &atomic.Int64{}
		nodes[i] = node{countingExec{e, sent}, remote, sent, filepath.Join(bn.Upper, dest)}
	}
	send := func(nd node, p packedTree, digest string) int64 {
		t.Helper()
		before := nd.sent.Load()
		if sent, err := distribute(ctx, nd.exec, nd.remote, p, digest, dest, nil); err != nil || !sent {
			t.Fatalf("distribute %s: sent %v, %v", digest, sent, err)
		}
		if got := agent.Digest(nd.tree); got != digest {
			t.Fatalf("marker %q, want %q", got, digest)
		}
		return nd.sent.Load() - before
	}
	a, b := nodes[0], nodes[1]

	full1 := send(a, p1, "sha256:v1+registry")
	if full1 < n*size {
		t.Errorf("v1 to an empty node: %d bytes sent, less than its %d bytes of blobs", full1, n*size)
	}
	sameTree(t, v1, a.tree)

	delta := send(a, p2, "sha256:v2+registry")
	if limit := int64(size) + other + 32<<10; delta > limit {
		t.Errorf("v2 to a node with v1: %d bytes sent, want at most %d (the changed blob %d, the rest of the tree packed %d, 32 KiB)", delta, limit, size, other)
	}
	t.Logf("v1 whole: %d bytes sent; v2 to a node with v1: %d", full1, delta)
	sameTree(t, v2, a.tree)

	if full2 := send(b, p2, "sha256:v2+registry"); full2 < n*size {
		t.Errorf("v2 to a node without v1: %d bytes sent, less than its blobs", full2)
	}
	sameTree(t, v2, b.tree)

	// A blob of b's tree, also in v1, corrupted (same size): its agent
	// refuses to link it, and the whole stream follows.
	sum := sha256.Sum256(blobs[0])
	blob := filepath.Join(b.tree, agent.BlobPath(hex.EncodeToString(sum[:])))
	bad := slices.Clone(blobs[0])
	bad[7] ^= 1
	if err := os.WriteFile(blob, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if again := send(b, p1, "sha256:v1+registry"); again < n*size {
		t.Errorf("v1 to a node with a corrupted blob: %d bytes sent, not the whole stream", again)
	}
	sameTree(t, v1, b.tree)
}

// sameTree fails unless the trees at want and got hold the same names,
// types, permission bits, contents and link targets (the Marker aside).
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	list := func(dir string) map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == agent.Marker {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			desc := info.Mode().String()
			switch {
			case info.Mode().IsRegular():
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				desc += fmt.Sprintf(" %x", sha256.Sum256(data))
			case info.Mode()&fs.ModeSymlink != 0:
				link, _ := os.Readlink(p)
				desc += " -> " + link
			}
			m[rel] = desc
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	w, g := list(want), list(got)
	for name, d := range w {
		if g[name] != d {
			t.Errorf("%s: %q, want %q", name, g[name], d)
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s: on the node, not in the tree sent", name)
		}
	}
}

// TestPackCachedReusesFrames: packing an image's next version shares the
// frames of the blobs an earlier stream under --root has (the same tar
// entry but for its time) instead of compressing them again and writing
// them twice, except a frame damaged on disk; the stream unpacks to
// exactly the new tree, opens again from its index, and keeps the earlier
// stream's file while it shares frames of it, past that stream's pruning.
func TestPackCachedReusesFrames(t *testing.T) {
	root := layout.Local{Root: t.TempDir()}
	blobs := randomBlobs(3, 64<<10)
	v1 := imageTree(t, blobs)
	v2 := imageTree(t, append(slices.Clone(blobs[:2]), []byte("changed")))
	// v2's copies of the shared blobs were written at another time: a
	// frame compressed again would differ from v1's.
	old := time.Now().Add(-time.Hour)
	var shared []string
	for _, b := range blobs[:2] {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		shared = append(shared, h)
		os.Chtimes(filepath.Join(v2, agent.BlobPath(h)), old, old)
	}
	file1, file2 := root.PackedRootfs("sha256:v1+registry"), root.PackedRootfs("sha256:v2+registry")
	p1, err := packCached(file1, v1)
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	piece := func(p packedTree, blob string) piece {
		for i, s := range p.Segments {
			if s.Blob == blob {
				return p.pieces[i]
			}
		}
		t.Fatalf("no segment for blob %s", blob)
		return piece{}
	}
	// Damage v1's frame of the second shared blob (a byte past its
	// header): v2 must not share it.
	pc := piece(p1, shared[1])
	f, err := os.OpenFile(file1, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, pc.at+pc.n/2)
	f.WriteAt([]byte{b[0] ^ 0xff}, pc.at+pc.n/2)
	f.Close()

	p2, err := packCached(file2, v2)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if pc := piece(p2, shared[0]); pc.f.Name() != file1 {
		t.Errorf("the shared blob's frame is in %s, not v1's stream", pc.f.Name())
	}
	if pc := piece(p2, shared[1]); pc.f.Name() == file1 {
		t.Error("a damaged frame was shared")
	}
	if fi, err := os.Stat(file2); err != nil || fi.Size() > int64(len(blobs[0]))+8<<10 {
		t.Errorf("v2's own file holds more than the blob compressed again: %v %v", fi.Size(), err)
	}
	unpacked := func(p packedTree) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "rootfs")
		d, err := p.digest()
		if err != nil {
			t.Fatal(err)
		}
		if err := agent.Unpack(p.reader(p.stream(nil)), dest, "sha256:v2", d); err != nil {
			t.Fatal(err)
		}
		sameTree(t, v2, dest)
	}
	unpacked(p2)
	// Opened again from its index: the same stream, not packed again.
	mtime := func(p string) time.Time { fi, _ := os.Stat(p); return fi.ModTime() }
	before := mtime(file2)
	again, err := packCached(file2, v2)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !mtime(file2).Equal(before) || len(again.files) != 2 {
		t.Errorf("v2 packed again, or opened without v1's file (%d files)", len(again.files))
	}
	unpacked(again)

	// Four newer streams: v1's index goes, its file stays while v2's
	// index shares it; one more, and both go.
	for i := range keepPacked - 1 {
		p, err := packCached(root.PackedRootfs(fmt.Sprintf("sha256:other%d", i)), imageTree(t, randomBlobs(1, 1024)))
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	if _, err := os.Stat(file1 + ".json"); err == nil {
		t.Error("v1's index was kept past the 4 newest")
	}
	if _, err := os.Stat(file1); err != nil {
		t.Errorf("v1's stream, shared by v2's, was removed: %v", err)
	}
	if p, err := packCached(root.PackedRootfs("sha256:last"), imageTree(t, randomBlobs(1, 1024))); err != nil {
		t.Fatal(err)
	} else {
		p.Close()
	}
	for _, f := range []string{file1, file2, file2 + ".json"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s kept after no index names it", f)
		}
	}
}

// answerExec answers every command with answer on stdout.
type answerExec struct{ answer []byte }

func (a answerExec) Run(_ context.Context, _ string, stdin io.Reader, stdout io.Writer) error {
	if stdin != nil {
		io.Copy(io.Discard, stdin)
	}
	_, err := stdout.Write(a.answer)
	return err
}

func (answerExec) Close() error { return nil }

// TestHeldBlobsRefusesBadAnswers: what a node says it holds is taken only
// as digests asked about, each once; a longer answer is cut off before it
// fills memory.
func TestHeldBlobsRefusesBadAnswers(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	blobs := []agent.Segment{{Blob: a, Size: 1}, {Blob: b, Size: 2}}
	for _, tc := range []struct {
		answer string
		want   string
	}{
		{a + "\n" + a + "\n", "twice"},
		{strings.Repeat("c", 64) + "\n", "not a sha256 asked about"},
		{"../../etc/passwd\n", "not a sha256 asked about"},
		{strings.Repeat(a+"\n", 1000), "longer than the 2 blobs asked about"},
	} {
		if _, err := heldBlobs(context.Background(), answerExec{[]byte(tc.answer)}, "/hoist", "/rootfs", blobs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("answer %.40q: %v, want %q", tc.answer, err, tc.want)
		}
	}
	held, err := heldBlobs(context.Background(), answerExec{[]byte(b + "\n")}, "/hoist", "/rootfs", blobs)
	if err != nil || len(held) != 1 || !held[b] {
		t.Errorf("held %v, %v", held, err)
	}
}

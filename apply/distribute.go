package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// remoteHoistPath is where installSelf puts the hoist binary of this digest
// (agent.FileDigest) under dir.
func remoteHoistPath(dir, digest string) string { return path.Join(dir, "hoist-"+digest[:16]) }

// installSelf puts the hoist binary at binary, whose agent.FileDigest is digest
// (computed once for every node), on the node under dir, once per version:
// the copy is named by its digest, checked by the copy itself after the
// upload, and moved into place only then. It returns the remote path and
// whether it had to upload.
func installSelf(ctx context.Context, node ssh.Executor, binary, digest, dir string) (string, bool, error) {
	remote := remoteHoistPath(dir, digest)
	q := ssh.Quote
	if out, err := ssh.Output(ctx, node, fmt.Sprintf("if [ -x %s ]; then %s; fi", q(remote), step.Agent(remote, agent.DigestCmd{File: remote}))); err == nil && strings.TrimSpace(string(out)) == digest {
		return remote, false, nil
	}
	f, err := os.Open(binary)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	tmp := remote + ".upload"
	if err := node.Run(ctx, fmt.Sprintf("mkdir -p %s && cat > %s && chmod 755 %s", q(dir), q(tmp), q(tmp)), f, nil); err != nil {
		return "", false, fmt.Errorf("uploading hoist: %w", err)
	}
	out, err := ssh.Output(ctx, node, step.Agent(tmp, agent.DigestCmd{File: tmp}))
	if err != nil {
		return "", false, fmt.Errorf("checking the uploaded hoist: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != digest {
		return "", false, fmt.Errorf("the uploaded hoist has digest %s, expected %s", got, digest)
	}
	if err := node.Run(ctx, "mv -f "+q(tmp)+" "+q(remote), nil, nil); err != nil {
		return "", false, err
	}
	return remote, true, nil
}

// packedTree is a rootfs packed as distribute sends it: a zstd tar whose
// registry blobs and large files are segments of their own
// (agent.PackSegments), open for every node to read at once. A segment's
// bytes are in the tree's own file, or, for a frame shared with an earlier
// stream under --root (agent.PackReusing), in that stream's file.
type packedTree struct {
	Size     int64
	Segments []agent.Segment
	// pieces[i] is where Segments[i]'s bytes are.
	pieces []piece
	// files are the files open for it, its own first.
	files []*os.File
	whole *wholeDigest
}

// piece is a run of bytes of a file.
type piece struct {
	f     *os.File
	at, n int64
}

// Close closes the files the tree holds open.
func (p packedTree) Close() {
	for _, f := range p.files {
		f.Close()
	}
}

// own is the tree's own file (nil for a tree not packed).
func (p packedTree) own() *os.File {
	if len(p.files) == 0 {
		return nil
	}
	return p.files[0]
}

// wholeDigest is the sha256 of the whole stream, what a node sent all of
// it checks: computed when a node first needs it, since the nodes that
// have an earlier version need only theirs (packedTree.without), and
// recorded in index, when there is one, for the applies after.
type wholeDigest struct {
	once   sync.Once
	digest string // sha256:<hex>
	err    error
	index  string
}

// digest is the sha256 of the whole stream.
func (p packedTree) digest() (string, error) {
	p.whole.once.Do(func() {
		if p.whole.digest != "" {
			return
		}
		h := sha256.New()
		if _, err := io.Copy(h, p.reader(p.stream(nil))); err != nil {
			p.whole.err = fmt.Errorf("reading the packed rootfs: %w", err)
			return
		}
		p.whole.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
		if p.whole.index != "" {
			// Not recorded is only computed again.
			recordDigest(p, p.whole.digest)
		}
	})
	return p.whole.digest, p.whole.err
}

// packTree writes the tree at dir, as distribute sends it, to a temporary
// file in tmpDir: packed once, it is sent to every node, so that more nodes
// cost no more compression. Top-level entries named in exclude are left
// out. Apply keeps it under --root instead (packCached).
func packTree(dir, tmpDir string, exclude ...string) (packedTree, error) {
	f, err := os.CreateTemp(tmpDir, "rootfs-*.tar.zst")
	if err != nil {
		return packedTree{}, err
	}
	p, err := packInto(f, dir, nil, exclude...)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
	}
	return p, err
}

// packInto packs the tree at dir into f, an empty file open for reading
// and writing, sharing the frames of blobs frames has (agent.PackReusing).
// The tree holds f open; a shared frame's file is the caller's to keep
// open (packCached opens it again).
func packInto(f *os.File, dir string, frames agent.Frames, exclude ...string) (packedTree, error) {
	segs, shared, err := agent.PackReusing(f, dir, frames, exclude...)
	if err != nil {
		return packedTree{}, err
	}
	p := packedTree{Segments: segs, files: []*os.File{f}, whole: &wholeDigest{}}
	var at int64
	for i, s := range segs {
		if fr := shared[i]; fr != nil {
			p.pieces = append(p.pieces, piece{fr.File, fr.At, s.Length})
		} else {
			p.pieces = append(p.pieces, piece{f, at, s.Length})
			at += s.Length
		}
		p.Size += s.Length
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != at {
		err = fmt.Errorf("%s: %d bytes packed, %d written", f.Name(), at, fi.Size())
	}
	return p, err
}

// blobs are the files that are segments of their own: registry blobs,
// and large files elsewhere (agent.MinFileSegment).
func (p packedTree) blobs() []agent.Segment {
	var blobs []agent.Segment
	for _, s := range p.Segments {
		if s.Blob != "" {
			blobs = append(blobs, s)
		}
	}
	return blobs
}

// stream is what one node is sent: prefix, then pieces of files.
type stream struct {
	prefix []byte
	pieces []piece
	size   int64
	digest string
}

// stream is the tree's stream without the segments in held (by
// Segment.Key), their pieces run together where they follow each other.
func (p packedTree) stream(held map[string]bool) stream {
	var s stream
	for i, seg := range p.Segments {
		if seg.Blob != "" && held[seg.Key()] {
			continue
		}
		pc := p.pieces[i]
		if n := len(s.pieces); n > 0 && s.pieces[n-1].f == pc.f && s.pieces[n-1].at+s.pieces[n-1].n == pc.at {
			s.pieces[n-1].n += pc.n
		} else {
			s.pieces = append(s.pieces, pc)
		}
		s.size += pc.n
	}
	return s
}

func (p packedTree) full() (stream, error) {
	s := p.stream(nil)
	var err error
	s.digest, err = p.digest()
	return s, err
}

// without is the stream that leaves out the blobs in held, which the node
// links from the tree it has (agent.LinkFrame). Its digest is computed
// here, reading what it sends: a few blobs, when a node has an earlier
// version of the image.
func (p packedTree) without(held map[string]bool) (stream, error) {
	var linked []agent.Segment
	for _, seg := range p.Segments {
		if seg.Blob != "" && held[seg.Key()] {
			linked = append(linked, seg)
		}
	}
	s := p.stream(held)
	s.prefix = agent.LinkFrame(linked)
	h := sha256.New()
	n, err := io.Copy(h, p.reader(s))
	if err != nil {
		return stream{}, fmt.Errorf("reading the packed rootfs: %w", err)
	}
	s.size, s.digest = n, "sha256:"+hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// reader reads s: nodes read the files at once, each at its own offsets.
func (p packedTree) reader(s stream) io.Reader {
	parts := []io.Reader{bytes.NewReader(s.prefix)}
	for _, pc := range s.pieces {
		parts = append(parts, io.NewSectionReader(pc.f, pc.at, pc.n))
	}
	return io.MultiReader(parts...)
}

// distribute sends the packed tree to dest on the node, unpacked there by
// the node's hoist, unless the node already holds this digest. A node
// whose tree holds some of the registry blobs or large files (an earlier
// version of the image) is sent the stream without them, and links them
// from that tree once their sha256 is checked; should that fail (a blob
// there is corrupted, a file changed), the whole stream follows.
// It returns whether it sent anything. progress, when not nil, is told the
// bytes sent so far and the total.
func distribute(ctx context.Context, node ssh.Executor, remoteHoist string, packed packedTree, digest, dest string, progress func(sent, total int64)) (bool, error) {
	out, err := ssh.Output(ctx, node, "cat "+ssh.Quote(path.Join(dest, agent.Marker))+" 2>/dev/null || true")
	if err != nil {
		return false, err
	}
	have := strings.TrimSpace(string(out))
	if have == digest {
		return false, nil
	}
	var partial error
	// A node without a tree (no marker) has no blobs to ask about.
	if blobs := packed.blobs(); len(blobs) > 0 && have != "" {
		held, err := heldBlobs(ctx, node, remoteHoist, dest, blobs)
		if err != nil {
			return false, err
		}
		if len(held) > 0 {
			s, err := packed.without(held)
			if err != nil {
				return false, err
			}
			if partial = send(ctx, node, remoteHoist, packed, s, digest, dest, progress); partial == nil || ctx.Err() != nil {
				return partial == nil, partial
			}
		}
	}
	full, err := packed.full()
	if err != nil {
		return false, err
	}
	if err := send(ctx, node, remoteHoist, packed, full, digest, dest, progress); err != nil {
		if partial != nil {
			return false, fmt.Errorf("%w (sent whole after the stream without the node's blobs failed: %v)", err, partial)
		}
		return false, err
	}
	return true, nil
}

// heldBlobs asks the node which of blobs (registry blobs and large files)
// the tree at dest holds, and returns them by Segment.Key.
func heldBlobs(ctx context.Context, node ssh.Executor, remoteHoist, dest string, blobs []agent.Segment) (map[string]bool, error) {
	asked := make(map[string]bool, len(blobs))
	answer := 0
	for _, b := range blobs {
		asked[b.Key()] = true
		answer += len(b.Key()) + 1
	}
	// An answer longer than every file asked about is cut short here,
	// before it can fill memory, and then refused.
	out := &limitedBuffer{max: answer}
	if err := node.Run(ctx, step.Agent(remoteHoist, agent.BlobsCmd{Rootfs: dest}), bytes.NewReader(agent.BlobRequest(blobs)), out); err != nil && !out.over {
		return nil, fmt.Errorf("asking which registry blobs %s holds: %w", dest, err)
	}
	if out.over {
		return nil, fmt.Errorf("asking which registry blobs %s holds: the answer is longer than the %d blobs asked about", dest, len(blobs))
	}
	held, err := agent.ParseHeldBlobs(out.Bytes(), asked)
	if err != nil {
		return nil, fmt.Errorf("asking which registry blobs %s holds: %w", dest, err)
	}
	return held, nil
}

// limitedBuffer keeps up to max bytes, and fails the writes beyond.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("answer too long")
	}
	return b.Buffer.Write(p)
}

func send(ctx context.Context, node ssh.Executor, remoteHoist string, packed packedTree, s stream, digest, dest string, progress func(sent, total int64)) error {
	in := packed.reader(s)
	if progress != nil {
		in = &countingReader{r: in, total: s.size, progress: progress}
	}
	if err := node.Run(ctx, step.Agent(remoteHoist, agent.UnpackCmd{Dest: dest, Digest: digest, StreamDigest: s.digest}), in, nil); err != nil {
		return fmt.Errorf("distributing to %s: %w", dest, err)
	}
	return nil
}

type countingReader struct {
	r        io.Reader
	sent     int64
	total    int64
	progress func(sent, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sent += int64(n)
	if n > 0 {
		c.progress(c.sent, c.total)
	}
	return n, err
}

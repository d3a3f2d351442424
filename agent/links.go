// Links: a stream that leaves out files the node already holds (registry
// blobs, and large files at the same path with the same sha256) names them
// at its start, and Unpack hard-links them from the tree in place into the
// new one, each checked by its digest first.

package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The list of links travels in a zstd skippable frame ahead of the
// stream's first frame: covered by the stream's digest like every other
// byte, ignored by any other zstd reader (`zstd -d | tar t` still lists
// the stream), and never made by Pack, so a full stream cannot be taken
// for one with links.
const (
	skippableMagic = 0x184D2A5E // one of the 16 skippable magics; hoist's
	linksHeader    = "hoist-links 1"
	// maxLinksFrame bounds the frame (and the memory it takes): a blob's
	// line is at most 64+1+19+1+4+1 bytes, so some 90 000 blobs.
	maxLinksFrame = 8 << 20
)

// LinkFrame is the frame that starts a stream leaving out the files of
// links (segments with Blob set): Unpack links each from the tree at its
// dest, with the size and permission bits given. A line is
// "<sha256 hex> <size> <octal mode>" for a registry blob, and the same
// then " <Go-quoted path>" for another file.
func LinkFrame(links []Segment) []byte {
	var b bytes.Buffer
	b.WriteString(linksHeader + "\n")
	for _, l := range links {
		fmt.Fprintf(&b, "%s %d %o", l.Blob, l.Size, l.Mode.Perm())
		if l.Path != "" {
			b.WriteString(" " + strconv.Quote(l.Path))
		}
		b.WriteByte('\n')
	}
	frame := make([]byte, 8, 8+b.Len())
	binary.LittleEndian.PutUint32(frame, skippableMagic)
	binary.LittleEndian.PutUint32(frame[4:], uint32(b.Len()))
	return append(frame, b.Bytes()...)
}

// readLinks reads the link frame at the start of r, if there is one; r is
// then at the stream's first zstd frame.
func readLinks(r *bufio.Reader) ([]Segment, error) {
	head, err := r.Peek(8)
	if err != nil || binary.LittleEndian.Uint32(head) != skippableMagic {
		// Not a stream with links: the zstd reader says what is wrong
		// with a short or foreign one.
		return nil, nil
	}
	n := binary.LittleEndian.Uint32(head[4:])
	if n > maxLinksFrame {
		return nil, fmt.Errorf("the list of blobs to link is %d bytes, more than %d", n, maxLinksFrame)
	}
	r.Discard(8)
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("reading the list of blobs to link: %w", err)
	}
	return parseLinks(payload)
}

// parseLinks reads a LinkFrame's payload, strictly: one line per file,
// each field in the one form LinkFrame writes, no file twice; a path is
// clean, relative, and neither a registry blob's nor the marker.
func parseLinks(payload []byte) ([]Segment, error) {
	text, ok := strings.CutPrefix(string(payload), linksHeader+"\n")
	if !ok {
		return nil, errors.New("the list of blobs to link does not start with " + linksHeader)
	}
	if text == "" {
		return nil, nil
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("the list of blobs to link does not end with a newline")
	}
	var links []Segment
	seen := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.SplitN(line, " ", 4)
		var file string
		if len(f) == 4 {
			p, err := strconv.Unquote(f[3])
			if err != nil || strconv.Quote(p) != f[3] || !linkablePath(p) {
				return nil, fmt.Errorf("file to link %q: want a clean relative path, Go-quoted, outside the registry's blobs", line)
			}
			file = p
		}
		if len(f) < 3 || !IsHexDigest(f[0]) {
			return nil, fmt.Errorf("blob to link %q: want a new <sha256 hex> <size> <octal mode>", line)
		}
		key := Segment{Blob: f[0], Path: file}.Key()
		if seen[key] {
			return nil, fmt.Errorf("file to link %q: listed twice", line)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 || strconv.FormatInt(size, 10) != f[1] {
			return nil, fmt.Errorf("blob to link %q: bad size", line)
		}
		mode, err := strconv.ParseUint(f[2], 8, 32)
		if err != nil || mode > 0o777 || strconv.FormatUint(mode, 8) != f[2] {
			return nil, fmt.Errorf("blob to link %q: bad mode", line)
		}
		seen[key] = true
		links = append(links, Segment{Blob: f[0], Size: size, Mode: fs.FileMode(mode), Path: file})
	}
	return links, nil
}

// linkablePath tells a path a file to link may have: clean, relative,
// inside the tree, not a registry blob's (those are named by their
// digest), not the marker.
func linkablePath(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && filepath.IsLocal(p) && !strings.HasPrefix(p, blobsDir+"/") && p != Marker && !strings.ContainsAny(p, "\x00\n")
}

// verifyLinks checks, in parallel, that every blob of links is in the tree
// at old, a regular file of its size whose sha256 is its name. Reading
// them costs the node's disk time, spent while the stream arrives; the
// blobs came to the node checked, but a disk, or a hand, can change a file
// since, and a registry serving a blob that is not what its name says
// breaks pulls far from here.
func verifyLinks(old *os.Root, links []Segment) error {
	work := make(chan Segment)
	errs := make(chan error, len(links))
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 8, len(links)) {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for l := range work {
				errs <- verifyBlob(old, l, buf)
			}
		})
	}
	for _, l := range links {
		work <- l
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

func verifyBlob(old *os.Root, l Segment, buf []byte) error {
	f, err := openBlob(old, l)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return fmt.Errorf("%s: %w", l.what(), err)
	}
	if hex.EncodeToString(h.Sum(nil)) != l.Blob {
		if l.Path != "" {
			return fmt.Errorf("file %s in the tree in place changed: its sha256 is not %s", l.Path, l.Blob)
		}
		return fmt.Errorf("blob %s in the tree in place is not what its name says: corrupted", l.Blob)
	}
	return nil
}

// openBlob opens the file of l in the tree of old, through os.Root: a
// symlink in that tree cannot take it elsewhere.
func openBlob(old *os.Root, l Segment) (*os.File, error) {
	f, err := old.OpenFile(l.Rel(), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s to link: %w", l.what(), err)
	}
	info, err := f.Stat()
	if err == nil && (!info.Mode().IsRegular() || info.Size() != l.Size) {
		err = fmt.Errorf("not a regular file of %d bytes", l.Size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s to link: %w", l.what(), err)
	}
	return f, nil
}

// linkBlobs puts each blob of links, verified, into the new tree: a hard
// link to the very file opened (linkat through /proc/self/fd, no path of
// the old tree walked again), or a copy of it where the link is refused.
// The stream must not have held it: an existing name is an error, never
// overwritten, since a write to a linked file would change the tree in
// place too.
func linkBlobs(old, tmp *os.Root, links []Segment) error {
	for _, l := range links {
		if err := linkBlob(old, tmp, l); err != nil {
			return err
		}
	}
	return nil
}

func linkBlob(old, tmp *os.Root, l Segment) error {
	f, err := openBlob(old, l)
	if err != nil {
		return err
	}
	defer f.Close()
	rel := l.Rel()
	dir := path.Dir(rel)
	if err := tmp.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", l.what(), err)
	}
	d, err := tmp.Open(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", l.what(), err)
	}
	defer d.Close()
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), int(d.Fd()), path.Base(rel), unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: both sent and to be linked", l.what())
	}
	if err != nil {
		// No /proc, or another filesystem: a copy of the same bytes.
		out, err := tmp.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("%s: %w", l.what(), err)
		}
		_, err = io.Copy(out, f)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", l.what(), err)
		}
	}
	// The mode the stream would have given it (the old tree's file is
	// the same inode, and leaves with the old tree).
	return tmp.Chmod(rel, l.Mode.Perm())
}

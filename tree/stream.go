package tree

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	tarstorage "github.com/vbatts/tar-split/tar/storage"
)

// Stream writes a tree as a tar, entry by entry and in any order, keeping
// only what a layer needs: the tar's digest and size, and its tar-split
// record (the headers and padding byte for byte, and each file's size and
// crc64), from which storage gives the same tar back. The tar itself is
// never stored.
//
// Entries can be added while the tree is still being made (a registry
// layer's blobs as they arrive), then Finish adds whatever the finished tree
// holds that was not added yet.
type Stream struct {
	prefix  string
	out     *capture
	tw      *tar.Writer
	packer  tarstorage.Packer
	buf     []byte
	start   time.Time       // the time of the directories the stream makes
	added   map[string]bool // entry names (dirs end with /)
	addedFs []string        // files added before Finish, to check against the tree
}

// capture digests every byte of the tar and keeps the bytes that are not
// file payload, which tar-split records as segments.
type capture struct {
	sum     hash.Hash
	size    int64
	segment bytes.Buffer
	payload bool
}

func (c *capture) Write(p []byte) (int, error) {
	c.sum.Write(p)
	c.size += int64(len(p))
	if !c.payload {
		c.segment.Write(p)
	}
	return len(p), nil
}

var crcTable = crc64.MakeTable(crc64.ISO)

// NewStream starts a tar whose names are under prefix (its first entry),
// recording tar-split entries to split.
func NewStream(prefix string, split io.Writer) *Stream {
	out := &capture{sum: sha256.New()}
	return &Stream{prefix: prefix, out: out, tw: tar.NewWriter(out), packer: tarstorage.NewJSONPacker(split),
		buf: make([]byte, 1<<20), start: time.Now().Truncate(time.Second), added: map[string]bool{}}
}

func (s *Stream) flushSegment() error {
	if s.out.segment.Len() == 0 {
		return nil
	}
	_, err := s.packer.AddEntry(tarstorage.Entry{Type: tarstorage.SegmentType, Payload: bytes.Clone(s.out.segment.Bytes())})
	s.out.segment.Reset()
	return err
}

// entry writes one header, and the file's data for a regular file; crc,
// when known, is the data's crc64 (ISO), computed here otherwise.
func (s *Stream) entry(file, name string, info fs.FileInfo, crc []byte) error {
	h, err := Header(file, name, info)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || h.Size == 0 {
		return s.noData(h)
	}
	if err := s.tw.WriteHeader(h); err != nil {
		return err
	}
	if err := s.flushSegment(); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	var w io.Writer = s.tw
	var sum64 hash.Hash64
	if crc == nil {
		sum64 = crc64.New(crcTable)
		w = io.MultiWriter(s.tw, sum64)
	}
	s.out.payload = true
	n, err := io.CopyBuffer(w, readerOnly{f}, s.buf)
	s.out.payload = false
	f.Close()
	if err != nil {
		return err
	}
	if n != h.Size {
		return fmt.Errorf("%s changed while read (%d bytes, not %d)", file, n, h.Size)
	}
	if sum64 != nil {
		crc = sum64.Sum(nil)
	}
	return s.record(name, h.Size, crc)
}

// noData writes an entry without data.
func (s *Stream) noData(h *tar.Header) error {
	if err := s.tw.WriteHeader(h); err != nil {
		return err
	}
	if err := s.flushSegment(); err != nil {
		return err
	}
	return s.record(h.Name, 0, nil)
}

// record adds the tar-split file entry of name.
func (s *Stream) record(name string, size int64, crc []byte) error {
	e := tarstorage.Entry{Type: tarstorage.FileType, Size: size, Payload: crc}
	e.SetName(name)
	_, err := s.packer.AddEntry(e)
	s.added[name] = true
	return err
}

// Add writes file as rel in the tree, after the directories above rel not
// written yet. Those are written as the stream makes them (mode 0755, the
// stream's start time): file may live elsewhere than in the tree (a blob
// in a cache, named by its place in the registry directory). crc is the
// file's crc64 (ISO) when the caller has it, nil otherwise. Adding a name
// twice is an error.
func (s *Stream) Add(file, rel string, crc []byte) error {
	rel = filepath.ToSlash(rel)
	if err := s.dirs(path.Dir(rel)); err != nil {
		return err
	}
	name := path.Join(s.prefix, rel)
	if s.added[name] {
		return fmt.Errorf("%s added twice", name)
	}
	info, err := os.Lstat(file)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a directory", file)
	}
	if err := s.entry(file, name, info, crc); err != nil {
		return err
	}
	s.addedFs = append(s.addedFs, rel)
	return nil
}

// dirs writes the prefix and the directories down to dir (relative), those
// not written yet.
func (s *Stream) dirs(dir string) error {
	parts := []string{"."}
	if dir != "." {
		cur := ""
		for _, p := range strings.Split(dir, "/") {
			cur = path.Join(cur, p)
			parts = append(parts, cur)
		}
	}
	for _, d := range parts {
		name := path.Join(s.prefix, d) + "/"
		if s.added[name] {
			continue
		}
		h := &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: s.start, Format: tar.FormatPAX}
		if err := s.noData(h); err != nil {
			return err
		}
	}
	return nil
}

// Finish adds what the tree at dir holds that was not added, checks that
// every file added before is in it, and ends the tar. It returns the tar's
// digest and size.
func (s *Stream) Finish(dir string) (digest.Digest, int64, error) {
	for _, rel := range s.addedFs {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			return "", 0, fmt.Errorf("%w: %s was streamed but is not in the tree", ErrNotInTree, rel)
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := path.Join(s.prefix, rel)
		if d.IsDir() {
			name += "/"
		}
		if s.added[name] {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return s.entry(p, name, info, nil)
	})
	if err != nil {
		return "", 0, err
	}
	if err := s.tw.Close(); err != nil {
		return "", 0, err
	}
	if err := s.flushSegment(); err != nil {
		return "", 0, err
	}
	return digest.NewDigest(digest.SHA256, s.out.sum), s.out.size, nil
}

// ErrNotInTree is returned by Finish when a file streamed early is not in
// the finished tree: the tar would not match it.
var ErrNotInTree = errors.New("streamed file missing")

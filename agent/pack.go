// Packing a rootfs as apply sends it, in segments that can be left out of
// the stream: every registry blob is a zstd frame of its own, so a node
// that holds a blob can be sent the stream without it, with no compression
// done again.

package agent

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/tree"
)

// blobsDir is where a rootfs's registry keeps its blobs (the Distribution
// layout): blobsDir/<2 hex>/<64 hex>/data.
var blobsDir = path.Join(layout.ImageRegistry, "docker/registry/v2/blobs/sha256")

// BlobPath is the data file of the registry blob of hex sha256 h in a
// rootfs, slash-separated and relative to it.
func BlobPath(h string) string { return path.Join(blobsDir, h[:2], h, "data") }

// blobOf returns the hex sha256 of the blob whose data file is rel, a path
// in a rootfs, or "".
func blobOf(rel string) string {
	rest, ok := strings.CutPrefix(rel, blobsDir+"/")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "data" || !IsHexDigest(parts[1]) || parts[0] != parts[1][:2] {
		return ""
	}
	return parts[1]
}

// IsHexDigest tells a sha256 in lower-case hex: 64 of [0-9a-f].
func IsHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Segment is a run of a packed stream that begins and ends on a zstd frame
// and a tar entry: a stream with some segments left out is still a stream
// Unpack reads.
type Segment struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// CRC is the CRC-32C of the segment's bytes: a file of packed
	// segments kept on disk is checked by it in a tenth of a sha256's
	// time.
	CRC uint32 `json:"crc"`
	// Blob is set when the segment is exactly one file a node may already
	// hold: its content's hex sha256, size and permission bits. The file
	// is a registry blob's data file (its name says its sha256), or, with
	// Path, a large file elsewhere in the tree.
	Blob string      `json:"blob,omitempty"`
	Size int64       `json:"size,omitempty"`
	Mode fs.FileMode `json:"mode,omitempty"`
	Path string      `json:"path,omitempty"`
}

// MinFileSegment is the size from which a file outside the registry's
// blobs is a segment of its own (Segment.Path): the binaries, archives and
// charts of a rootfs, which a new version of an image mostly keeps.
const MinFileSegment = 1 << 20

// Rel is the file of a segment with Blob set: its slash path in the tree.
func (s Segment) Rel() string {
	if s.Path != "" {
		return s.Path
	}
	return BlobPath(s.Blob)
}

// Key names a segment with Blob set among a tree's: a registry blob by its
// sha256, another file by its path, quoted (two files may have the same
// content; a blob's name is its content).
func (s Segment) Key() string {
	if s.Path != "" {
		return strconv.Quote(s.Path)
	}
	return s.Blob
}

// what names the file of a segment in messages.
func (s Segment) what() string {
	if s.Path != "" {
		return fmt.Sprintf("file %s (sha256 %s)", s.Path, s.Blob)
	}
	return "blob " + s.Blob
}

// Pack writes the tree at dir as a zstd-compressed tar to w: what Unpack
// reads. Hoist's Marker is left out, and the top-level entries named in
// exclude.
func Pack(w io.Writer, dir string, exclude ...string) error {
	_, err := PackSegments(w, dir, exclude...)
	return err
}

// PackSegments is Pack, and returns the stream's segments in order: each
// registry blob's data file is a segment (and a zstd frame) of its own; the
// entries between blobs make the other segments, the last of which ends
// the tar.
func PackSegments(w io.Writer, dir string, exclude ...string) ([]Segment, error) {
	segs, _, err := PackReusing(w, dir, nil, exclude...)
	return segs, err
}

// Frame is a blob's frame in an earlier stream: its Segment, whose bytes
// are At in File.
type Frame struct {
	File    *os.File
	At      int64
	Segment Segment
}

// Frames gives, for a blob of a tree being packed, the frame of an
// earlier stream that holds it (the same name, size and mode: the same tar
// entry but for its time, which Unpack does not keep), or nil. Damaged is
// told of a frame whose bytes do not have the CRC its segment records, and
// PackReusing then fails with ErrDamagedFrame.
type Frames interface {
	Frame(blob Segment) *Frame
	Damaged(*Frame)
}

// ErrDamagedFrame is a frame of an earlier packed stream that was damaged.
var ErrDamagedFrame = errors.New("a frame of an earlier packed stream is damaged")

// PackReusing is PackSegments, sharing the frames of blobs that frames has
// instead of compressing them again: an image's next version packs in the
// time of what changed. A shared frame is not written to w: the stream is
// w's bytes with each shared frame inserted at its segment. It returns,
// beside the segments, the frame each shares (nil: its bytes are in w).
// Each shared frame is read once for its CRC (at memory speed).
func PackReusing(w io.Writer, dir string, frames Frames, exclude ...string) ([]Segment, []*Frame, error) {
	cw := &countWriter{w: w}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, nil, err
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	var segs []Segment
	var shared []*Frame
	// Offsets are the stream's: what went to w and the frames shared.
	var start, sharedBytes int64
	pos := func() int64 { return cw.n + sharedBytes }
	pending := false // bytes written to the frame open since start
	// cut ends the frame open, and with it a segment.
	cut := func(s Segment) error {
		if err := tw.Flush(); err != nil { // the entry's padding
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		s.Offset, s.Length, s.CRC = start, pos()-start, cw.crc
		segs = append(segs, s)
		shared = append(shared, nil)
		start, pending, cw.crc = pos(), false, 0
		zw.Reset(cw)
		return nil
	}
	buf := make([]byte, 1<<20)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel == Marker || slices.Contains(exclude, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tree.Header(p, rel, info)
		if err == nil && info.IsDir() {
			h.Name += "/"
		}
		if err != nil {
			return err
		}
		blob := ""
		if info.Mode().IsRegular() {
			blob = blobOf(rel)
		}
		if blob == "" && info.Mode().IsRegular() && info.Size() >= MinFileSegment {
			return packFile(cw, tw, &pending, cut, p, rel, h, info, buf)
		}
		if blob != "" && pending {
			if err := cut(Segment{}); err != nil {
				return err
			}
		}
		if blob != "" && frames != nil {
			seg := Segment{Blob: blob, Size: info.Size(), Mode: info.Mode().Perm()}
			if fr := frames.Frame(seg); fr != nil {
				// The tar writer, flushed, knows nothing of this entry.
				if err := checkFrame(fr, buf); err != nil {
					if errors.Is(err, ErrDamagedFrame) {
						frames.Damaged(fr)
					}
					return err
				}
				seg.Offset, seg.Length, seg.CRC = start, fr.Segment.Length, fr.Segment.CRC
				segs = append(segs, seg)
				shared = append(shared, fr)
				sharedBytes += fr.Segment.Length
				start = pos()
				return nil
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		pending = true
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(tw, struct{ io.Reader }{f}, buf)
			f.Close()
			if err != nil {
				return err
			}
		}
		if blob != "" {
			return cut(Segment{Blob: blob, Size: info.Size(), Mode: info.Mode().Perm()})
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	segs = append(segs, Segment{Offset: start, Length: pos() - start, CRC: cw.crc})
	shared = append(shared, nil)
	return segs, shared, nil
}

// packFile writes a large file as a segment of its own, hashing it on
// the way: a node that holds it at the same path, with that sha256, links
// it instead of being sent it.
func packFile(cw *countWriter, tw *tar.Writer, pending *bool, cut func(Segment) error, p, rel string, h *tar.Header, info fs.FileInfo, buf []byte) error {
	if *pending {
		if err := cut(Segment{}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	*pending = true
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	n, err := io.CopyBuffer(tw, io.TeeReader(f, sum), buf)
	if err != nil {
		return err
	}
	if n != info.Size() {
		return fmt.Errorf("%s changed while packed", p)
	}
	return cut(Segment{Blob: hex.EncodeToString(sum.Sum(nil)), Size: info.Size(), Mode: info.Mode().Perm(), Path: rel})
}

// checkFrame reads a frame for its CRC.
func checkFrame(fr *Frame, buf []byte) error {
	h := crc32.New(CRCTable)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(fr.File, fr.At, fr.Segment.Length), buf); err != nil {
		return err
	}
	if h.Sum32() != fr.Segment.CRC {
		return ErrDamagedFrame
	}
	return nil
}

// CRCTable is the table of Segment.CRC.
var CRCTable = crc32.MakeTable(crc32.Castagnoli)

// countWriter counts what it writes, and its CRC since crc was zeroed.
type countWriter struct {
	w   io.Writer
	n   int64
	crc uint32
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.crc = crc32.Update(c.crc, CRCTable, p[:n])
	return n, err
}

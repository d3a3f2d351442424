// Packing a rootfs as apply sends it, in segments that can be left out of
// the stream: every registry blob is a zstd frame of its own, so a node
// that holds a blob can be sent the stream without it, with no compression
// done again.

package agent

import (
	"archive/tar"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
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
	// Blob is set when the segment is exactly one registry blob's data
	// file: its hex sha256, size and permission bits.
	Blob string      `json:"blob,omitempty"`
	Size int64       `json:"size,omitempty"`
	Mode fs.FileMode `json:"mode,omitempty"`
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
	return PackReusing(w, dir, nil, exclude...)
}

// Frames gives, for a blob of a tree being packed, the segment of an
// earlier stream that holds it (the same name, size and mode: the same tar
// entry but for its time, which Unpack does not keep), checked, or nil.
type Frames func(blob Segment) io.Reader

// PackReusing is PackSegments, copying the frames of blobs that frames
// has instead of compressing them again: an image's next version packs in
// the time of what changed and a copy.
func PackReusing(w io.Writer, dir string, frames Frames, exclude ...string) ([]Segment, error) {
	cw := &countWriter{w: w}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, err
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	var segs []Segment
	var start int64
	pending := false // bytes written to the frame open since start
	// cut ends the frame open, and with it a segment.
	cut := func(s Segment) error {
		if err := tw.Flush(); err != nil { // the entry's padding
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		s.Offset, s.Length, s.CRC = start, cw.n-start, cw.crc
		segs = append(segs, s)
		start, pending, cw.crc = cw.n, false, 0
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
		if blob != "" && pending {
			if err := cut(Segment{}); err != nil {
				return err
			}
		}
		if blob != "" && frames != nil {
			seg := Segment{Blob: blob, Size: info.Size(), Mode: info.Mode().Perm()}
			if r := frames(seg); r != nil {
				// The tar writer, flushed, knows nothing of this entry.
				if _, err := io.Copy(cw, r); err != nil {
					return err
				}
				seg.Offset, seg.Length, seg.CRC = start, cw.n-start, cw.crc
				segs = append(segs, seg)
				start, cw.crc = cw.n, 0
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
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	segs = append(segs, Segment{Offset: start, Length: cw.n - start, CRC: cw.crc})
	return segs, nil
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

package archive_test

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/clusterimage/archive"
)

// dirBase is a base of directories, one per layer, for the codec's tests;
// the store's own (layer directories of a real store) is tested in
// clusterimage's TestSaveDeltaLayer.
type dirBase []*os.Root

func newDirBase(t testing.TB, layers ...map[string][]byte) dirBase {
	var out dirBase
	for _, files := range layers {
		dir := t.TempDir()
		for name, data := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		out = append(out, r)
	}
	return out
}

func (b dirBase) Layers() int { return len(b) }

func (b dirBase) Open(i int, name string) (io.ReadCloser, int64, error) {
	info, err := b[i].Lstat(name)
	if err != nil {
		return nil, 0, err
	}
	if !info.Mode().IsRegular() {
		return nil, 0, fs.ErrNotExist
	}
	f, err := b[i].Open(name)
	return f, info.Size(), err
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

type tarFile struct {
	hdr  tar.Header
	data []byte
}

// layerTar writes a layer as a tar writer would, with a trailing record's
// padding after the end blocks, as tar(1) writes.
func layerTar(t testing.TB, files ...tarFile) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 10240-buf.Len()%10240))
	return buf.Bytes()
}

// TestDeltaRoundTrip: a layer whose files the base partly has comes back
// byte for byte, and the delta holds only what the base lacks.
func TestDeltaRoundTrip(t *testing.T) {
	same := random(t, 300<<10) // more than one compare buffer
	lower := random(t, 5000)
	changed := random(t, 200<<10)
	changedLate := bytes.Clone(changed)
	changedLate[len(changedLate)-1] ^= 1 // differs in its last buffer only
	newFile := random(t, 4000)
	long := strings.Repeat("d/", 60) + "blob" // a PAX name
	base := newDirBase(t,
		map[string][]byte{"lower/data": lower, "reg/late": changed},
		map[string][]byte{"reg/same": same, "reg/other": random(t, 2000), long: same, "reg/late": changed},
	)
	layer := layerTar(t,
		tarFile{hdr: tar.Header{Name: "reg/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarFile{hdr: tar.Header{Name: "reg/same"}, data: same},
		tarFile{hdr: tar.Header{Name: "./reg/same2"}, data: same},     // not in the base by that name
		tarFile{hdr: tar.Header{Name: "reg/other"}, data: newFile},    // another size
		tarFile{hdr: tar.Header{Name: "reg/late"}, data: changedLate}, // same size, other content
		tarFile{hdr: tar.Header{Name: "/lower/data"}, data: lower},    // in the lower layer only
		tarFile{hdr: tar.Header{Name: long, PAXRecords: map[string]string{"user.x": "y"}}, data: same},
		tarFile{hdr: tar.Header{Name: "small"}, data: []byte("tiny")},
		tarFile{hdr: tar.Header{Name: "reg/link", Typeflag: tar.TypeSymlink, Linkname: "same"}},
		tarFile{hdr: tar.Header{Name: "reg/hard", Typeflag: tar.TypeLink, Linkname: "reg/same"}},
	)
	var delta bytes.Buffer
	refs, err := archive.WriteDelta(&delta, bytes.NewReader(layer), base)
	if err != nil {
		t.Fatal(err)
	}
	if refs != 3 {
		t.Errorf("%d references, want 3 (reg/same, lower/data, the long name)", refs)
	}
	// same2, other, late and the headers: the delta is about their size.
	lacking := len(same) + len(newFile) + len(changedLate)
	if delta.Len() < lacking || delta.Len() > lacking+16<<10 {
		t.Errorf("delta of %d bytes; the base lacks %d", delta.Len(), lacking)
	}
	var out bytes.Buffer
	if err := archive.ReadDelta(&out, bytes.NewReader(delta.Bytes()), base); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), layer) {
		t.Fatalf("rebuilt %d bytes, differing from the layer's %d", out.Len(), len(layer))
	}

	// The base changed since: a reference's check fails, naming the file.
	if err := base[1].WriteFile("reg/same", random(t, len(same)), 0o644); err != nil {
		t.Fatal(err)
	}
	err = archive.ReadDelta(io.Discard, bytes.NewReader(delta.Bytes()), base)
	var de *archive.DeltaError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "the base's file reg/same of layer 1 differs from the one the delta was made against") {
		t.Errorf("changed base: %v", err)
	}
	if err := base[1].Remove("reg/same"); err != nil {
		t.Fatal(err)
	}
	if err := archive.ReadDelta(io.Discard, bytes.NewReader(delta.Bytes()), base); err == nil || !strings.Contains(err.Error(), "the base's layer 1 has no file reg/same") {
		t.Errorf("file gone from the base: %v", err)
	}
}

// TestDeltaNotATar: a layer that is not a tar stream is an error, never a
// delta.
func TestDeltaNotATar(t *testing.T) {
	_, err := archive.WriteDelta(io.Discard, strings.NewReader(strings.Repeat("x", 1024)), newDirBase(t))
	if err == nil || !strings.Contains(err.Error(), "reading the layer") {
		t.Errorf("err = %v", err)
	}
}

func uvarint(n uint64) string { return string(binary.AppendUvarint(nil, n)) }

func reference(layer int, name string, size int, sum []byte) string {
	return "R" + uvarint(uint64(layer)) + uvarint(uint64(len(name))) + name + uvarint(uint64(size)) + string(sum)
}

// deltaCases are deltas ReadDelta must refuse, with what the error says,
// against a base of one layer holding "f" (2000 bytes); good ones ("").
func deltaCases(t testing.TB) (archive.DeltaBase, []struct{ name, delta, want string }) {
	data := bytes.Repeat([]byte("0123456789"), 200)
	sum := sha256.Sum256(data)
	base := newDirBase(t, map[string][]byte{"f": data, "dir/g": data})
	const magic = "hoist-delta-v1\n"
	return base, []struct{ name, delta, want string }{
		{"empty layer", magic + "E", ""},
		{"literal and reference", magic + "L" + uvarint(3) + "abc" + reference(0, "f", 2000, sum[:]) + "E", ""},
		{"no header", "E", "byte 0: not a hoist delta layer"},
		{"other version", "hoist-delta-v2\nE", "not a hoist delta layer"},
		{"no end", magic + "L" + uvarint(1) + "a", "byte 18: ends before its end op"},
		{"after the end", magic + "Ex", "byte 16: data after the end op"},
		{"unknown op", magic + "X", `byte 15: unknown op 'X'`},
		{"empty literal", magic + "L" + uvarint(0) + "E", "a literal of 0 bytes"},
		{"huge literal", magic + "L" + uvarint(1<<20+1), "a literal of 1048577 bytes"},
		{"short literal", magic + "L" + uvarint(10) + "abc", "a literal cut short"},
		{"layer out of range", magic + reference(1, "f", 2000, sum[:]) + "E", "a reference to layer 1: the base has 1"},
		{"parent path", magic + reference(0, "../f", 2000, sum[:]) + "E", `a reference to "../f": not a clean relative path`},
		{"absolute path", magic + reference(0, "/f", 2000, sum[:]) + "E", `a reference to "/f": not a clean relative path`},
		{"unclean path", magic + reference(0, "dir//g", 2000, sum[:]) + "E", "not a clean relative path"},
		{"empty name", magic + "R" + uvarint(0) + uvarint(0) + "E", "a reference's name is empty or too long"},
		{"missing file", magic + reference(0, "nope", 2000, sum[:]) + "E", "the base's layer 0 has no file nope"},
		{"a directory", magic + reference(0, "dir", 2000, sum[:]) + "E", "the base's layer 0 has no file dir"},
		{"other size", magic + reference(0, "f", 1999, sum[:]) + "E", "is 2000 bytes, the delta was made against 1999"},
		{"other digest", magic + reference(0, "f", 2000, make([]byte, 32)) + "E", "differs from the one the delta was made against"},
		{"cut reference", magic + "R" + uvarint(0) + uvarint(1) + "f" + uvarint(2000) + "abc", "a reference cut short"},
	}
}

func TestReadDeltaErrors(t *testing.T) {
	base, cases := deltaCases(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := archive.ReadDelta(io.Discard, strings.NewReader(tc.delta), base)
			if tc.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v\nwant one line with %s", err, tc.want)
			}
		})
	}
}

// FuzzReadDelta: whatever the delta, ReadDelta writes only literal bytes
// and files of the base whose digest it was given, or fails with a
// DeltaError; it never reads outside the base's directories.
func FuzzReadDelta(f *testing.F) {
	base, cases := deltaCases(f)
	for _, tc := range cases {
		f.Add([]byte(tc.delta))
	}
	f.Fuzz(func(t *testing.T, delta []byte) {
		var out countWriter
		err := archive.ReadDelta(&out, bytes.NewReader(delta), base)
		var de *archive.DeltaError
		if err != nil && !errors.As(err, &de) {
			t.Errorf("not a DeltaError: %v", err)
		}
		if out.n > int64(len(delta))*2000 {
			t.Errorf("%d bytes out of a delta of %d", out.n, len(delta))
		}
	})
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

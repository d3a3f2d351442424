package clusterimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/hoistdev/hoist/clusterimage/archive"
)

// TestTarStreamAcrossParts: a blob's header, written after its data, lands
// where tar readers look for it, also when it straddles two parts; the
// parts put together are a tar whose blobs match their names.
func TestTarStreamAcrossParts(t *testing.T) {
	for _, compress := range []string{CompressNone, CompressZstd, CompressGzip} {
		t.Run(compress, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.tar")
			w := newPartWriter(path, 700) // not a multiple of a tar block
			ts := &tarStream{w: w}
			data := []byte(strings.Repeat("some layer data ", 1000))
			if err := ts.file("oci-layout", []byte("{}")); err != nil {
				t.Fatal(err)
			}
			d, size, err := ts.stream(bytes.NewReader(data), compress)
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.close(); err != nil {
				t.Fatal(err)
			}
			if err := w.finish(); err != nil {
				t.Fatal(err)
			}
			parts, err := archive.OpenSplit(path + ".json")
			if err != nil {
				t.Fatal(err)
			}
			defer parts.Close()
			tr := tar.NewReader(parts.Reader())
			var names []string
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, h.Name)
				body, _ := io.ReadAll(tr)
				if h.Name != archive.BlobName(d) {
					continue
				}
				if int64(len(body)) != size || digest.FromBytes(body) != d {
					t.Errorf("blob %s: %d bytes of digest %s", d, len(body), digest.FromBytes(body))
				}
				if compress == CompressZstd {
					dec, _ := zstd.NewReader(bytes.NewReader(body))
					plain, err := io.ReadAll(dec)
					dec.Close()
					if err != nil || !bytes.Equal(plain, data) {
						t.Errorf("the zstd blob does not give the data back: %v", err)
					}
				}
			}
			if len(names) != 2 || names[1] != archive.BlobName(d) {
				t.Errorf("entries %v", names)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestHeaderOneBlock: a header keeps one block whatever the size, so that
// it fits the place kept for it: USTAR up to 8 GiB, GNU beyond.
func TestHeaderOneBlock(t *testing.T) {
	name := archive.BlobName(digest.FromString("x"))
	for _, size := range []int64{0, 1, 1<<33 - 1, 1 << 33, 1 << 40} {
		h, err := header(name, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		got, err := tar.NewReader(io.MultiReader(bytes.NewReader(h), zeroReader{})).Next()
		if err != nil || got.Size != size || got.Name != name {
			t.Errorf("size %d: read back %+v %v", size, got, err)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestPartWriterAbort: a failed save leaves no file.
func TestPartWriterAbort(t *testing.T) {
	dir := t.TempDir()
	w := newPartWriter(filepath.Join(dir, "x.tar"), 10)
	w.Write(make([]byte, 35))
	w.abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

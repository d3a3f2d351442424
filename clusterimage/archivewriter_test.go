package clusterimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
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

// TestZstdFrames: a layer compressed in frames is one zstd stream to the
// readers of the field: klauspost's (containers/image's) and zstd(1)'s
// (libzstd, as containerd and podman link it); an empty layer too. A
// failing writer ends it with that error, never a hang.
func TestZstdFrames(t *testing.T) {
	text := bytes.Repeat([]byte("a line of a log, and another one\n"), 100_000) // 3.3 MB
	random := make([]byte, 3*frameSize+5)
	for i := range random {
		random[i] = byte(i*7919 ^ i>>3)
	}
	zstdCLI, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("zstd is not installed (make deps installs it)")
	}
	for name, data := range map[string][]byte{"text": text, "mixed": append(bytes.Clone(text), random...), "empty": nil} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := zstdFrames(&out, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			dec, err := zstd.NewReader(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			got, err := io.ReadAll(dec)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("klauspost read %d bytes of %d: %v", len(got), len(data), err)
			}
			cmd := exec.Command(zstdCLI, "-dc")
			cmd.Stdin = bytes.NewReader(out.Bytes())
			got, err = cmd.Output()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("zstd -d read %d bytes of %d: %v", len(got), len(data), err)
			}
			if frames := (len(data) + frameSize - 1) / frameSize; frames > 1 && bytes.Count(out.Bytes(), []byte{0x28, 0xb5, 0x2f, 0xfd}) < frames {
				t.Errorf("fewer than %d frames", frames)
			}
		})
	}
	if err := zstdFrames(failingWriter{}, bytes.NewReader(random)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

package tree

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	tarstorage "github.com/vbatts/tar-split/tar/storage"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamGivesTheTarBack: a tree streamed partly early (files in any
// order) and finished later is a tar that tar-split reassembles from the
// files, byte for byte the digest and size Finish reported, with every
// entry once.
func TestStreamGivesTheTarBack(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "registry")
	files := map[string]string{
		"docker/registry/v2/blobs/sha256/aa/aaaa/data":   "blob a",
		"docker/registry/v2/blobs/sha256/bb/bbbb/data":   string(bytes.Repeat([]byte("b"), 3<<20)),
		"docker/registry/v2/repositories/x/_layers/link": "sha256:aaaa",
		"docker/registry/v2/empty":                       "",
	}
	writeTree(t, dir, files)
	os.Symlink("v2/empty", filepath.Join(dir, "docker/registry/latest"))

	// The blobs are read from a cache outside the tree, as a build does.
	cache := t.TempDir()
	writeTree(t, cache, map[string]string{"bbbb": files["docker/registry/v2/blobs/sha256/bb/bbbb/data"], "aaaa": "blob a"})

	var split bytes.Buffer
	s := NewStream("registry", &split)
	// The big blob first, then the small one: not the walk's order.
	for _, b := range []string{"bb/bbbb", "aa/aaaa"} {
		if err := s.Add(filepath.Join(cache, filepath.Base(b)), "docker/registry/v2/blobs/sha256/"+b+"/data", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(filepath.Join(cache, "aaaa"), "docker/registry/v2/blobs/sha256/aa/aaaa/data", nil); err == nil {
		t.Error("a file added twice was accepted")
	}
	d, size, err := s.Finish(dir)
	if err != nil {
		t.Fatal(err)
	}

	rebuilt := asm.NewOutputTarStream(tarstorage.NewPathFileGetter(top), tarstorage.NewJSONUnpacker(&split))
	data, err := io.ReadAll(rebuilt)
	if err != nil {
		t.Fatalf("reassembling: %v", err)
	}
	if got := digest.FromBytes(data); got != d || int64(len(data)) != size {
		t.Errorf("reassembled tar: %s, %d bytes; Finish said %s, %d", got, len(data), d, size)
	}
	seen := map[string]int{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name]++
		if h.Typeflag == tar.TypeDir && h.Mode&0o777 != 0o755 {
			t.Errorf("%s: mode %o", h.Name, h.Mode)
		}
		if h.Typeflag == tar.TypeReg {
			content, _ := io.ReadAll(tr)
			rel := h.Name[len("registry/"):]
			if want, ok := files[rel]; !ok || string(content) != want {
				t.Errorf("%s: %d bytes, want %d", h.Name, len(content), len(want))
			}
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
	}
	for _, name := range []string{"registry/", "registry/docker/registry/v2/blobs/sha256/aa/", "registry/docker/registry/latest", "registry/docker/registry/v2/repositories/x/_layers/link"} {
		if seen[name] != 1 {
			t.Errorf("%s appears %d times", name, seen[name])
		}
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s appears %d times", name, n)
		}
	}
	if len(seen) != 18 { // 13 directories, 4 files, 1 symlink
		t.Errorf("%d entries: %v", len(seen), seen)
	}
	sum := sha256.Sum256(data)
	if digest.NewDigestFromBytes(digest.SHA256, sum[:]) != d {
		t.Error("digest is not the tar's sha256")
	}
}

func TestStreamRefusesATreeWithoutAStreamedFile(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]string{"blobs/x/data": "x"})
	writeTree(t, dir, map[string]string{"other": "y"})
	s := NewStream("registry", io.Discard)
	if err := s.Add(filepath.Join(src, "blobs/x/data"), "blobs/x/data", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Finish(dir); !errors.Is(err, ErrNotInTree) {
		t.Errorf("err = %v", err)
	}
}

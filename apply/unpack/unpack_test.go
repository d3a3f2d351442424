package unpack

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func makeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			os.Symlink(target, p)
			continue
		}
		os.WriteFile(p, []byte(content), 0o644)
	}
	return dir
}

func TestPackUnpackRoundTripAndReplace(t *testing.T) {
	src := makeTree(t, map[string]string{"etc/a.conf": "a", "bin/tool": "#!/bin/sh\n", "lib": "->usr/lib", "usr/lib/x.so": "x"})
	os.Chmod(filepath.Join(src, "bin/tool"), 0o755)
	var stream bytes.Buffer
	if err := Pack(&stream, src); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(bytes.NewReader(stream.Bytes()), dest, "sha256:one", sum(stream.Bytes())); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dest, "etc/a.conf")); string(data) != "a" {
		t.Errorf("a.conf = %q", data)
	}
	if info, _ := os.Stat(filepath.Join(dest, "bin/tool")); info.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", info.Mode())
	}
	if link, _ := os.Readlink(filepath.Join(dest, "lib")); link != "usr/lib" {
		t.Errorf("symlink %q", link)
	}
	if Digest(dest) != "sha256:one" {
		t.Errorf("marker %q", Digest(dest))
	}
	// A new tree replaces the old one whole: old files are gone.
	src2 := makeTree(t, map[string]string{"etc/b.conf": "b"})
	stream.Reset()
	Pack(&stream, src2)
	if err := Unpack(bytes.NewReader(stream.Bytes()), dest, "sha256:two", sum(stream.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/a.conf")); err == nil {
		t.Errorf("the old tree's file survived")
	}
	if Digest(dest) != "sha256:two" {
		t.Errorf("marker %q", Digest(dest))
	}
	if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 1 {
		t.Errorf("left beside the tree: %v", entries)
	}
}

func stream(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len("data"))
		}
		h.Mode = 0o644
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("data"))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestUnpackRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	whole := func(b []byte) sent { return sent{b, sum(b)} }
	full := stream(t, &tar.Header{Name: "a", Typeflag: tar.TypeReg}, &tar.Header{Name: "b", Typeflag: tar.TypeReg})
	for name, s := range map[string]sent{
		"dot-dot":       whole(stream(t, &tar.Header{Name: "../evil", Typeflag: tar.TypeReg})),
		"absolute":      whole(stream(t, &tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg})),
		"through link":  whole(stream(t, &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside}, &tar.Header{Name: "link/evil", Typeflag: tar.TypeReg})),
		"hardlink out":  whole(stream(t, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})),
		"truncated zst": {full[:20], sum(full)},
		// A sender that dies before its first byte: an empty stream is an
		// empty tar, which only the digest refuses.
		"nothing sent": {nil, sum(full)},
		"no digest":    {full, ""},
	} {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "rootfs")
			os.MkdirAll(dest, 0o755)
			os.WriteFile(filepath.Join(dest, "keep"), []byte("old"), 0o644)
			if err := Unpack(bytes.NewReader(s.data), dest, "sha256:x", s.digest); err == nil {
				t.Fatal("accepted")
			}
			if data, _ := os.ReadFile(filepath.Join(dest, "keep")); string(data) != "old" {
				t.Errorf("the old tree was touched")
			}
			if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 1 {
				t.Errorf("left beside the tree: %v", entries)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("wrote outside: %v", entries)
			}
		})
	}
}

type sent struct {
	data   []byte
	digest string
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

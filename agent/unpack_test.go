package agent

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

// TestUnpackRefuses: each bad stream is refused with an error that says
// what is wrong, the tree in place is left as it was, and nothing is
// written outside it.
func TestUnpackRefuses(t *testing.T) {
	outside := t.TempDir()
	whole := func(b []byte) sent { return sent{b, sum(b)} }
	full := stream(t, &tar.Header{Name: "a", Typeflag: tar.TypeReg}, &tar.Header{Name: "b", Typeflag: tar.TypeReg})
	huge := zst(t, tarHeader(t, &tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40}))
	for name, c := range map[string]struct {
		sent
		want string
	}{
		"dot-dot":      {whole(stream(t, &tar.Header{Name: "../evil", Typeflag: tar.TypeReg})), "leaves the target directory"},
		"absolute":     {whole(stream(t, &tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg})), "leaves the target directory"},
		"through link": {whole(stream(t, &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside}, &tar.Header{Name: "link/evil", Typeflag: tar.TypeReg})), "link/evil"},
		"over a link":  {whole(stream(t, &tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: outside + "/evil"}, &tar.Header{Name: "evil", Typeflag: tar.TypeReg})), "evil"},
		"hardlink out": {whole(stream(t, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})), "leaves the target directory"},
		"huge size":    {whole(huge), "big: unexpected EOF"},
		// A sender that dies while sending: the frame ends early.
		"truncated zst": {sent{full[:20], sum(full)}, "unexpected EOF"},
		// A sender that dies before its first byte: an empty stream is an
		// empty tar, which only the digest refuses.
		"nothing sent": {sent{nil, sum(full)}, "cut short or corrupted"},
		"other digest": {sent{full, sum([]byte("other"))}, "cut short or corrupted"},
		"no digest":    {sent{full, ""}, "want sha256:<hex>"},
		"not zstd":     {whole([]byte("plain text, not a zstd stream")), "magic number"},
		// A frame asking for a 128 MiB window: the decoder would hold that
		// much memory for a stream Pack makes with 8 MiB.
		"window too large": {whole([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0x01, 0x00, 0x00}), "window size"},
	} {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "rootfs")
			os.MkdirAll(dest, 0o755)
			os.WriteFile(filepath.Join(dest, "keep"), []byte("old"), 0o644)
			err := Unpack(bytes.NewReader(c.data), dest, "sha256:x", c.digest)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
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

// tarHeader is a tar of one header and no data: a stream whose entry
// claims more than it holds.
func tarHeader(t testing.TB, h *tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	return buf.Bytes()
}

var encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

// zst compresses b as Pack does.
func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	return encoder.EncodeAll(b, nil)
}

// FuzzUnpack: whatever the stream, Unpack does not panic, writes nothing
// beside or outside the tree, leaves the old tree whole when it fails, and
// succeeds only on a stream received whole. The input is a tar that the
// target compresses (to reach the tar reader and the extraction), or with
// raw set, the stream itself (to reach the zstd decoder); cut, when
// shorter than the stream, cuts it as a sender that died would.
func FuzzUnpack(f *testing.F) {
	hdr := func(hs ...*tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hs {
			if h.Typeflag == tar.TypeReg {
				h.Size = 4
			}
			h.Mode = 0o644
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte("data"))
			}
		}
		tw.Close()
		return buf.Bytes()
	}
	good := hdr(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir}, &tar.Header{Name: "etc/a.conf", Typeflag: tar.TypeReg},
		&tar.Header{Name: "lib", Typeflag: tar.TypeSymlink, Linkname: "usr/lib"}, &tar.Header{Name: "etc/b.conf", Typeflag: tar.TypeLink, Linkname: "etc/a.conf"})
	for _, seed := range [][]byte{
		good,
		hdr(&tar.Header{Name: "../evil", Typeflag: tar.TypeReg}),
		hdr(&tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg}),
		hdr(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: ".."}, &tar.Header{Name: "link/evil", Typeflag: tar.TypeReg}),
		hdr(&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../evil"}),
		tarHeader(f, &tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40}),
		good[:700],
	} {
		f.Add(seed, false, uint16(0xffff))
		f.Add(seed, false, uint16(30))
	}
	f.Add(encoder.EncodeAll(good, nil), true, uint16(0xffff))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0x01, 0x00, 0x00}, true, uint16(0xffff))
	f.Add([]byte("plain"), true, uint16(0xffff))
	f.Fuzz(func(t *testing.T, data []byte, raw bool, cut uint16) {
		s := data
		if !raw {
			s = encoder.EncodeAll(data, nil)
		}
		digest := sum(s)
		cutShort := int(cut) < len(s)
		if cutShort {
			s = s[:cut]
		}
		top := t.TempDir()
		dest := filepath.Join(top, "rootfs")
		os.Mkdir(dest, 0o755)
		os.WriteFile(filepath.Join(dest, "keep"), []byte("old"), 0o644)
		err := Unpack(bytes.NewReader(s), dest, "sha256:x", digest)
		if err == nil && cutShort {
			t.Fatalf("a stream cut at %d bytes was taken", cut)
		}
		if err == nil && Digest(dest) != "sha256:x" {
			t.Errorf("unpacked, marker %q", Digest(dest))
		}
		if err != nil {
			if data, _ := os.ReadFile(filepath.Join(dest, "keep")); string(data) != "old" {
				t.Errorf("failed (%v) and the old tree was touched", err)
			}
		}
		entries, _ := os.ReadDir(top)
		if len(entries) != 1 || entries[0].Name() != "rootfs" {
			t.Errorf("beside the tree: %v", entries)
		}
	})
}

type sent struct {
	data   []byte
	digest string
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

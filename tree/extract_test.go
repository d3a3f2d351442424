package tree

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// entry is one tar entry of a test stream: a header, the data of a regular
// file, and, for the types archive/tar refuses to write (the PAX header of
// a sparse file, an old GNU sparse file), the type byte patched in after.
type entry struct {
	h     tar.Header
	data  string
	patch byte
}

// tarOf writes entries as a tar. Patched entries are written as regular
// files in the GNU format, then their type byte and checksum rewritten.
func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		if h.Typeflag == tar.TypeReg || e.patch != 0 {
			h.Typeflag = tar.TypeReg
			if h.Size == 0 {
				h.Size = int64(len(e.data))
			}
		}
		if e.patch != 0 {
			h.Format = tar.FormatGNU
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		at := buf.Len()
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if e.patch != 0 {
			patchType(buf.Bytes()[at:at+512], e.patch)
		}
		if e.data != "" {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
		}
	}
	// A stream claiming more data than it holds cannot be closed: the
	// missing bytes are what the test is about.
	tw.Flush()
	tw.Close()
	return buf.Bytes()
}

// patchType sets a header block's type byte and checksum.
func patchType(block []byte, typ byte) {
	block[156] = typ
	copy(block[148:156], "        ")
	sum := 0
	for _, b := range block {
		sum += int(b)
	}
	copy(block[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// paxRecords is the data of a PAX extended header.
func paxRecords(kv ...string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec) + 1
		for len(strconv.Itoa(n))+len(rec) != n {
			n++
		}
		b.WriteString(strconv.Itoa(n) + rec)
	}
	return b.String()
}

func reg(name, data string, mode int64) entry {
	return entry{h: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, data: data}
}

func dir(name string, mode int64) entry {
	return entry{h: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}

func symlink(name, target string) entry {
	return entry{h: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{h: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}}
}

// sparse is a PAX (1.0) sparse file of size bytes that are all a hole: a
// few hundred bytes of tar that would unpack to size bytes of zeros.
func sparse(name string, size int64) []entry {
	return []entry{
		{h: tar.Header{Name: "PaxHeaders/" + name}, data: paxRecords("GNU.sparse.major", "1", "GNU.sparse.minor", "0",
			"GNU.sparse.name", name, "GNU.sparse.realsize", strconv.FormatInt(size, 10)), patch: tar.TypeXHeader},
		reg("GNUSparseFile/"+name, "0\n"+strings.Repeat("\x00", 510), 0o644),
	}
}

const specialBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// TestExtractModesExact: files and directories get the tar's mode, special
// bits included, whatever the umask, and so does a file that was there
// before with another mode; the directories the tar does not list get
// 0755.
func TestExtractModesExact(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "old"), []byte("before"), 0o600)
	os.Chmod(filepath.Join(target, "old"), 0o600)
	stream := tarOf(t,
		dir("bin/", 0o755), dir("tmp/", 0o1777), dir("shared/", 0o2775), dir("private/", 0o700),
		reg("bin/tool", "#!/bin/sh\n", 0o755), reg("bin/su", "x", 0o4755), reg("bin/wall", "x", 0o2755),
		reg("etc/a.conf", "a", 0o644), reg("private/key", "k", 0o600), reg("old", "after", 0o644),
		reg("implicit/deeper/file", "f", 0o644),
	)
	if err := Extract(bytes.NewReader(stream), target); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{
		"bin": 0o755, "tmp": 0o777 | fs.ModeSticky, "shared": 0o775 | fs.ModeSetgid, "private": 0o700,
		"bin/tool": 0o755, "bin/su": 0o755 | fs.ModeSetuid, "bin/wall": 0o755 | fs.ModeSetgid,
		"etc/a.conf": 0o644, "private/key": 0o600, "old": 0o644,
		"etc": 0o755, "implicit": 0o755, "implicit/deeper": 0o755, "implicit/deeper/file": 0o644,
	} {
		info, err := os.Lstat(filepath.Join(target, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if got := info.Mode() & specialBits; got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(target, "old")); string(data) != "after" {
		t.Errorf("old = %q", data)
	}
}

// TestExtractRefuses: each bad stream is refused with an error that says
// what is wrong, and nothing is written outside the target directory.
func TestExtractRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		stream func(outside string) []byte
		want   string
	}{
		"absolute":          {func(string) []byte { return tarOf(t, reg("/etc/evil", "x", 0o644)) }, "leaves the target directory"},
		"dot-dot":           {func(string) []byte { return tarOf(t, reg("../evil", "x", 0o644)) }, "leaves the target directory"},
		"dot-dot inside":    {func(string) []byte { return tarOf(t, reg("a/../../evil", "x", 0o644)) }, "leaves the target directory"},
		"absolute after ./": {func(string) []byte { return tarOf(t, reg(".//etc/evil", "x", 0o644)) }, "leaves the target directory"},
		"file below a symlink out": {func(outside string) []byte {
			return tarOf(t, symlink("link", outside), reg("link/evil", "x", 0o644))
		}, "link/evil"},
		"file below a relative symlink out": {func(string) []byte {
			return tarOf(t, symlink("link", "../outside"), reg("link/evil", "x", 0o644))
		}, "link/evil"},
		"dir below a symlink out": {func(outside string) []byte {
			return tarOf(t, symlink("link", outside), dir("link/evil/", 0o755))
		}, "link/evil"},
		"file over a symlink out": {func(outside string) []byte {
			return tarOf(t, symlink("evil", filepath.Join(outside, "evil")), reg("evil", "x", 0o644))
		}, "evil"},
		"hard link out":      {func(string) []byte { return tarOf(t, hardlink("h", "../../etc/passwd")) }, "leaves the target directory"},
		"hard link absolute": {func(string) []byte { return tarOf(t, hardlink("h", "/etc/passwd")) }, "leaves the target directory"},
		"hard link via symlink": {func(outside string) []byte {
			return tarOf(t, symlink("link", outside), hardlink("h", "link/evil"))
		}, "h"},
		"huge size": {func(string) []byte {
			return tarOf(t, entry{h: tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40}, data: "only this"})
		}, "big"},
		"truncated header": {func(string) []byte { return tarOf(t, reg("a", "data", 0o644))[:300] }, "reading the stream"},
		"truncated data": {func(string) []byte {
			b := tarOf(t, reg("a", strings.Repeat("x", 2000), 0o644))
			return b[:1024]
		}, "a: unexpected EOF"},
		"sparse (pax)": {func(string) []byte { return tarOf(t, sparse("big", 64<<20)...) }, "sparse"},
		"sparse (old gnu)": {func(string) []byte {
			return tarOf(t, entry{h: tar.Header{Name: "big", Mode: 0o644}, patch: tar.TypeGNUSparse})
		}, "sparse"},
	} {
		t.Run(name, func(t *testing.T) {
			top := t.TempDir()
			outside := filepath.Join(top, "outside")
			target := filepath.Join(top, "target")
			os.Mkdir(outside, 0o755)
			os.Mkdir(target, 0o755)
			err := Extract(bytes.NewReader(c.stream(outside)), target)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one saying %q", err, c.want)
			}
			assertOnly(t, top, "outside", "target")
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("wrote outside: %v", entries)
			}
		})
	}
}

// assertOnly fails unless dir holds exactly names.
func assertOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

// FuzzExtract: whatever the stream, Extract does not panic and creates
// nothing outside its directory.
func FuzzExtract(f *testing.F) {
	outside := "/nonexistent-hoist-fuzz"
	for _, seed := range [][]entry{
		{dir("bin/", 0o755), reg("bin/tool", "#!/bin/sh\n", 0o4755), symlink("lib", "usr/lib"), reg("usr/lib/x.so", "x", 0o644), hardlink("bin/tool2", "bin/tool")},
		{reg("/etc/evil", "x", 0o644)},
		{reg("../evil", "x", 0o644)},
		{reg(".//evil", "x", 0o644)},
		{symlink("link", ".."), reg("link/evil", "x", 0o644)},
		{symlink("link", outside), reg("link/evil", "x", 0o644)},
		{symlink("evil", "../evil"), reg("evil", "x", 0o644)},
		{symlink("link", ".."), dir("link/evil/", 0o755)},
		{hardlink("h", "../evil")},
		{symlink("link", ".."), hardlink("h", "link/x")},
		{entry{h: tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40}, data: "x"}},
		sparse("big", 1<<40),
		{entry{h: tar.Header{Name: "big", Mode: 0o644}, patch: tar.TypeGNUSparse}},
		{dir("tmp/", 0o1777), reg("tmp/x", "x", 0o7777)},
	} {
		f.Add(tarOf(f, seed...))
	}
	whole := tarOf(f, reg("a", strings.Repeat("x", 1000), 0o644))
	f.Add(whole[:700])
	f.Add(whole[:100])
	f.Fuzz(func(t *testing.T, stream []byte) {
		top := t.TempDir()
		target := filepath.Join(top, "target")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		Extract(bytes.NewReader(stream), target)
		assertOnly(t, top, "target")
	})
}

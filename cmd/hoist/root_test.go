package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/test/fixture"
)

// TestBuildWritesOnlyUnderRoot: a build by the real binary creates nothing
// in the TMPDIR it was started with (buildah's would be there, or in
// /var/tmp), nor containers/image's blob-info cache in
// /var/lib/containers/cache: its temporary files and caches are under
// --root. An inotify watch sees files that were removed again too.
func TestBuildWritesOnlyUnderRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds need root (CI runs as root)")
	}
	bin := fixture.HoistBinary(t)
	tmp := t.TempDir()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, tmp, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	const systemCache = "/var/lib/containers/cache"
	_, statErr := os.Stat(systemCache)
	hadSystemCache := statErr == nil

	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY a /a\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "a"), []byte("a file\n"), 0o644)
	root := t.TempDir()
	cmd := exec.Command(bin, "build", "--root", root, "-t", "test/tmpdir:v1", ctx)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	buf := make([]byte, 4096)
	if n, err := unix.Read(fd, buf); n > 0 {
		var names []string
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			// struct inotify_event: wd, mask, cookie, len, then the name.
			length := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+length]
			names = append(names, string(bytes.TrimRight(name, "\x00")))
			off += unix.SizeofInotifyEvent + length
		}
		t.Errorf("the build created %v in TMPDIR %s", names, tmp)
	} else if !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("reading inotify: %v", err)
	}
	if _, err := os.Stat(layout.Local{Root: root}.BlobInfoCache()); err != nil {
		t.Errorf("no blob-info cache under --root: %v", err)
	}
	if _, err := os.Stat(systemCache); err == nil && !hadSystemCache {
		t.Errorf("the build created %s", systemCache)
	}
}

// Package unpack puts a rootfs, streamed as a zstd-compressed tar, in place
// on a node, safely and atomically. It runs on the nodes (hoist node unpack),
// so it depends on nothing but the standard library and zstd.
package unpack

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/clusterimage/tree"
)

// Marker is the file, at the top of an unpacked tree, that records which
// content it holds: a tree whose marker names the wanted digest is skipped.
const Marker = ".hoist-digest"

// Digest returns the digest recorded in the tree at dest, or "".
func Digest(dest string) string {
	data, err := os.ReadFile(filepath.Join(dest, Marker))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// Unpack reads a zstd-compressed tar from r into dest, which then holds
// exactly that tree and the marker naming digest. The tree is built beside
// dest and swapped in at the end: a failure leaves dest as it was.
//
// Every entry stays inside the tree: absolute names, .. and writes through
// symlinks are refused (os.Root enforces the last).
func Unpack(r io.Reader, dest, digest string) error {
	dest = filepath.Clean(dest)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	tmp := dest + ".new-" + hex.EncodeToString(suffix)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := extract(r, tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, Marker), []byte(digest+"\n"), 0o644); err != nil {
		return err
	}
	if err := swap(tmp, dest); err != nil {
		return err
	}
	ok = true
	return nil
}

// swap puts tmp at dest: an exchange when dest exists (never a moment
// without a complete tree), a rename otherwise.
func swap(tmp, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(tmp, dest)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("swapping %s into place: %w", dest, err)
	}
	return os.RemoveAll(tmp) // now the old tree
}

func extract(r io.Reader, dir string) error {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	return tree.Extract(zr, dir)
}

// Pack writes the tree at dir as a zstd-compressed tar to w: what Unpack
// reads. Hoist's Marker is left out.
func Pack(w io.Writer, dir string) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	if err := tree.Write(zw, dir, "", func(rel string) bool { return rel == Marker }); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

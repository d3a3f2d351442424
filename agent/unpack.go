// Unpacking puts a rootfs, streamed as a zstd-compressed tar, in place on a
// node, safely and atomically (hoist node unpack).

package agent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/tree"
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
// streamDigest is the sha256 of the whole stream ("sha256:<hex>"): a
// stream cut short (the sender died) can end on a tar entry's boundary and
// read as a smaller, valid tree; only the digest tells it apart.
//
// Every entry stays inside the tree: absolute names, .. and writes through
// symlinks are refused (os.Root enforces the last).
func Unpack(r io.Reader, dest, digest, streamDigest string) error {
	if !strings.HasPrefix(streamDigest, "sha256:") {
		return fmt.Errorf("stream digest %q: want sha256:<hex>", streamDigest)
	}
	dest = filepath.Clean(dest)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	// A node that died while unpacking left its half tree beside dest;
	// applies of a cluster never run at once, so none is in use.
	if stale, err := filepath.Glob(dest + ".new-*"); err == nil {
		for _, dir := range stale {
			os.RemoveAll(dir)
		}
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
	h := sha256.New()
	in := io.TeeReader(r, h)
	if err := extract(in, tmp); err != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, err)
	}
	// The zstd reader may stop before the stream's end (padding, a
	// trailing frame): the digest covers every byte sent.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != streamDigest {
		return fmt.Errorf("unpacking into %s: the stream received has digest %s, not %s: it was cut short or corrupted", dest, got, streamDigest)
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

// maxWindow bounds the memory a stream can make the decoder hold (a frame
// names its window, up to 512 MiB by default): Pack's encoder uses 8 MiB.
const maxWindow = 64 << 20

func extract(r io.Reader, dir string) error {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return err
	}
	defer zr.Close()
	return tree.Extract(zr, dir)
}

// Pack writes the tree at dir as a zstd-compressed tar to w: what Unpack
// reads. Hoist's Marker is left out, and the top-level entries named in
// exclude.
func Pack(w io.Writer, dir string, exclude ...string) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	if err := tree.Write(zw, dir, "", func(rel string) bool { return rel == Marker || slices.Contains(exclude, rel) }); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

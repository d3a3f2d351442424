// Unpacking puts a rootfs, streamed as a zstd-compressed tar, in place on a
// node, safely and atomically (hoist node unpack).

package agent

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
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
// The stream may start with a list of registry blobs it leaves out
// (LinkFrame): each is hard-linked from the tree at dest, once its sha256
// is checked, into the new tree, which then equals the full stream's.
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
	in := bufio.NewReaderSize(io.TeeReader(r, h), 1<<20)
	links, err := readLinks(in)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, err)
	}
	var old *os.Root
	verified := make(chan error, 1)
	if len(links) > 0 {
		// The blobs to link are read while the stream arrives.
		if old, err = os.OpenRoot(dest); err != nil {
			return fmt.Errorf("unpacking into %s: the tree to link blobs from: %w", dest, err)
		}
		defer old.Close()
		go func() { verified <- verifyLinks(old, links) }()
	} else {
		verified <- nil
	}
	err = extract(in, tmp)
	if err == nil {
		// The zstd reader may stop before the stream's end (padding, a
		// trailing frame): the digest covers every byte sent.
		_, err = io.Copy(io.Discard, in)
	}
	// Waited for in any case: tmp goes only once nothing reads for it.
	verr := <-verified
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != streamDigest {
		return fmt.Errorf("unpacking into %s: the stream received has digest %s, not %s: it was cut short or corrupted", dest, got, streamDigest)
	}
	if verr != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, verr)
	}
	if len(links) > 0 {
		root, err := os.OpenRoot(tmp)
		if err != nil {
			return err
		}
		err = linkBlobs(old, root, links)
		root.Close()
		if err != nil {
			return fmt.Errorf("unpacking into %s: %w", dest, err)
		}
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

// Package tree turns directory trees into tar streams and back: the layers
// hoist writes, the rootfs it sends to nodes, the archives it unpacks. It
// depends on the standard library only, since nodes run it too.
package tree

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Header is the tar header of the file at p (info, its Lstat) named name:
// owned by root, in PAX format, and without the access and change times
// that archive/tar takes from the file, as docker's archive leaves them
// out: reading a file changes them, and so the tar of the same tree.
func Header(p, name string, info fs.FileInfo) (*tar.Header, error) {
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return nil, err
		}
	}
	h, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return nil, err
	}
	h.Name = name
	h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Format = tar.FormatPAX
	return h, nil
}

// Write writes the tree at dir as a tar to w, its names under prefix (""
// for none; with a prefix the tree's root is an entry too): directories,
// regular files and symlinks, owned by root, in walk order. skip, when set,
// leaves out the entries it names (paths relative to dir), with
// everything below them.
func Write(w io.Writer, dir, prefix string, skip func(rel string) bool) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." && prefix == "" {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		if info.IsDir() {
			name += "/"
		}
		h, err := Header(p, name, info)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(tw, readerOnly{f}, buf)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Extract reads a tar from r into dir. Every entry stays inside dir:
// absolute names, .. and writes through symlinks are refused (os.Root
// enforces the last). Devices and fifos are left out; sparse files are
// refused, since a few bytes of one can stand for terabytes of zeros and
// hoist never writes them.
//
// Files and directories get the tar's mode exactly, setuid, setgid and
// sticky bits included: the process's umask would narrow the mode given at
// creation (a node's umask 077 would make a rootfs unreadable to the
// services that run from it), so the mode is set again once the entry is
// made. Directories above an entry that the tar does not list get 0755.
func Extract(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	buf := make([]byte, 1<<20)
	made := map[string]bool{} // directories known to exist
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the stream: %w", err)
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		if isSparse(h) {
			return fmt.Errorf("%s: sparse files are not supported", name)
		}
		mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := mkdirs(root, path.Dir(name), made); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			made[name] = true
		case tar.TypeReg:
			// Made 0600 and given its mode once written: a setuid file is
			// never there half written, nor open to others before its time.
			f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			_, err = io.CopyBuffer(writerOnly{f}, tr, buf)
			if err == nil {
				err = f.Chmod(mode)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeLink:
			target, err := cleanName(h.Linkname)
			if err != nil {
				return err
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}

// mkdirs makes dir and the directories above it, those not in made, with
// mode 0755 whatever the umask, and records them in made: one map look-up
// instead of a walk of the path for each entry of a directory.
func mkdirs(root *os.Root, dir string, made map[string]bool) error {
	if dir == "." || made[dir] {
		return nil
	}
	if err := mkdirs(root, path.Dir(dir), made); err != nil {
		return err
	}
	// An existing name that is not a directory fails the entry below it;
	// one that is a symlink is followed by os.Root only inside the tree.
	switch err := root.Mkdir(dir, 0o755); {
	case err == nil:
		if err := root.Chmod(dir, 0o755); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	made[dir] = true
	return nil
}

// isSparse tells a GNU sparse file, old style or PAX.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// cleanName refuses names that leave the tree.
func cleanName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if path.IsAbs(name) || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q leaves the target directory", name)
	}
	return clean, nil
}

// readerOnly hides a file's WriteTo, which copies through 32 KiB: large
// writes mean fewer hand-offs through the pipes a stream goes through.
type readerOnly struct{ io.Reader }

// writerOnly hides a file's ReadFrom, which would copy through a 32 KiB
// buffer: large writes halve the system time of unpacking a big tree.
type writerOnly struct{ io.Writer }

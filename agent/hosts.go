package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// hostsTag marks the /etc/hosts line of a cluster, so that it is found
// again to update or remove, and nothing else is touched.
func hostsTag(cluster string) string { return "# hoist:" + cluster }

// SetHostsEntry makes file map domain to ip with one line of its own,
// replacing the cluster's previous line.
func SetHostsEntry(file, cluster, domain, ip string) error {
	return editHosts(file, cluster, fmt.Sprintf("%s %s %s", ip, domain, hostsTag(cluster)))
}

// RemoveHostsEntry removes the cluster's line from file.
func RemoveHostsEntry(file, cluster string) error {
	return editHosts(file, cluster, "")
}

// editHosts sets the cluster's line of file (none when line is empty).
//
// The edit holds a lock, so that the applies of two clusters on one node
// do not both read the file and each write it back without the other's
// line. The file is replaced whole (a new file renamed over it), so that a
// resolver reading it meanwhile never sees it half written; where it
// cannot be, it is rewritten in place: /etc/hosts is often a bind mount
// (containers, test beds), which a rename cannot replace.
func editHosts(file, cluster, line string) error {
	// A hosts file that is a symlink stays one: its target is edited.
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	unlock, err := lockHosts(file)
	if err != nil {
		return err
	}
	defer unlock()
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var out []string
	for l := range strings.SplitSeq(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasSuffix(l, " "+hostsTag(cluster)) || (l == "" && len(out) == 0) {
			continue
		}
		out = append(out, l)
	}
	if line != "" {
		out = append(out, line)
	}
	text := strings.Join(out, "\n") + "\n"
	if text == string(data) {
		return nil
	}
	err = replaceHosts(file, []byte(text))
	if errors.Is(err, errCannotReplace) {
		err = rewriteHosts(file, []byte(text))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// lockHosts takes the lock of hoist's edits of file: an exclusive flock of
// a lock file beside it, left there (removing a lock file would let the
// next edit lock a new file while another holds the old one). Where the
// directory cannot hold one (a read-only root with a hosts file mounted
// in), the file is only ever rewritten in place, so it is its own lock.
func lockHosts(file string) (unlock func(), err error) {
	name := filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".hoist.lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if f, err = os.Open(file); err != nil {
			return nil, fmt.Errorf("locking %s: %w", file, err)
		}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", file, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// errCannotReplace is what replaceHosts returns when the file cannot be
// replaced by another, where rewriting it in place may still work.
var errCannotReplace = errors.New("cannot replace the file")

// replaceHosts writes data to a new file beside file, with file's mode and
// owner (0644 and the process's for a new file, whatever the umask), and
// renames it over file.
func replaceHosts(file string, data []byte) error {
	mode, uid, gid := fs.FileMode(0o644), -1, -1
	if info, err := os.Stat(file); err == nil {
		mode = info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".hoist-*")
	if err != nil {
		// A read-only directory, a file mounted in.
		return fmt.Errorf("%w: %w", errCannotReplace, err)
	}
	defer os.Remove(tmp.Name()) // once renamed, there is none
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil && uid >= 0 {
		if err = tmp.Chown(uid, gid); err != nil {
			// Not root: only the file in place keeps its owner.
			err = fmt.Errorf("%w: %w", errCannotReplace, err)
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			// A mount point, or another filesystem.
			return fmt.Errorf("%w: %w", errCannotReplace, err)
		}
		return err
	}
	return nil
}

// rewriteHosts writes data over the file in place, then cuts what is left
// of the old content: adding a line, a reader sees the old file or the
// old file and part of the line, never an empty one.
func rewriteHosts(file string, data []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

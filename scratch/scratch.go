// Package scratch makes the temporary directories hoist works in under its
// root (load-*, apply-*, ...) and removes the ones that runs killed before
// they could clean up. It depends on the standard library only.
package scratch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Dir creates a directory named prefix<pid>-<random> in parent (made 0700
// if missing), after removing the prefix<pid>-* directories of processes
// that no longer run: a hoist killed while loading or applying cannot
// remove its own. The caller removes the directory it gets.
func Dir(parent, prefix string) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	Sweep(parent, prefix)
	return os.MkdirTemp(parent, fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// Sweep removes the prefix<pid>-* entries of parent whose process is gone.
// Entries whose name holds no pid are left alone: they are not Dir's.
func Sweep(parent, prefix string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || alive(pid) {
			continue
		}
		os.RemoveAll(filepath.Join(parent, e.Name()))
	}
}

// alive tells whether a process with this pid exists (EPERM: it does, as
// another user's).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

package scratch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDirSweepsDeadRunsOnly(t *testing.T) {
	parent := t.TempDir()
	// A process that ran and exited: its pid is free (for now).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(parent, "load-"+strconv.Itoa(cmd.Process.Pid)+"-abc")
	live := filepath.Join(parent, "load-"+strconv.Itoa(os.Getppid())+"-abc")
	other := filepath.Join(parent, "apply-"+strconv.Itoa(cmd.Process.Pid)+"-abc")
	foreign := filepath.Join(parent, "load-notapid")
	for _, d := range []string{dead, live, other, foreign} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := Dir(parent, "load-")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != parent || !strings.HasPrefix(filepath.Base(dir), "load-"+strconv.Itoa(os.Getpid())+"-") {
		t.Errorf("Dir made %s", dir)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("a dead run's directory is kept: %v", err)
	}
	for _, d := range []string{live, other, foreign, dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}

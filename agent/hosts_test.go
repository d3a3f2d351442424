package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lines is the sorted lines of file.
func lines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	l := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	slices.Sort(l)
	return l
}

// TestHostsEntryReplacesTheFile: the file is replaced whole (a reader that
// opened it before reads the old content, never a half-written one), with
// its mode and owner, whatever the umask, and nothing is left beside it
// but the lock.
func TestHostsEntryReplacesTheFile(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	file := filepath.Join(dir, "hosts")
	before := "127.0.0.1 localhost\n"
	os.WriteFile(file, []byte(before), 0o640)
	os.Chmod(file, 0o640)
	owner := os.Getuid() == 0
	if owner {
		os.Chown(file, 1234, 5678)
	}
	reader, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	if err := SetHostsEntry(file, "demo", "registry.hoist.local", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if n, _ := reader.ReadAt(buf, 0); string(buf[:n]) != before {
		t.Errorf("a reader of the old file reads %q: the file was rewritten in place", buf[:n])
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != 0o640 {
		t.Errorf("mode %v, want 0640", info.Mode())
	}
	if st := info.Sys().(*syscall.Stat_t); owner && (st.Uid != 1234 || st.Gid != 5678) {
		t.Errorf("owner %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
	if data, _ := os.ReadFile(file); string(data) != before+"10.0.0.2 registry.hoist.local # hoist:demo\n" {
		t.Errorf("hosts:\n%s", data)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{".hosts.hoist.lock", "hosts"}) {
		t.Errorf("beside the file: %v", names)
	}

	// A missing file is made, 0644 whatever the umask.
	missing := filepath.Join(dir, "new-hosts")
	if err := SetHostsEntry(missing, "demo", "registry.hoist.local", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(missing); err != nil || info.Mode() != 0o644 {
		t.Errorf("new file: %v %v", info.Mode(), err)
	}
}

// TestHostsEntryThroughSymlink: a hosts file that is a symlink stays one;
// the file it names is changed.
func TestHostsEntryThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real-hosts")
	os.WriteFile(target, []byte("127.0.0.1 localhost\n"), 0o644)
	link := filepath.Join(dir, "hosts")
	os.Symlink("real-hosts", link)
	if err := SetHostsEntry(link, "demo", "registry.hoist.local", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if dest, err := os.Readlink(link); err != nil || dest != "real-hosts" {
		t.Errorf("the symlink became %q %v", dest, err)
	}
	if got := lines(t, target); len(got) != 2 {
		t.Errorf("target: %v", got)
	}
}

// TestHostsEntryConcurrent: clusters adding and removing their lines at
// once, from goroutines and from processes, lose none of each other's.
func TestHostsEntryConcurrent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(file, []byte("127.0.0.1 localhost\n"), 0o644)
	want := []string{"127.0.0.1 localhost"}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 48 {
		cluster := fmt.Sprintf("g%d", i)
		line := fmt.Sprintf("10.0.%d.2 registry.hoist.local # hoist:%s", i, cluster)
		if i%3 != 0 {
			want = append(want, line)
		}
		wg.Go(func() {
			if err := SetHostsEntry(file, cluster, "registry.hoist.local", fmt.Sprintf("10.0.%d.2", i)); err != nil {
				errs <- err
			}
			if i%3 == 0 {
				if err := RemoveHostsEntry(file, cluster); err != nil {
					errs <- err
				}
			}
		})
	}
	var procs []*exec.Cmd
	for i := range 6 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HOIST_HOSTS_HELPER="+file, fmt.Sprintf("HOIST_HOSTS_PROC=%d", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		for j := range 8 {
			want = append(want, fmt.Sprintf("10.1.%d.%d registry.hoist.local # hoist:p%d-%d", i, j, i, j))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	}
	slices.Sort(want)
	if got := lines(t, file); !slices.Equal(got, want) {
		t.Errorf("%d lines, want %d; missing: %v", len(got), len(want), missing(want, got))
	}
}

func missing(want, got []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}

// hostsHelper is a process of TestHostsEntryConcurrent (TestMain runs it
// when HOIST_HOSTS_HELPER is set): it adds 8 clusters' lines to that file.
func hostsHelper(file string) error {
	proc := os.Getenv("HOIST_HOSTS_PROC")
	for j := range 8 {
		if err := SetHostsEntry(file, fmt.Sprintf("p%s-%d", proc, j), "registry.hoist.local", fmt.Sprintf("10.1.%s.%d", proc, j)); err != nil {
			return err
		}
	}
	return nil
}

// TestHostsEntryBindMount: a hosts file that is a bind mount (as in a
// container), which no rename can replace, is rewritten in place. The
// mount is made in a mount namespace of a process of its own.
func TestHostsEntryBindMount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	dir := t.TempDir()
	src, target := filepath.Join(dir, "src-hosts"), filepath.Join(dir, "hosts")
	os.WriteFile(src, []byte("127.0.0.1 localhost\n"), 0o644)
	os.WriteFile(target, []byte("not the mounted file\n"), 0o644)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HOIST_HOSTS_BIND="+src+":"+target)
	// Go makes the new namespace's mounts private: the bind mount is
	// seen by the child alone and goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper in a mount namespace of its own: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "renamed over: device or resource busy") {
		t.Errorf("the helper did not see a rename refused:\n%s", out)
	}
	want := "127.0.0.1 localhost\n10.0.0.2 registry.hoist.local # hoist:demo\n"
	if data, _ := os.ReadFile(src); string(data) != want {
		t.Errorf("the mounted file:\n%s\nwant:\n%s", data, want)
	}
	if data, _ := os.ReadFile(target); string(data) != "not the mounted file\n" {
		t.Errorf("the file under the mount changed:\n%s", data)
	}
}

// bindHelper is the process of TestHostsEntryBindMount (TestMain runs it
// when HOIST_HOSTS_BIND is set to SRC:TARGET).
func bindHelper(env string) error {
	src, target, _ := strings.Cut(env, ":")
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	// What a rename over the mount point does, for the parent to check
	// that the test reaches the fallback.
	tmp := filepath.Join(filepath.Dir(target), "probe")
	os.WriteFile(tmp, nil, 0o644)
	if err := os.Rename(tmp, target); err != nil {
		fmt.Fprintf(os.Stderr, "renamed over: %v\n", err.(*os.LinkError).Err)
	}
	os.Remove(tmp)
	if err := SetHostsEntry(target, "demo", "registry.hoist.local", "10.0.0.2"); err != nil {
		return err
	}
	data, err := os.ReadFile(target)
	if err != nil {
		return err
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		return fmt.Errorf("through the mount: %d lines:\n%s", n, data)
	}
	return nil
}

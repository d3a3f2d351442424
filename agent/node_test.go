package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary act as `hoist node supervise`, the Self of
// the services under test, and as the helper processes of the hosts tests.
func TestMain(m *testing.M) {
	helper := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	switch {
	case len(os.Args) > 4 && os.Args[1] == "node" && os.Args[2] == "supervise" && os.Args[5] == "--":
		helper(Supervise(os.Args[4], os.Args[6:]))
	case os.Getenv("HOIST_HOSTS_HELPER") != "":
		helper(hostsHelper(os.Getenv("HOIST_HOSTS_HELPER")))
	case os.Getenv("HOIST_HOSTS_BIND") != "":
		helper(bindHelper(os.Getenv("HOIST_HOSTS_BIND")))
	}
	os.Exit(m.Run())
}

func TestHostsEntry(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(file, []byte("127.0.0.1 localhost\n10.0.0.9 other # hoist:other\n"), 0o644)
	if err := SetHostsEntry(file, "demo", "registry.hoist.local", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if err := SetHostsEntry(file, "demo", "registry.hoist.local", "10.0.0.3"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	want := "127.0.0.1 localhost\n10.0.0.9 other # hoist:other\n10.0.0.3 registry.hoist.local # hoist:demo\n"
	if string(data) != want {
		t.Errorf("hosts:\n%s\nwant:\n%s", data, want)
	}
	if err := RemoveHostsEntry(file, "demo"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(file)
	if string(data) != "127.0.0.1 localhost\n10.0.0.9 other # hoist:other\n" {
		t.Errorf("after removal:\n%s", data)
	}
}

func TestMirrors(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	record := filepath.Join(dir, "state", "mirrors")
	os.MkdirAll(filepath.Join(certs, "ghcr.io"), 0o755)
	os.WriteFile(filepath.Join(certs, "ghcr.io", "hosts.toml"), []byte("not ours\n"), 0o644)
	m := Mirrors{CertsDir: certs, Registry: "registry.hoist.local:5000", CA: []byte("CA PEM"), Hosts: []string{"docker.io", "registry.corp:5000"}, Record: record}
	if err := WriteMirrors(m); err != nil {
		t.Fatal(err)
	}
	hub, _ := os.ReadFile(filepath.Join(certs, "docker.io", "hosts.toml"))
	for _, want := range []string{`server = "https://registry-1.docker.io"`, `[host."https://registry.hoist.local:5000"]`, `capabilities = ["pull", "resolve"]`, `ca = "` + certs + `/registry.hoist.local:5000/ca.crt"`} {
		if !strings.Contains(string(hub), want) {
			t.Errorf("docker.io hosts.toml lacks %s:\n%s", want, hub)
		}
	}
	if ca, _ := os.ReadFile(filepath.Join(certs, "registry.hoist.local:5000", "ca.crt")); string(ca) != "CA PEM" {
		t.Errorf("ca.crt = %q", ca)
	}
	corp, _ := os.ReadFile(filepath.Join(certs, "registry.corp:5000", "hosts.toml"))
	if !strings.Contains(string(corp), `server = "https://registry.corp:5000"`) {
		t.Errorf("registry.corp hosts.toml:\n%s", corp)
	}

	// A registry on several nodes: the others follow the domain, in order.
	m.Others = []string{"10.0.0.3:5000", "10.0.0.4:5000"}
	if err := WriteMirrors(m); err != nil {
		t.Fatal(err)
	}
	hub, _ = os.ReadFile(filepath.Join(certs, "docker.io", "hosts.toml"))
	first, second, third := strings.Index(string(hub), `[host."https://registry.hoist.local:5000"]`), strings.Index(string(hub), `[host."https://10.0.0.3:5000"]`), strings.Index(string(hub), `[host."https://10.0.0.4:5000"]`)
	if first < 0 || second < first || third < second || strings.Count(string(hub), `ca = "`+certs+`/registry.hoist.local:5000/ca.crt"`) != 3 {
		t.Errorf("docker.io hosts.toml with other registry nodes:\n%s", hub)
	}
	m.Others = nil

	// A new image without registry.corp: its file goes, the others stay.
	m.Hosts = []string{"docker.io"}
	if err := WriteMirrors(m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(certs, "registry.corp:5000")); !os.IsNotExist(err) {
		t.Errorf("stale mirror kept: %v", err)
	}
	if err := RemoveMirrors(record, certs); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(certs)
	if len(entries) != 1 || entries[0].Name() != "ghcr.io" {
		t.Errorf("after removal certs.d holds %v; want only the file hoist did not write", entries)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Errorf("record kept: %v", err)
	}
}

func TestSupervisedService(t *testing.T) {
	if HasSystemd() {
		t.Log("systemd runs here; testing the supervised daemon all the same")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "starts")
	s := Service{
		Name:     "hoist-test",
		Command:  []string{"/bin/sh", "-c", "echo x >> " + marker + "; exec sleep 600"},
		StateDir: filepath.Join(dir, "state"),
		Self:     self,
	}
	ctx := context.Background()
	if err := s.startSupervised(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(ctx) })
	pid, ok := s.running()
	if !ok {
		t.Fatal("not running after Start")
	}
	if err := s.startSupervised(); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.running(); again != pid {
		t.Errorf("a second Start with the same command restarted the service (%d → %d)", pid, again)
	}
	waitFor(t, func() bool { data, _ := os.ReadFile(marker); return strings.Count(string(data), "x") == 1 })

	// The child dies: the supervisor starts it again.
	killChildren(t, pid)
	waitFor(t, func() bool { data, _ := os.ReadFile(marker); return strings.Count(string(data), "x") == 2 })

	// Another command: the service restarts with it.
	s.Command = []string{"/bin/sh", "-c", "echo y >> " + marker + "; exec sleep 600"}
	if err := s.startSupervised(); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.running(); again == pid {
		t.Error("a changed command did not restart the service")
	}
	waitFor(t, func() bool { data, _ := os.ReadFile(marker); return strings.Contains(string(data), "y") })
	newPid, _ := s.running()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(newPid) {
		t.Error("supervisor alive after Stop")
	}
	if _, err := os.Stat(s.pidFile()); !os.IsNotExist(err) {
		t.Errorf("pid file kept: %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("stopping a stopped service: %v", err)
	}
}

func killChildren(t *testing.T, parent int) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(parent) {
			p, _ := os.FindProcess(mustAtoi(e.Name()))
			p.Kill()
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustAtoi(s string) int {
	i, _ := strconv.Atoi(s)
	return i
}

package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/apply/ssh"
)

// TestKubeBed checks what kube nodes need (notes/kubeadm.md, "Node catches")
// and that Crash, Restart and Destroy take all of it down: processes the
// node detached, also in a network namespace of their own, its cgroups and
// the host-wide sysctls it changed.
func TestKubeBed(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	bed, key := ForKubeTest(t, 2)
	t.Logf("kube bed of 2 up in %v", time.Since(start).Round(time.Millisecond))
	saved, err := SavedSysctls()
	if err != nil || saved == nil {
		t.Fatalf("no sysctls saved with a kube bed up: %v", err)
	}

	known := filepath.Join(t.TempDir(), "known_hosts")
	dial := func(n Node) ssh.Executor {
		t.Helper()
		e, err := ssh.Dial(ctx, ssh.Config{Host: n.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: known, AcceptNew: true})
		if err != nil {
			t.Fatalf("%s: %v\nlog:\n%s", n.Name, err, bed.Log(n))
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	run := func(e ssh.Executor, n Node, cmd string) string {
		t.Helper()
		out, err := ssh.Output(ctx, e, cmd)
		if err != nil {
			t.Fatalf("%s: %s: %v", n.Name, cmd, err)
		}
		return strings.TrimSpace(string(out))
	}

	hierarchies := cgroupHierarchies()
	tag := strconv.Itoa(100000 + os.Getpid()%800000)
	overcommit := "1"
	if saved["vm.overcommit_memory"] == "1" {
		overcommit = "0"
	}
	for i, n := range bed.Nodes {
		e := dial(n)
		if got := run(e, n, "tr '\\0' ' ' < /proc/1/cmdline"); !strings.HasPrefix(got, "/usr/bin/tini -- /usr/sbin/sshd") {
			t.Errorf("%s: PID 1 is %q, want tini running sshd", n.Name, got)
		}
		if got := run(e, n, "findmnt -n -o PROPAGATION /"); got != "shared" {
			t.Errorf("%s: / has propagation %q, want shared", n.Name, got)
		}
		if got := run(e, n, "stat -f -c %T / /var/lib/containerd /var/lib/kubelet /var/lib/etcd /var/log"); got != "overlayfs\next2/ext3\next2/ext3\next2/ext3\next2/ext3" {
			t.Errorf("%s: file systems of /, /var/lib/{containerd,kubelet,etcd}, /var/log:\n%s", n.Name, got)
		}
		if got := run(e, n, "ls /sys/fs/cgroup; ls /sys/class/net"); !strings.Contains(got, "eth0") || !strings.Contains(got, filepath.Base(hierarchies[0])) {
			t.Errorf("%s: /sys/fs/cgroup and /sys/class/net:\n%s", n.Name, got)
		}
		if _, err := os.Stat("/sys/fs/cgroup/cpu"); err == nil {
			run(e, n, "test -f /sys/fs/cgroup/cpu/cpu.shares && test -d /sys/fs/cgroup/cpu"+n.CgroupRoot)
		}
		if got := run(e, n, "cat /etc/default/kubelet; hostname; getent -s files hosts node1 node2 | wc -l; wc -c < /etc/machine-id"); got != "KUBELET_EXTRA_ARGS=--cgroup-root=/hoist-"+bed.ID+"-"+n.Name+"\n"+n.Name+"\n2\n33" {
			t.Errorf("%s: /etc/default/kubelet, hostname, names of nodes, machine ID:\n%s", n.Name, got)
		}
		for _, h := range hierarchies {
			if _, err := os.Stat(filepath.Join(h, n.CgroupRoot)); err != nil {
				t.Errorf("%s: no cgroup on the host: %v", n.Name, err)
			}
		}
		if data, err := os.ReadFile(filepath.Join(cgroupTop, "cpuset", n.CgroupRoot, "cpuset.cpus")); err == nil && strings.TrimSpace(string(data)) == "" {
			t.Errorf("%s: its cpuset has no CPUs", n.Name)
		}
		// Detached processes, one as a pod's: in a network namespace of its own.
		run(e, n, "setsid sleep "+tag+" </dev/null >/dev/null 2>&1 & setsid unshare --net sleep "+tag+" </dev/null >/dev/null 2>&1 &")
		if i == 0 {
			// As the kubelet does.
			run(e, n, "echo "+overcommit+" > /proc/sys/vm/overcommit_memory")
		}
		run(e, n, "echo kept > /root/kept")
	}
	var sleepers []int
	for try := 0; try < 50 && len(sleepers) < 4; try++ {
		time.Sleep(50 * time.Millisecond)
		sleepers = processes("sleep\x00" + tag + "\x00")
	}
	if len(sleepers) != 4 {
		t.Fatalf("found %d of the 4 sleepers on the host", len(sleepers))
	}
	if got, _ := HostSysctls(); got["vm.overcommit_memory"] != overcommit {
		t.Fatalf("a node could not change vm.overcommit_memory: %s", got["vm.overcommit_memory"])
	}

	// Crash and Restart of node2: the same files, sshd back, a new init.
	n := bed.Nodes[1]
	pid, _, _ := readRecord(filepath.Join(runDir, n.NetNS+".pid"))
	start = time.Now()
	if err := bed.Crash(n); err != nil {
		t.Fatalf("crash: %v", err)
	}
	t.Logf("crash of %s in %v", n.Name, time.Since(start).Round(time.Millisecond))
	if c, err := net.DialTimeout("tcp", n.IP+":22", time.Second); err == nil {
		c.Close()
		t.Errorf("%s: sshd still answers after Crash", n.Name)
	}
	if got := processes("sleep\x00" + tag + "\x00"); len(got) != 2 {
		t.Errorf("%d sleepers left after the crash of %s, want node1's 2", len(got), n.Name)
	}
	if _, err := os.Stat(filepath.Join(cgroupTop, "cpu", n.CgroupRoot)); err == nil {
		t.Errorf("%s: its cgroup outlived the crash", n.Name)
	}
	start = time.Now()
	if err := bed.Restart(ctx, n); err != nil {
		t.Fatalf("restart: %v\nlog:\n%s", err, bed.Log(n))
	}
	t.Logf("restart of %s in %v", n.Name, time.Since(start).Round(time.Millisecond))
	if pid2, _, _ := readRecord(filepath.Join(runDir, n.NetNS+".pid")); pid2 == pid || pid2 == 0 {
		t.Errorf("%s: init %d after the restart, was %d", n.Name, pid2, pid)
	}
	e := dial(n)
	if got := run(e, n, "cat /root/kept; tr '\\0' ' ' < /proc/1/cmdline; cat /etc/default/kubelet"); !strings.HasPrefix(got, "kept\n/usr/bin/tini") || !strings.Contains(got, n.CgroupRoot) {
		t.Errorf("%s after its restart:\n%s", n.Name, got)
	}
	if _, err := os.Stat(filepath.Join(hierarchies[0], n.CgroupRoot)); err != nil {
		t.Errorf("%s: no cgroup after the restart: %v", n.Name, err)
	}
	run(e, n, "setsid sleep "+tag+" </dev/null >/dev/null 2>&1 &")
	// A process in a cgroup of the node below its root, as a pod's.
	run(e, n, "mkdir -p /sys/fs/cgroup/pids"+n.CgroupRoot+"/kubepods/pod1 && (setsid sleep "+tag+" </dev/null >/dev/null 2>&1 & echo $! > /sys/fs/cgroup/pids"+n.CgroupRoot+"/kubepods/pod1/cgroup.procs)")

	start = time.Now()
	if err := bed.Destroy(); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	t.Logf("destroy in %v", time.Since(start).Round(time.Millisecond))
	if got := processes("sleep\x00" + tag + "\x00"); len(got) != 0 {
		t.Errorf("processes left after Destroy: %v", got)
	}
	for _, h := range hierarchies {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "hoist-"+bed.ID+"-") {
				t.Errorf("cgroup left: %s", filepath.Join(h, e.Name()))
			}
		}
	}
	if records, _ := filepath.Glob(filepath.Join(runDir, "*"+bed.ID+"*")); len(records) != 0 {
		t.Errorf("records left: %v", records)
	}
	if others, _ := filepath.Glob(filepath.Join(runDir, "*.kube")); len(others) > 0 {
		t.Logf("sysctls not checked: other kube beds are up (%v)", others)
		return
	}
	if still, _ := SavedSysctls(); still != nil {
		t.Errorf("sysctls still saved after the last kube bed: %v", still)
	}
	now, err := HostSysctls()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(now) != fmt.Sprint(saved) {
		t.Errorf("sysctls not restored:\n got %v\nwant %v", now, saved)
	}
}

// processes returns the PIDs of the processes whose command line starts
// with prefix (arguments separated by NULs).
func processes(prefix string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.HasPrefix(data, []byte(prefix)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

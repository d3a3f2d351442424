package testbed

// Kube nodes (Options.Kube): what a node needs to run containerd, the
// kubelet and kubeadm on this one kernel, as /work/shared/notes/kubeadm.md
// found ("Node catches"):
//   - its own PID namespace with tini as PID 1: killing that init kills every
//     process of the node, also pods, which live in network namespaces of
//     their own that `ip netns pids` does not list;
//   - entered with nsenter --net, not ip netns exec (which remounts /sys and
//     loses /sys/fs/cgroup): a fresh sysfs plus an rbind of the host's
//     cgroup tree;
//   - a root that pivot_root made, of shared propagation (volumes), with
//     plain directories (not overlay) at /var/lib/{kubelet,containerd,etcd}
//     and /var/log;
//   - its own cgroup root in every hierarchy, named by /etc/default/kubelet,
//     so that two kubelets do not share /kubepods;
//   - the host-wide sysctls the kubelet sets, saved by the first kube bed
//     and restored by the last one's Destroy (and by clean.sh).
// What a test killed before its Destroy ran leaves records under runDir,
// which clean.sh reads.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// runDir holds a record per kube node, <netns>.pid ("<host PID of its
	// init> <its start time>"), and one per kube bed, <bed ID>.kube.
	runDir = "/run/hoist-testbed"
	// sysctlFile holds the host's values of kubeSysctls ("name value"
	// lines) from before the first kube bed.
	sysctlFile = "/run/hoist-testbed-sysctl"
	cgroupTop  = "/sys/fs/cgroup"
)

// kubeSysctls are the sysctls a kubelet sets that are not per namespace
// (setupKernelTunables in pkg/kubelet/cm/container_manager_linux.go).
// kube-proxy's conntrack ones are per network namespace, or read-only
// (nf_conntrack_max) or refused (the hashsize module parameter) outside the
// host's network namespace.
var kubeSysctls = []string{
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
}

// kubeDirs are a kube node's directories that cannot be on its overlay
// root, with the name of the plain directory under the node's own one that
// is bind-mounted there.
var kubeDirs = []struct{ path, name string }{
	{"/var/lib/kubelet", "kubelet"},
	{"/var/lib/containerd", "containerd"},
	{"/var/lib/etcd", "etcd"},
	{"/var/log", "log"},
}

// KubeRootfs returns the Debian tree of kube nodes: BaseRootfs's packages
// plus what a kubeadm node needs besides the Kubernetes binaries (which
// come later, from hoist's image) and tini as PID 1. Made once, like
// BaseRootfs, in CacheDir()/bookworm-kube.
func KubeRootfs(ctx context.Context) (string, error) {
	return debootstrap(ctx, "bookworm-kube", "usr/bin/tini", strings.Join([]string{
		"openssh-server", "sudo", "iproute2", "procps", "ca-certificates",
		"iptables", "conntrack", "ethtool", "socat", "kmod", "ebtables",
		"util-linux", "mount", "tini",
	}, ","))
}

// SavedSysctls returns the host's values of the host-wide sysctls a kubelet
// changes, as saved before the first kube bed now up; nil when none is up
// (the last one's Destroy restored them). A test checks the restore with
// HostSysctls after Destroy.
func SavedSysctls() (map[string]string, error) {
	data, err := os.ReadFile(sysctlFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	saved := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			saved[name] = value
		}
	}
	return saved, nil
}

// HostSysctls returns the current values of the sysctls SavedSysctls keeps.
func HostSysctls() (map[string]string, error) {
	values := map[string]string{}
	for _, name := range kubeSysctls {
		data, err := os.ReadFile(sysctlPath(name))
		if err != nil {
			return nil, err
		}
		values[name] = strings.TrimSpace(string(data))
	}
	return values, nil
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// runLock serializes, across test processes, what beds share on the host.
func runLock() (unlock func(), err error) {
	lock, err := os.OpenFile("/run/hoist-testbed.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, err
	}
	return func() { lock.Close() }, nil
}

// kubeEnter saves the host's sysctls unless a kube bed did already (then
// they may be changed), and records the bed as a kube bed.
func (b *Bed) kubeEnter() error {
	unlock, err := runLock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(sysctlFile); errors.Is(err, os.ErrNotExist) {
		values, err := HostSysctls()
		if err != nil {
			return err
		}
		var lines []string
		for _, name := range kubeSysctls {
			lines = append(lines, name+" "+values[name]+"\n")
		}
		if err := os.WriteFile(sysctlFile+".tmp", []byte(strings.Join(lines, "")), 0o644); err != nil {
			return err
		}
		if err := os.Rename(sysctlFile+".tmp", sysctlFile); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(runDir, b.ID+".kube"), []byte(b.dir+"\n"), 0o644)
}

// kubeLeave drops the bed's record and, when it was the last kube bed,
// restores the saved sysctls. Its nodes are dead by then.
func (b *Bed) kubeLeave() error {
	unlock, err := runLock()
	if err != nil {
		return err
	}
	defer unlock()
	os.Remove(filepath.Join(runDir, b.ID+".kube"))
	if others, _ := filepath.Glob(filepath.Join(runDir, "*.kube")); len(others) > 0 {
		return nil
	}
	saved, err := SavedSysctls()
	if err != nil || saved == nil {
		return err
	}
	var errs []error
	for _, name := range kubeSysctls {
		if value, ok := saved[name]; ok {
			if err := os.WriteFile(sysctlPath(name), []byte(value), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s: %w", name, err))
			}
		}
	}
	if len(errs) == 0 {
		os.Remove(sysctlFile)
	}
	return errors.Join(errs...)
}

// prepareKubeNode adds to a new node's upper layer and directory what a
// kube node has besides a plain one.
func (b *Bed) prepareKubeNode(node *Node, subnet string, nodes int) error {
	root := filepath.Join(b.dir, node.Name)
	node.CgroupRoot = "/hoist-" + b.ID + "-" + node.Name
	for _, d := range kubeDirs {
		mode := os.FileMode(0o755)
		if d.name == "etcd" {
			mode = 0o700 // as etcd wants its data directory
		}
		if err := os.MkdirAll(filepath.Join(root, "disk", d.name), mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(node.Upper, "etc", "default"), 0o755); err != nil {
		return err
	}
	// Read by hoist when it starts the kubelet (Debian's kubeadm packaging).
	args := "KUBELET_EXTRA_ARGS=--cgroup-root=" + node.CgroupRoot + "\n"
	if err := os.WriteFile(filepath.Join(node.Upper, "etc", "default", "kubelet"), []byte(args), 0o644); err != nil {
		return err
	}
	// The kubelet reports it; the base tree has none, and nodes differ.
	id := make([]byte, 16)
	rand.Read(id)
	if err := os.WriteFile(filepath.Join(node.Upper, "etc", "machine-id"), []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	for i := 1; i <= nodes; i++ {
		hosts += fmt.Sprintf("%s.%d\tnode%d\n", subnet, 10+i, i)
	}
	return os.WriteFile(filepath.Join(node.Upper, "etc", "hosts"), []byte(hosts), 0o644)
}

// startKube starts a kube node: its PID, mount and UTS namespaces in its
// network namespace, its root, and tini running sshd. It returns once the
// node's init has recorded its host PID.
func (b *Bed) startKube(node Node) error {
	if err := makeCgroup(strings.TrimPrefix(node.CgroupRoot, "/")); err != nil {
		return err
	}
	root := filepath.Join(b.dir, node.Name)
	work, merged := filepath.Join(root, "work"), filepath.Join(root, "merged")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	record := filepath.Join(runDir, node.NetNS+".pid")
	os.Remove(record)
	lines := []string{
		"set -e",
		"export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		// PID 1 of the new namespace; /proc is still the host's, so
		// /proc/self/stat (read by the shell itself) gives its host PID
		// and start time.
		"read -r stat < /proc/self/stat",
		"set -- $stat",
		`echo "$1 ${22}" > ` + record,
		fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s", b.base, node.Upper, work, merged),
		"mount -t proc proc " + merged + "/proc",
		"mount -t sysfs sysfs " + merged + "/sys",
		"mount --rbind " + cgroupTop + " " + merged + cgroupTop,
		"mount --rbind /dev " + merged + "/dev",
		"mount -t tmpfs tmpfs " + merged + "/run",
		"mount -t tmpfs tmpfs " + merged + "/tmp",
	}
	for _, d := range kubeDirs {
		lines = append(lines,
			"mkdir -p "+merged+d.path,
			"mount --bind "+filepath.Join(root, "disk", d.name)+" "+merged+d.path)
	}
	lines = append(lines,
		"mkdir -p "+merged+"/run/sshd",
		"cd "+merged,
		// The old root ends up stacked on the new one, and goes.
		"pivot_root . .",
		"umount -l .",
		"cd /",
		"mount --make-rshared /",
		"hostname "+node.Name,
		"exec /usr/bin/tini -- "+sshd(node),
	)
	exited, err := b.startLogged(node, exec.Command("nsenter", "--net=/run/netns/"+node.NetNS,
		"unshare", "--mount", "--uts", "--pid", "--fork", "--propagation", "private",
		"sh", "-c", strings.Join(lines, "\n")))
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, _, ok := readRecord(record); ok {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s did not start: %s", node.Name, b.Log(node))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no record of its init in %s", node.Name, record)
		}
	}
}

// readRecord reads a node's record: its init's host PID and start time.
func readRecord(file string) (pid int, start string, ok bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, "", false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, "", false
	}
	pid, err = strconv.Atoi(f[0])
	return pid, f[1], err == nil && pid > 1
}

// procStart returns a process's start time and state, from /proc/PID/stat.
func procStart(pid int) (start string, state string, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", "", false
	}
	f := strings.Fields(s[i+1:]) // from field 3, the state
	if len(f) < 20 {
		return "", "", false
	}
	return f[19], f[0], true
}

// killPID1 kills a kube node's init, and so its PID namespace, if the
// record names a process still running (and not another one that got the
// PID since), waits for it, and drops the record.
func killPID1(ns string) {
	record := filepath.Join(runDir, ns+".pid")
	pid, start, ok := readRecord(record)
	if ok {
		alive := func() bool {
			s, state, ok := procStart(pid)
			return ok && s == start && state != "Z"
		}
		if alive() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		// A zombie init means the namespace's other processes are gone.
		for i := 0; i < 100 && alive(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Remove(record)
}

// cgroupHierarchies returns the mounted cgroup hierarchies: every v1 one
// and the unified one of a hybrid host, or the one of a v2 host.
func cgroupHierarchies() []string {
	if _, err := os.Stat(filepath.Join(cgroupTop, "cgroup.procs")); err == nil {
		return []string{cgroupTop}
	}
	var dirs []string
	entries, _ := os.ReadDir(cgroupTop)
	for _, e := range entries {
		dir := filepath.Join(cgroupTop, e.Name())
		if !e.IsDir() { // also skips the symlinks of joined ones (cpu -> cpu,cpuacct)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// makeCgroup makes the cgroup name at the top of every hierarchy, with the
// cpuset's CPUs and memory nodes of its parent.
func makeCgroup(name string) error {
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			mine, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil || strings.TrimSpace(string(mine)) != "" {
				continue
			}
			parent, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
			}
		}
	}
	return nil
}

// removeCgroups removes, in every hierarchy, the cgroups at the top whose
// name matches, with everything below them: it kills the processes in
// them, then removes them deepest first, and retries while processes are
// still dying.
func removeCgroups(match func(name string) bool) error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			if e.IsDir() && match(e.Name()) {
				if err := removeCgroupTree(filepath.Join(h, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(top string) error {
	var err error
	for try := 0; try < 50; try++ {
		var dirs []string
		var walk func(string)
		walk = func(dir string) {
			dirs = append(dirs, dir)
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.IsDir() {
					walk(filepath.Join(dir, e.Name()))
				}
			}
		}
		walk(top)
		for _, dir := range dirs {
			killCgroupProcs(dir)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children before parents
		for _, dir := range dirs {
			if e := syscall.Rmdir(dir); e != nil && !errors.Is(e, syscall.ENOENT) {
				err = fmt.Errorf("rmdir %s: %w", dir, e)
			}
		}
		if _, e := os.Stat(top); errors.Is(e, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func killCgroupProcs(dir string) {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(s.Text())); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Processes lists the command lines of the processes running in a kube
// node (its PID namespace), to check what a cluster left behind.
func (b *Bed) Processes(node Node) ([]string, error) {
	pid, _, ok := readRecord(filepath.Join(runDir, node.NetNS+".pid"))
	if !ok {
		return nil, fmt.Errorf("%s: not a running kube node", node.Name)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid_for_children", pid))
	if err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err != nil || l != ns {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		out = append(out, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	return out, nil
}

// Package testbed makes machines for end-to-end tests on this one machine:
// each node is a network namespace with its own address on a bridge, its own
// root filesystem (an overlay on a cached Debian tree) and its own sshd with
// its own host key. Create brings a bed up; Destroy, always deferred, takes
// every piece down. With Options.Kube the nodes can also run containerd, the
// kubelet and kubeadm (see kube.go).
package testbed

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Node is one machine of a bed.
type Node struct {
	Name  string
	IP    string
	NetNS string
	// Upper is the node's own layer of its root filesystem, as seen from
	// the host: what the node wrote is there.
	Upper string
	// CgroupRoot is a kube node's cgroup, e.g. "/hoist-<bed ID>-node1",
	// made in every hierarchy and named by the node's /etc/default/kubelet
	// (--cgroup-root). Empty unless Options.Kube.
	CgroupRoot string
}

// Bed is a set of nodes on a bridge.
type Bed struct {
	ID      string
	Nodes   []Node
	Gateway string // the host's address on the bridge
	dir     string
	bridge  string
	base    string
	kube    bool
}

// Options size a bed.
type Options struct {
	Nodes int
	// AuthorizedKey is the public key (one line) root accepts on every node.
	AuthorizedKey string
	// Base is the root filesystem the nodes share, read-only: BaseRootfs,
	// or KubeRootfs for Kube; empty takes the one that fits.
	Base string
	// Kube makes nodes that can run containerd, the kubelet and kubeadm:
	// each in its own PID namespace under tini, with a shared-propagation
	// root, plain directories for /var/lib/{kubelet,containerd,etcd} and
	// /var/log, and its own cgroup root (Node.CgroupRoot). The host-wide
	// sysctls the kubelet sets are saved and restored (SavedSysctls).
	Kube bool
}

// CacheDir keeps the Debian tree between runs, outside any checkout.
func CacheDir() string {
	if d := os.Getenv("HOIST_TESTBED_CACHE"); d != "" {
		return d
	}
	return "/var/cache/hoist-testbed"
}

// BaseRootfs returns a minimal Debian tree with sshd and sudo, made once
// with debootstrap (about 30 to 150 s and 250 MB) and reused afterwards.
// Test binaries run in parallel: the first makes it, under a lock, and the
// others wait for it.
func BaseRootfs(ctx context.Context) (string, error) {
	// The name changes with the package list, so that a cached tree without
	// a package is not taken for one with it.
	return debootstrap(ctx, "bookworm-sudo", "usr/bin/sudo", "openssh-server,iproute2,procps,ca-certificates,sudo")
}

// debootstrap makes CacheDir()/name once, with the packages in include;
// marker is a file of the finished tree.
func debootstrap(ctx context.Context, name, marker, include string) (string, error) {
	dir := filepath.Join(CacheDir(), name)
	ready := func() bool {
		_, err := os.Stat(filepath.Join(dir, marker))
		return err == nil
	}
	if ready() {
		return dir, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", errors.New("debootstrap is not installed (make deps installs it)")
	}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(CacheDir(), "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if ready() { // made while this one waited
		return dir, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+include, "bookworm", tmp, debianMirror())
	if out, err := cmd.CombinedOutput(); err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return "", fmt.Errorf("debootstrap: %v\n%s", err, tail)
	}
	// Host keys made by the package belong to no node: each makes its own.
	keys, _ := filepath.Glob(filepath.Join(tmp, "etc", "ssh", "ssh_host_*"))
	for _, k := range keys {
		os.Remove(k)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// debianMirror is the mirror apt uses here.
func debianMirror() string {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(strings.NewReader(string(data)))
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) >= 2 && fields[0] == "URIs:" && !strings.Contains(fields[1], "security") {
				return fields[1]
			}
			if len(fields) >= 3 && fields[0] == "deb" && !strings.Contains(fields[1], "security") {
				return fields[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

func sh(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Create brings up opts.Nodes nodes. On error, what was made is taken down.
func Create(ctx context.Context, opts Options) (bed *Bed, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a test bed needs root")
	}
	idBytes := make([]byte, 2)
	rand.Read(idBytes)
	id := hex.EncodeToString(idBytes)
	dir, err := os.MkdirTemp("", "hoist-testbed-"+id+"-")
	if err != nil {
		return nil, err
	}
	bed = &Bed{ID: id, dir: dir, bridge: "hbr" + id, base: opts.Base, kube: opts.Kube}
	defer func() {
		if err != nil {
			bed.Destroy()
			bed = nil
		}
	}()
	if bed.base == "" {
		rootfs := BaseRootfs
		if opts.Kube {
			rootfs = KubeRootfs
		}
		if bed.base, err = rootfs(ctx); err != nil {
			return bed, err
		}
	}
	if opts.Kube {
		if err := bed.kubeEnter(); err != nil {
			return bed, err
		}
	}
	subnet, err := bed.claimSubnet(ctx)
	if err != nil {
		return bed, err
	}
	if err := sh(ctx, "ip", "link", "set", bed.bridge, "up"); err != nil {
		return bed, err
	}
	for i := 1; i <= opts.Nodes; i++ {
		node, err := bed.addNode(ctx, i, subnet, opts)
		if err != nil {
			return bed, fmt.Errorf("node %d: %w", i, err)
		}
		bed.Nodes = append(bed.Nodes, node)
	}
	for _, node := range bed.Nodes {
		if err := waitPort(ctx, node.IP+":22", 20*time.Second); err != nil {
			return bed, fmt.Errorf("%s: sshd did not come up: %w", node.Name, err)
		}
	}
	return bed, nil
}

// claimSubnet gives the bed a /24 of 10.250.0.0/16 that no other bed
// uses, with the bridge holding its first address. Beds of test packages
// running at once choose under a lock, so they never meet.
func (b *Bed) claimSubnet(ctx context.Context) (string, error) {
	lock, err := os.OpenFile("/run/hoist-testbed.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return "", err
	}
	start, _ := rand.Int(rand.Reader, big.NewInt(250))
	for i := range int64(250) {
		subnet := fmt.Sprintf("10.250.%d", (start.Int64()+i)%250+2)
		if strings.Contains(string(out), " "+subnet+".") {
			continue
		}
		b.Gateway = subnet + ".1"
		if err := sh(ctx, "ip", "link", "add", b.bridge, "type", "bridge"); err != nil {
			return "", err
		}
		if err := sh(ctx, "ip", "addr", "add", b.Gateway+"/24", "dev", b.bridge); err != nil {
			return "", err
		}
		return subnet, nil
	}
	return "", errors.New("no free /24 left in 10.250.0.0/16")
}

func (b *Bed) addNode(ctx context.Context, i int, subnet string, opts Options) (Node, error) {
	node := Node{
		Name:  fmt.Sprintf("node%d", i),
		IP:    fmt.Sprintf("%s.%d", subnet, 10+i),
		NetNS: fmt.Sprintf("hoist-%s-%d", b.ID, i),
	}
	root := filepath.Join(b.dir, node.Name)
	node.Upper = filepath.Join(root, "upper")
	work, merged := filepath.Join(root, "work"), filepath.Join(root, "merged")
	for _, d := range []string{node.Upper, work, merged, filepath.Join(node.Upper, "etc", "ssh"), filepath.Join(node.Upper, "root", ".ssh")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return node, err
		}
	}
	// The upper layer's top is the node's /: users other than root must
	// get through it.
	os.Chmod(node.Upper, 0o755)
	os.Chmod(filepath.Join(node.Upper, "etc"), 0o755)
	os.Chmod(filepath.Join(node.Upper, "etc", "ssh"), 0o755)
	if err := sh(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(node.Upper, "etc", "ssh", "ssh_host_ed25519_key")); err != nil {
		return node, err
	}
	if err := os.WriteFile(filepath.Join(node.Upper, "root", ".ssh", "authorized_keys"), []byte(strings.TrimSpace(opts.AuthorizedKey)+"\n"), 0o600); err != nil {
		return node, err
	}
	if err := os.WriteFile(filepath.Join(node.Upper, "etc", "hostname"), []byte(node.Name+"\n"), 0o644); err != nil {
		return node, err
	}
	if b.kube {
		if err := b.prepareKubeNode(&node, subnet, opts.Nodes); err != nil {
			return node, err
		}
	}

	if err := sh(ctx, "ip", "netns", "add", node.NetNS); err != nil {
		return node, err
	}
	veth := fmt.Sprintf("hv%s%d", b.ID, i)
	steps := [][]string{
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.NetNS},
		{"ip", "link", "set", veth, "master", b.bridge},
		{"ip", "link", "set", veth, "up"},
		{"ip", "-n", node.NetNS, "link", "set", "lo", "up"},
		{"ip", "-n", node.NetNS, "addr", "add", node.IP + "/24", "dev", "eth0"},
		{"ip", "-n", node.NetNS, "link", "set", "eth0", "up"},
		{"ip", "-n", node.NetNS, "route", "add", "default", "via", b.Gateway},
	}
	for _, s := range steps {
		if err := sh(ctx, s...); err != nil {
			return node, err
		}
	}
	return node, b.start(node)
}

// start starts the node's "machine": its mount namespace, root filesystem
// and sshd.
func (b *Bed) start(node Node) error {
	if b.kube {
		return b.startKube(node)
	}
	root := filepath.Join(b.dir, node.Name)
	work, merged := filepath.Join(root, "work"), filepath.Join(root, "merged")
	// The node's own mount namespace: its root is an overlay of the base
	// tree, and sshd runs chrooted in it, listening on the node's address.
	script := strings.Join([]string{
		"set -e",
		fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s", b.base, node.Upper, work, merged),
		"mount -t proc proc " + merged + "/proc",
		"mount -t sysfs sysfs " + merged + "/sys",
		"mount --rbind /dev " + merged + "/dev",
		"mount -t tmpfs tmpfs " + merged + "/run",
		"mount -t tmpfs tmpfs " + merged + "/tmp",
		"mkdir -p " + merged + "/run/sshd",
		"hostname " + node.Name,
		"exec chroot " + merged + " " + sshd(node),
	}, "\n")
	_, err := b.startLogged(node, exec.Command("ip", "netns", "exec", node.NetNS, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script))
	return err
}

// sshd is the node's sshd command: in the foreground, on the node's
// address, with the node's own host key.
func sshd(node Node) string {
	return "/usr/sbin/sshd -D -e -o ListenAddress=" + node.IP +
		" -o HostKey=/etc/ssh/ssh_host_ed25519_key -o PermitRootLogin=prohibit-password -o UsePAM=no"
}

// startLogged starts the command that is a node's machine, its output
// appended to the node's log (Log); the channel closes when it exits.
func (b *Bed) startLogged(node Node, cmd *exec.Cmd) (<-chan struct{}, error) {
	logFile, err := os.OpenFile(filepath.Join(b.dir, node.Name, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(exited) }()
	return exited, nil
}

// Crash kills every process of a node, as a machine that dies: its sshd,
// the sessions in flight, its daemons.
func (b *Bed) Crash(node Node) error {
	if b.kube {
		// As a reboot: its PID namespace dies with every process in it,
		// pods included, and its cgroups go.
		killPID1(node.NetNS)
		killNetNS(node.NetNS)
		name := strings.TrimPrefix(node.CgroupRoot, "/")
		return removeCgroups(func(s string) bool { return s == name })
	}
	killNetNS(node.NetNS)
	return nil
}

// Restart brings a crashed node back, with the files it had written, and
// waits for its sshd.
func (b *Bed) Restart(ctx context.Context, node Node) error {
	if err := b.start(node); err != nil {
		return err
	}
	return waitPort(ctx, net.JoinHostPort(node.IP, "22"), 10*time.Second)
}

func waitPort(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log returns a node's sshd output, for test failures.
func (b *Bed) Log(node Node) string {
	data, _ := os.ReadFile(filepath.Join(b.dir, node.Name, "sshd.log"))
	return string(data)
}

// Destroy stops every process of the bed's nodes and removes the
// namespaces, the bridge and the files. It tolerates what is already gone.
func (b *Bed) Destroy() error {
	var errs []error
	if b.kube {
		// Each node's PID namespace: its init and, with it, every process
		// of the node, also those in other network namespaces (pods).
		records, _ := filepath.Glob(filepath.Join(runDir, "hoist-"+b.ID+"-*.pid"))
		for _, r := range records {
			killPID1(strings.TrimSuffix(filepath.Base(r), ".pid"))
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		ns := e.Name()
		if !strings.HasPrefix(ns, "hoist-"+b.ID+"-") {
			continue
		}
		killNetNS(ns)
		if err := sh(context.Background(), "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := net.InterfaceByName(b.bridge); err == nil {
		if err := sh(context.Background(), "ip", "link", "del", b.bridge); err != nil {
			errs = append(errs, err)
		}
	}
	if b.kube {
		if err := removeCgroups(func(s string) bool { return strings.HasPrefix(s, "hoist-"+b.ID+"-") }); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(b.dir); err != nil {
		errs = append(errs, err)
	}
	if b.kube {
		if err := b.kubeLeave(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNetNS kills every process in a network namespace and waits for them
// to be gone.
func killNetNS(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	}
	for i := 0; i < 50; i++ {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

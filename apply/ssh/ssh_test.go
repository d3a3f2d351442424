package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sshd is a real OpenSSH server on loopback, for root with a key.
type sshd struct {
	port     int
	dir      string
	key      string            // client private key
	hostKeys map[string]string // key type (ed25519, ecdsa, rsa) => private key file
	pid      int
}

// startSSHD starts an sshd with one host key, of type ed25519.
func startSSHD(t *testing.T) *sshd {
	t.Helper()
	return startSSHDWith(t, "ed25519")
}

// startSSHDWith starts an sshd with a host key of each type given (as
// ssh-keygen -t names them).
func startSSHDWith(t *testing.T, hostKeyTypes ...string) *sshd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a real sshd (CI runs as root)")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Fatal("openssh-server is not installed (make deps installs it)")
	}
	dir := t.TempDir()
	s := &sshd{dir: dir, key: filepath.Join(dir, "client"), hostKeys: map[string]string{}}
	var hostKeyLines string
	for _, typ := range hostKeyTypes {
		file := filepath.Join(dir, "host_"+typ)
		keygen(t, typ, file, "")
		s.hostKeys[typ] = file
		hostKeyLines += "HostKey " + file + "\n"
	}
	keygen(t, "ed25519", s.key, "")
	keygen(t, "ed25519", filepath.Join(dir, "locked"), "open sesame")
	var auth []byte
	for _, k := range []string{"client.pub", "locked.pub"} {
		pub, _ := os.ReadFile(filepath.Join(dir, k))
		auth = append(auth, pub...)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), auth, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
%sPidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
`, s.port, hostKeyLines, dir, dir)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	t.Cleanup(func() {
		signalTree(s.pid, syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port)); err == nil {
			c.Close()
			return s
		}
		if i > 100 {
			t.Fatalf("sshd did not start: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keygen makes a key pair of type typ (as ssh-keygen -t names it): file
// and file.pub.
func keygen(t *testing.T, typ, file, passphrase string) {
	t.Helper()
	args := []string{"-q", "-t", typ, "-N", passphrase, "-f", file}
	if typ == "rsa" {
		args = append(args, "-b", "2048") // the default 3072 bits is slow to make
	}
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
}

func (s *sshd) config(t *testing.T) Config {
	return Config{Host: "127.0.0.1", Port: s.port, User: "root", PrivateKey: s.key,
		KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), AcceptNew: true, DialTimeout: 5 * time.Second}
}

func run(t *testing.T, e Executor, cmd string) string {
	t.Helper()
	var out bytes.Buffer
	if err := e.Run(context.Background(), cmd, nil, &out); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out.String()
}

func TestKeyAuthAndKnownHosts(t *testing.T) {
	s := startSSHD(t)
	cfg := s.config(t)
	e, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := run(t, e, "id -u"); got != "0\n" {
		t.Errorf("id -u = %q", got)
	}
	// The key was recorded on first use; now it is required.
	data, _ := os.ReadFile(cfg.KnownHosts)
	if !strings.Contains(string(data), fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", s.port)) {
		t.Errorf("known_hosts = %q", data)
	}
	if info, _ := os.Stat(cfg.KnownHosts); info.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v", info.Mode())
	}
	cfg.AcceptNew = false
	e2, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("known host refused: %v", err)
	}
	e2.Close()

	// stdin in, stdout out, quoting kept.
	var out bytes.Buffer
	file := filepath.Join(s.dir, "it's here")
	if err := e.Run(context.Background(), "cat > \""+file+"\" && cat \""+file+"\"", strings.NewReader("payload\n"), &out); err != nil || out.String() != "payload\n" {
		t.Errorf("stdin round trip: %q %v", out.String(), err)
	}
	// A failing command names the host, the status and its stderr.
	err = e.Run(context.Background(), "echo oops >&2; exit 3", nil, nil)
	if err == nil || err.Error() != fmt.Sprintf("127.0.0.1:%d: exit status 3: oops", s.port) {
		t.Errorf("failure: %v", err)
	}
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Status != 3 || exit.Stderr != "oops" {
		t.Errorf("the status is not an ExitError: %#v", err)
	}
	// Cancelling stops a long command.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.Run(ctx, "sleep 30", nil, nil); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("cancel: %v after %s", err, time.Since(start))
	}
}

func TestHostKeyRefusals(t *testing.T) {
	s := startSSHD(t)
	cfg := s.config(t)
	cfg.AcceptNew = false
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), "--accept-new-host-keys") {
		t.Errorf("unknown host: %v", err)
	}
	// Another key recorded for this address: the key changed.
	other := filepath.Join(t.TempDir(), "other")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).Run()
	pub, _ := os.ReadFile(other + ".pub")
	fields := strings.Fields(string(pub))
	os.WriteFile(cfg.KnownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", s.port, fields[0], fields[1])), 0o600)
	for _, accept := range []bool{false, true} {
		cfg.AcceptNew = accept
		_, err := Dial(context.Background(), cfg)
		if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), cfg.KnownHosts+":1") {
			t.Errorf("changed key (accept-new %v): %v", accept, err)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	s := startSSHD(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"wrong password", func(c *Config) { c.PrivateKey, c.Password = "", "wrong" }, "authentication failed for user root (password)"},
		{"encrypted key without passphrase", func(c *Config) { c.PrivateKey = filepath.Join(s.dir, "locked") }, "is encrypted: give its passphrase"},
		{"missing key", func(c *Config) { c.PrivateKey = filepath.Join(s.dir, "nope") }, "private key: open"},
		{"unreachable", func(c *Config) { c.Port = 1 }, "unreachable"},
		{"no known_hosts", func(c *Config) { c.KnownHosts = "" }, "host keys must be checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s.config(t)
			tc.edit(&cfg)
			start := time.Now()
			_, err := Dial(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %s: failures must be fast", time.Since(start))
			}
		})
	}
	cfg := s.config(t)
	cfg.PrivateKey, cfg.Passphrase = filepath.Join(s.dir, "locked"), "open sesame"
	e, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("key with passphrase: %v", err)
	}
	e.Close()
}

func TestPoolAndForEach(t *testing.T) {
	s := startSSHD(t)
	cfg := s.config(t)
	p := NewPool()
	defer p.Close()
	a, err := p.Get(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Get(context.Background(), cfg)
	if a != b {
		t.Errorf("the pool dialled twice")
	}
	bad := cfg
	bad.Port = 1
	errs := ForEach(context.Background(), []Config{cfg, bad, cfg}, 2, func(ctx context.Context, c Config) error {
		e, err := p.Get(ctx, c)
		if err != nil {
			return err
		}
		return e.Run(ctx, "true", nil, nil)
	})
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "127.0.0.1:1: unreachable") {
		t.Errorf("errs = %v", errs)
	}
}

// TestForEachOrder: with one job, items run one after the other in their
// order (masters join and upgrade in the Clusterfile's order); with more,
// never more than jobs at once.
func TestForEachOrder(t *testing.T) {
	items := []int{0, 1, 2, 3, 4, 5, 6, 7}
	for _, jobs := range []int{1, 3} {
		var mu sync.Mutex
		var order []int
		running, most := 0, 0
		ForEach(context.Background(), items, jobs, func(_ context.Context, i int) error {
			mu.Lock()
			order = append(order, i)
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			return nil
		})
		if most > jobs || (jobs == 1 && fmt.Sprint(order) != fmt.Sprint(items)) {
			t.Errorf("jobs %d: order %v, %d at once", jobs, order, most)
		}
	}
}

// localExecutor dials an address of this machine, which gives the
// executor that runs commands without SSH.
func localExecutor(t *testing.T) (Executor, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: adds an address to this machine (CI runs as root)")
	}
	// An address of this machine that no other one has, on lo (no kernel
	// module needed): it is not a loopback address, so hoist sees itself.
	host := fmt.Sprintf("10.253.%d.%d", os.Getpid()%250, 1+os.Getpid()/250%250)
	if out, err := exec.Command("ip", "addr", "add", host+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("adding %s to lo: %v %s", host, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "addr", "del", host+"/32", "dev", "lo").Run() })
	e, err := Dial(context.Background(), Config{Host: host, Port: 22, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.(*local); !ok {
		t.Fatalf("%s is this machine, but got %T", host, e)
	}
	return e, host
}

func TestLocalExecutor(t *testing.T) {
	e, host := localExecutor(t)
	if got := run(t, e, "echo local"); got != "local\n" {
		t.Errorf("got %q", got)
	}
	if err := e.Run(context.Background(), "exit 4", nil, nil); err == nil || !strings.Contains(err.Error(), host+": exit status 4") {
		t.Errorf("err = %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(`it's "quoted" $HOME`)).Output()
	if err != nil || string(out) != `it's "quoted" $HOME` {
		t.Errorf("%q %v", out, err)
	}
}

// signalTree signals a process and its descendants.
func signalTree(pid int, sig syscall.Signal) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[0]
		todo = append(todo[1:], children[p]...)
		syscall.Kill(p, sig)
	}
}

// TestKeepAliveDropsAFrozenHost: a host that stops answering (frozen, off
// the network: no reset comes) fails the command in flight instead of
// hanging it.
func TestKeepAliveDropsAFrozenHost(t *testing.T) {
	s := startSSHD(t)
	cfg := s.config(t)
	cfg.KeepAlive = 200 * time.Millisecond
	e, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	run(t, e, "true")
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), "sleep 60", nil, nil) }()
	time.Sleep(300 * time.Millisecond)
	signalTree(s.pid, syscall.SIGSTOP)
	defer signalTree(s.pid, syscall.SIGCONT)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stopped answering keepalives") {
			t.Errorf("err = %v", err)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("the command hung on a frozen host")
	}
}

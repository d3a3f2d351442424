// Package ssh is how hoist reaches the machines of a cluster: SSH sessions
// with host keys checked against hoist's own known_hosts, key, password or
// agent authentication, sudo for users other than root, commands that never
// show on a command line of the host, one connection per host reused by
// every command, and bounded parallel fan-out. A host that is this machine
// is reached without SSH.
package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hostkeys "github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Config is how to reach one host.
type Config struct {
	Host       string // address
	Port       int
	User       string
	Password   string
	PrivateKey string // path of a private key file
	Passphrase string
	// KnownHosts is hoist's known_hosts file; AcceptNew records the key of a
	// host seen for the first time (StrictHostKeyChecking=accept-new). A
	// changed key is always refused.
	KnownHosts  string
	AcceptNew   bool
	DialTimeout time.Duration // default 10 s
	// KeepAlive is how often an idle-looking connection is probed; a host
	// that misses three probes in a row is dropped, failing its commands,
	// rather than hanging the apply (a machine that froze or left the
	// network sends no reset). Default 15 s.
	KeepAlive time.Duration
}

// Executor runs commands on one host.
type Executor interface {
	// Run runs a shell command; stdin, stdout and stderr may be nil. Its
	// error names the host and, on failure, ends with the command's stderr.
	// The command may hold secrets: it is never on a command line of the
	// host (see bootstrap), but what it passes to its own commands as
	// arguments is.
	Run(ctx context.Context, command string, stdin io.Reader, stdout io.Writer) error
	Close() error
}

// Error is a failure to reach or run on a host.
type Error struct {
	Host string
	Err  error
}

func (e *Error) Error() string { return e.Host + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrHostKeyChanged is returned (wrapped) when a host presents a key other
// than the one recorded.
var ErrHostKeyChanged = errors.New("host key changed")

// ErrUnknownHost is returned (wrapped) for a host not in known_hosts when
// new keys are not accepted.
var ErrUnknownHost = errors.New("host key unknown")

// Dial connects to a host, or returns a local executor when the host is an
// address of this machine.
func Dial(ctx context.Context, cfg Config) (Executor, error) {
	if isLocal(cfg.Host) {
		return &local{host: cfg.Host}, nil
	}
	return dialSSH(ctx, cfg)
}

func addr(cfg Config) string { return net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)) }

func dialSSH(ctx context.Context, cfg Config) (*Client, error) {
	hostport := addr(cfg)
	fail := func(err error) error { return &Error{Host: hostport, Err: err} }
	auth, err := authMethods(cfg)
	if err != nil {
		return nil, fail(err)
	}
	hostKey, hostKeyAlgorithms, err := hostKeyCheck(cfg, hostport)
	if err != nil {
		return nil, fail(err)
	}
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	dialer := net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fail(fmt.Errorf("unreachable: %w", err))
	}
	// The handshake has its own deadline: a port that accepts but never
	// speaks SSH must not hang an apply.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, hostport, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   hostKey,
		HostKeyAlgorithms: hostKeyAlgorithms,
		Timeout:           timeout,
	})
	if err != nil {
		conn.Close()
		var negotiation *ssh.AlgorithmNegotiationError
		switch {
		case errors.Is(err, ErrHostKeyChanged), errors.Is(err, ErrUnknownHost):
			return nil, fail(unwrapHostKey(err))
		case errors.As(err, &negotiation) && negotiation.What == "host key":
			// Only the types of the recorded keys were offered: a host
			// that has none of them cannot prove it is the one recorded.
			return nil, fail(&hostKeyError{err: ErrHostKeyChanged, msg: fmt.Sprintf(
				"host key changed: the host has no key of the types %s records for it (%s), only %s; if the machine was reinstalled, delete its lines and apply again",
				cfg.KnownHosts, strings.Join(hostKeyAlgorithms, ", "), strings.Join(negotiation.RequestedAlgorithms, ", "))})
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fail(fmt.Errorf("authentication failed for user %s (%s)", cfg.User, authName(cfg)))
		}
		return nil, fail(fmt.Errorf("ssh handshake: %w", err))
	}
	_ = conn.SetDeadline(time.Time{})
	client := &Client{host: hostport, client: ssh.NewClient(c, chans, reqs), sudo: cfg.User != "root", closed: make(chan struct{})}
	interval := cfg.KeepAlive
	if interval == 0 {
		interval = 15 * time.Second
	}
	go client.keepAlive(interval)
	return client, nil
}

// keepAlive probes the host every interval and closes the connection when
// three probes in a row go unanswered.
func (c *Client) keepAlive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-tick.C:
		}
		answered := make(chan error, 1)
		go func() {
			// OpenSSH answers this unknown request with a failure: any
			// answer means the host is alive.
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case <-c.closed:
			return
		case err := <-answered:
			if err != nil {
				return // the connection is gone already
			}
		case <-time.After(3 * interval):
			c.lost.Store(true)
			c.client.Close()
			return
		}
	}
}

// unwrapHostKey keeps the host key error but drops the handshake prefix.
func unwrapHostKey(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		var hk *hostKeyError
		if errors.As(e, &hk) {
			return hk
		}
	}
	return err
}

func authName(cfg Config) string {
	switch {
	case cfg.PrivateKey != "":
		return "key " + cfg.PrivateKey
	case cfg.Password != "":
		return "password"
	}
	return "ssh agent"
}

func authMethods(cfg Config) ([]ssh.AuthMethod, error) {
	switch {
	case cfg.PrivateKey != "":
		data, err := os.ReadFile(cfg.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
		var signer ssh.Signer
		if cfg.Passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase(data, []byte(cfg.Passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey(data)
		}
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("private key %s is encrypted: give its passphrase", cfg.PrivateKey)
		}
		if err != nil {
			return nil, fmt.Errorf("private key %s: %w", cfg.PrivateKey, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, nil
	case cfg.Password != "":
		return []ssh.AuthMethod{ssh.Password(cfg.Password)}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, errors.New("no password, no private key, and no ssh agent (SSH_AUTH_SOCK)")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("ssh agent: %w", err)
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(agent.NewClient(conn).Signers)}, nil
}

type hostKeyError struct {
	msg string
	err error
}

func (e *hostKeyError) Error() string { return e.msg }
func (e *hostKeyError) Unwrap() error { return e.err }

// knownHostsMu serialises reads of known_hosts files and appends to them
// within the process.
var knownHostsMu sync.Mutex

// hostKeyCheck returns the check of the key of the host at hostport
// against known_hosts, and the host key algorithms to ask it for: those of
// the keys known_hosts records for it. A host has several keys (ed25519,
// ECDSA, RSA) and presents the one of the first type the client asks for;
// x/crypto/ssh asks for ECDSA first, OpenSSH for ed25519, so a host recorded
// by OpenSSH (or ssh-keyscan) would present a key of another type than the
// recorded one, which looks like a changed key. No algorithms (any) for a
// host that known_hosts does not know.
//
// skeema/knownhosts reads the recorded keys out of x/crypto's check (which
// does not tell them otherwise), so the algorithms follow the same matching
// as the check itself: hashed names, [host]:port, patterns. It gives the
// certificate algorithm for an @cert-authority line; a host that presents a
// plain key still gets its plain-key line matched.
func hostKeyCheck(cfg Config, hostport string) (ssh.HostKeyCallback, []string, error) {
	if cfg.KnownHosts == "" {
		return nil, nil, errors.New("no known_hosts file: host keys must be checked")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.KnownHosts), 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(cfg.KnownHosts, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	f.Close()
	knownHostsMu.Lock()
	db, err := hostkeys.NewDB(cfg.KnownHosts)
	knownHostsMu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	algorithms := db.HostKeyAlgorithms(hostport)
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		knownHostsMu.Lock()
		defer knownHostsMu.Unlock()
		// Read again: another dial may have recorded this host since.
		db, err := hostkeys.NewDB(cfg.KnownHosts)
		if err != nil {
			return err
		}
		err = db.HostKeyCallback()(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		if !errors.As(err, &keyErr) {
			return err
		}
		if len(keyErr.Want) > 0 {
			// Name the line of the presented key's type, if one is.
			want := keyErr.Want[0]
			for _, w := range keyErr.Want {
				if w.Key.Type() == key.Type() {
					want = w
					break
				}
			}
			return &hostKeyError{err: ErrHostKeyChanged, msg: fmt.Sprintf(
				"host key changed: the host presents %s %s, but %s records another (%s:%d); if the machine was reinstalled, delete that line and apply again",
				key.Type(), ssh.FingerprintSHA256(key), cfg.KnownHosts, want.Filename, want.Line)}
		}
		if !cfg.AcceptNew {
			return &hostKeyError{err: ErrUnknownHost, msg: fmt.Sprintf(
				"host key unknown (%s %s): add it to %s, or apply with --accept-new-host-keys",
				key.Type(), ssh.FingerprintSHA256(key), cfg.KnownHosts)}
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
		af, err := os.OpenFile(cfg.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer af.Close()
		_, err = af.WriteString(line + "\n")
		return err
	}, algorithms, nil
}

// Client is an SSH connection to one host, shared by its commands.
type Client struct {
	host      string
	client    *ssh.Client
	sudo      bool
	lost      atomic.Bool // dropped for missing keepalives
	closed    chan struct{}
	closeOnce sync.Once
}

// Run runs command with sh on the host, through sudo when the user is not
// root. The command goes on the session's stdin, ahead of stdin, never on
// its command line (see bootstrap). Cancelling ctx closes the session.
func (c *Client) Run(ctx context.Context, command string, stdin io.Reader, stdout io.Writer) error {
	session, err := c.client.NewSession()
	if err != nil {
		if c.lost.Load() {
			return &Error{Host: c.host, Err: errors.New("connection lost: the host stopped answering keepalives")}
		}
		return &Error{Host: c.host, Err: fmt.Errorf("opening a session: %w", err)}
	}
	defer session.Close()
	var stderr bytes.Buffer
	session.Stdin, session.Stdout, session.Stderr = scriptStdin(command, stdin), stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- session.Run(commandLine(c.sudo)) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		session.Signal(ssh.SIGKILL)
		session.Close()
		return &Error{Host: c.host, Err: ctx.Err()}
	}
	if err != nil {
		if c.lost.Load() {
			return &Error{Host: c.host, Err: errors.New("connection lost: the host stopped answering keepalives")}
		}
		return &Error{Host: c.host, Err: commandError(err, stderr.String())}
	}
	return nil
}

// Close closes the connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.client.Close()
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Status int
	Stderr string // its end, trimmed
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("exit status %d", e.Status)
	}
	return fmt.Sprintf("exit status %d: %s", e.Status, e.Stderr)
}

func commandError(err error, stderr string) error {
	stderr = strings.TrimSpace(stderr)
	if len(stderr) > 2000 {
		stderr = "..." + stderr[len(stderr)-2000:]
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		return &ExitError{Status: exit.ExitStatus(), Stderr: stderr}
	}
	var exitLocal *exec.ExitError
	if errors.As(err, &exitLocal) {
		return &ExitError{Status: exitLocal.ExitCode(), Stderr: stderr}
	}
	if stderr != "" {
		return fmt.Errorf("%w: %s", err, stderr)
	}
	return err
}

// Quote quotes s as one word for sh.
func Quote(s string) string { return shellQuote(s) }

// Command is a command line for sh of the words of args, each quoted.
func Command(args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// local runs commands on this machine, for a host that is this machine.
type local struct{ host string }

// Local returns an executor of commands on this machine, with the same
// contract as a host's: the command never on a command line.
func Local() Executor { return &local{host: "localhost"} }

// Run runs command as Client.Run does, the command on stdin (see
// bootstrap). Cancelling ctx kills the command's process group: sh runs the
// script's commands as its children, which would otherwise outlive it and
// hold its output open.
func (l *local) Run(ctx context.Context, command string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", bootstrap)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = scriptStdin(command, stdin), stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return &Error{Host: l.host, Err: ctx.Err()}
		}
		return &Error{Host: l.host, Err: commandError(err, stderr.String())}
	}
	return nil
}

func (l *local) Close() error { return nil }

// isLocal tells whether host is an address of this machine (loopback
// excluded: tests reach sshd on loopback on purpose).
func isLocal(host string) bool {
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// WriteFile puts data in a file on the host, readable by root only (keys,
// kubeconfigs, the journal), whole or not at all. The data goes through
// stdin: it is never part of a command line.
func WriteFile(ctx context.Context, e Executor, file string, data []byte) error {
	return e.Run(ctx, fmt.Sprintf("mkdir -p %s && umask 077 && cat > %s.tmp && mv -f %[2]s.tmp %[2]s", Quote(path.Dir(file)), Quote(file)), bytes.NewReader(data), nil)
}

// Output runs command and returns its stdout.
func Output(ctx context.Context, e Executor, command string) ([]byte, error) {
	var out bytes.Buffer
	err := e.Run(ctx, command, nil, &out)
	return out.Bytes(), err
}

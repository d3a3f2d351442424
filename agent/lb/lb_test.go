package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests run real balancers on loopback in front of real HTTPS servers.
// Each backend serves /readyz (200 or 500, as the test sets it) and
// /whoami, which answers its name; its certificate's common name is that
// name too, so a client that reads a name both from the certificate it
// verified and from the answer knows that TLS went through the balancer
// untouched, to that backend.

// testCA signs the backends' certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert, key, pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue is a server certificate for loopback, named name.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	return ca.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	})
}

// sign is a certificate of a new key, made from tmpl's subject, names and
// extended key usages.
func (ca *testCA) sign(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// testBackend is an API server as far as the balancer can tell.
type testBackend struct {
	t     *testing.T
	name  string
	addr  string // kept when it stops, to start again on the same port
	cert  tls.Certificate
	plain bool // HTTP without TLS
	ready atomic.Bool

	mu  sync.Mutex
	srv *http.Server
}

func newBackend(t *testing.T, ca *testCA, name string) *testBackend {
	t.Helper()
	tb := &testBackend{t: t, name: name, cert: ca.issue(t, name)}
	tb.ready.Store(true)
	tb.start()
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBackend) start() {
	tb.t.Helper()
	addr := tb.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !tb.ready.Load() {
			http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, tb.name) })
	// The handshakes of checks that do not trust it are no news.
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	if !tb.plain {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{tb.cert}})
	}
	go srv.Serve(ln)
	tb.mu.Lock()
	tb.srv = srv
	tb.mu.Unlock()
}

// stop closes the listener and every connection.
func (tb *testBackend) stop() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.srv != nil {
		tb.srv.Close()
		tb.srv = nil
	}
}

// logBuffer is a balancer's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// writeBackends replaces file with one listing the backends, as hoist
// writes it: a new file renamed over the old.
func writeBackends(t *testing.T, file string, backends ...*testBackend) {
	t.Helper()
	var lines []string
	for _, tb := range backends {
		lines = append(lines, tb.addr+" # "+tb.name)
	}
	writeFile(t, file, strings.Join(lines, "\n")+"\n")
}

func writeFile(t testing.TB, file, text string) {
	t.Helper()
	tmp := file + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// startLB runs a balancer in front of backends with short periods.
func startLB(t *testing.T, cfg Config, backends ...*testBackend) (*Balancer, *logBuffer) {
	t.Helper()
	if cfg.Backends == "" {
		cfg.Backends = filepath.Join(t.TempDir(), "backends")
		writeBackends(t, cfg.Backends, backends...)
	}
	logs := &logBuffer{}
	cfg.Listen, cfg.Log = "127.0.0.1:0", logs
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.HealthInterval, 50*time.Millisecond)
	def(&cfg.HealthTimeout, 2*time.Second)
	def(&cfg.DialTimeout, 2*time.Second)
	def(&cfg.ReloadInterval, 20*time.Millisecond)
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		if t.Failed() {
			t.Logf("balancer log:\n%s", logs)
		}
	})
	return b, logs
}

// eventually polls cond until it holds, failing the test at a deadline
// far beyond what the condition takes on a loaded machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// healthy is whether the balancer counts tb healthy.
func healthy(b *Balancer, tb *testBackend) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.backends {
		if be.addr.String() == tb.addr {
			return be.healthy
		}
	}
	panic(tb.name + " is not a backend")
}

// client is an HTTPS client of the balancer that trusts ca only and opens
// a connection a request.
func client(ca *testCA) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
			DisableKeepAlives: true,
		},
	}
}

// whoami asks, through b, which backend answers, checking that the
// certificate the client verified is that backend's.
func whoami(c *http.Client, b *Balancer) (string, error) {
	resp, err := c.Get("https://" + b.Addr().String() + "/whoami")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != string(body) {
		return "", fmt.Errorf("%s answered with the certificate of %s", body, cn)
	}
	return string(body), nil
}

// answers makes n requests through b, each of which must succeed, and
// counts who answered.
func answers(t *testing.T, c *http.Client, b *Balancer, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		name, err := whoami(c, b)
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	return got
}

// heldConn is a client's keep-alive connection through the balancer.
type heldConn struct {
	conn *tls.Conn
	r    *bufio.Reader
	name string // who answered first
}

func hold(t *testing.T, ca *testCA, b *Balancer) *heldConn {
	t.Helper()
	conn, err := tls.Dial("tcp", b.Addr().String(), &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	h := &heldConn{conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	if h.name, err = h.ask(); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *heldConn) ask() (string, error) {
	h.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(h.conn, "GET /whoami HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// closed tells whether the other end closed the connection, waiting a
// little for it.
func (h *heldConn) closed() bool {
	h.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := h.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// holdOnEach holds a connection to each backend.
func holdOnEach(t *testing.T, ca *testCA, b *Balancer, backends ...*testBackend) map[string]*heldConn {
	t.Helper()
	held := map[string]*heldConn{}
	eventually(t, "holding a connection to each backend", func() bool {
		h := hold(t, ca, b)
		if held[h.name] == nil {
			held[h.name] = h
		} else {
			h.conn.Close()
		}
		return len(held) == len(backends)
	})
	return held
}

// TestSpreadsTraffic: connections go to every backend, each one's TLS
// end to end (the client verifies the backend's own certificate through
// the balancer).
func TestSpreadsTraffic(t *testing.T) {
	ca := newCA(t)
	backends := []*testBackend{newBackend(t, ca, "m1"), newBackend(t, ca, "m2"), newBackend(t, ca, "m3")}
	b, logs := startLB(t, Config{}, backends...)
	c := client(ca)
	seen := map[string]int{}
	eventually(t, "answered by every backend", func() bool {
		for name, n := range answers(t, c, b, 3) {
			seen[name] += n
		}
		return len(seen) == 3
	})
	if !strings.Contains(logs.String(), "listening on "+b.Addr().String()) {
		t.Errorf("the log does not say where the balancer listens:\n%s", logs)
	}
}

// TestUnhealthyBackend: a backend whose /readyz fails gets no new
// connections and loses the ones it had, the others keep theirs; it gets
// connections again once /readyz answers 200.
func TestUnhealthyBackend(t *testing.T) {
	ca := newCA(t)
	m1, m2, m3 := newBackend(t, ca, "m1"), newBackend(t, ca, "m2"), newBackend(t, ca, "m3")
	b, logs := startLB(t, Config{}, m1, m2, m3)
	held := holdOnEach(t, ca, b, m1, m2, m3)

	m3.ready.Store(false)
	eventually(t, "m3 unhealthy", func() bool { return !healthy(b, m3) })
	eventually(t, "m3's connection closed", held["m3"].closed)
	for _, name := range []string{"m1", "m2"} {
		if got, err := held[name].ask(); got != name || err != nil {
			t.Errorf("the connection to %s was cut when m3 went down: %q %v", name, got, err)
		}
	}
	if got := answers(t, client(ca), b, 30); got["m3"] > 0 || got["m1"] == 0 || got["m2"] == 0 {
		t.Errorf("with m3 unhealthy, answered by %v", got)
	}
	if !strings.Contains(logs.String(), "backend "+m3.addr+" unhealthy: GET https://"+m3.addr+"/readyz: 500 Internal Server Error; closing its ") {
		t.Errorf("the log does not say m3 went down and why:\n%s", logs)
	}

	m3.ready.Store(true)
	eventually(t, "m3 answering again", func() bool { return answers(t, client(ca), b, 3)["m3"] > 0 })
	if !strings.Contains(logs.String(), "backend "+m3.addr+" healthy") {
		t.Errorf("the log does not say m3 came back:\n%s", logs)
	}
}

// TestStoppedBackend: while a backend is stopped not one connection
// fails (a refused dial tries the next backend), and it is used again
// once it is back.
func TestStoppedBackend(t *testing.T) {
	ca := newCA(t)
	m1, m2 := newBackend(t, ca, "m1"), newBackend(t, ca, "m2")
	b, _ := startLB(t, Config{}, m1, m2)
	c := client(ca)

	m2.stop()
	if got := answers(t, c, b, 20); got["m1"] != 20 {
		t.Errorf("with m2 stopped, answered by %v", got)
	}
	eventually(t, "m2 unhealthy", func() bool { return !healthy(b, m2) })

	m2.start()
	eventually(t, "m2 answering again", func() bool { return answers(t, c, b, 2)["m2"] > 0 })
}

// TestDialFailureMarksDown: a backend that refuses a connection is taken
// out at once, without waiting for its health checks to fail (here they
// never could: one check, which it failed, and then none for an hour).
func TestDialFailureMarksDown(t *testing.T) {
	ca := newCA(t)
	m1, dead := newBackend(t, ca, "m1"), newBackend(t, ca, "dead")
	dead.stop()
	b, logs := startLB(t, Config{HealthInterval: time.Hour}, dead, m1)
	if got := answers(t, client(ca), b, 10); got["m1"] != 10 {
		t.Errorf("answered by %v", got)
	}
	if healthy(b, dead) {
		t.Errorf("a backend that refused a connection is still healthy")
	}
	if !strings.Contains(logs.String(), "backend "+dead.addr+" unhealthy: dial tcp "+dead.addr) {
		t.Errorf("the log does not say why the dead backend went down:\n%s", logs)
	}
}

// TestFollowsBackendsFile: a backend added to the file gets connections, a
// removed one loses its connections and gets no new ones.
func TestFollowsBackendsFile(t *testing.T) {
	ca := newCA(t)
	m1, m2 := newBackend(t, ca, "m1"), newBackend(t, ca, "m2")
	b, logs := startLB(t, Config{}, m1)
	c := client(ca)
	if got := answers(t, c, b, 5); got["m1"] != 5 {
		t.Errorf("answered by %v", got)
	}
	h1 := hold(t, ca, b)

	writeBackends(t, b.cfg.Backends, m1, m2)
	eventually(t, "m2 answering", func() bool { return answers(t, c, b, 2)["m2"] > 0 })
	if h1.closed() {
		t.Errorf("adding a backend closed the connection to m1")
	}

	writeBackends(t, b.cfg.Backends, m2)
	eventually(t, "m1's connection closed", h1.closed)
	if got := answers(t, c, b, 10); got["m2"] != 10 {
		t.Errorf("m1 removed, answered by %v", got)
	}
	for _, want := range []string{
		"(added: " + m2.addr + "; removed: none)",
		"backends from " + b.cfg.Backends + ": " + m2.addr + " (added: none; removed: " + m1.addr + ")",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}

// TestBadBackendsFile: a file that does not parse, or is gone, keeps the
// list, and says why once, naming the line; a good one is followed again.
func TestBadBackendsFile(t *testing.T) {
	ca := newCA(t)
	m1, m2 := newBackend(t, ca, "m1"), newBackend(t, ca, "m2")
	b, logs := startLB(t, Config{}, m1, m2)
	c := client(ca)
	file := b.cfg.Backends

	writeFile(t, file, m1.addr+"\napiserver.cluster.local:6443\n")
	want := file + `:2: "apiserver.cluster.local:6443": "apiserver.cluster.local" is not an IP address`
	eventually(t, "the bad line logged", func() bool { return strings.Contains(logs.String(), want) })
	seen := map[string]int{}
	eventually(t, "both backends still answering", func() bool {
		for name, n := range answers(t, c, b, 2) {
			seen[name] += n
		}
		return seen["m1"] > 0 && seen["m2"] > 0
	})
	if n := strings.Count(logs.String(), want); n != 1 {
		t.Errorf("the same bad file logged %d times:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "; keeping the backends "+m1.addr+", "+m2.addr) {
		t.Errorf("the log does not say the list is kept:\n%s", logs)
	}

	os.Remove(file)
	eventually(t, "the missing file logged", func() bool { return strings.Contains(logs.String(), "no such file") })
	if got := answers(t, c, b, 4); got["m1"] == 0 || got["m2"] == 0 {
		t.Errorf("with the file gone, answered by %v", got)
	}

	// A request under way to m1 when it is removed fails: its connection
	// is closed.
	writeBackends(t, file, m2)
	eventually(t, "m2 alone answering", func() bool {
		for range 4 {
			if name, err := whoami(c, b); name != "m2" || err != nil {
				return false
			}
		}
		return true
	})
}

// TestFailOpen: with every backend failing its checks, connections still
// go through, to each of them in turn.
func TestFailOpen(t *testing.T) {
	ca := newCA(t)
	m1, m2 := newBackend(t, ca, "m1"), newBackend(t, ca, "m2")
	m1.ready.Store(false)
	m2.ready.Store(false)
	b, _ := startLB(t, Config{}, m1, m2)
	eventually(t, "both unhealthy", func() bool { return !healthy(b, m1) && !healthy(b, m2) })
	if got := answers(t, client(ca), b, 10); got["m1"] == 0 || got["m2"] == 0 {
		t.Errorf("all unhealthy, answered by %v", got)
	}
}

// TestHealthCheckTLS: with a CA, a check trusts only what it signed;
// without, it trusts any certificate, but still wants TLS.
func TestHealthCheckTLS(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(caFile, ca.pem, 0o644)

	// Signed by the CA: it comes up once ready.
	signed := newBackend(t, ca, "signed")
	signed.ready.Store(false)
	b, _ := startLB(t, Config{CA: caFile}, signed)
	eventually(t, "signed unhealthy", func() bool { return !healthy(b, signed) })
	signed.ready.Store(true)
	eventually(t, "signed healthy", func() bool { return healthy(b, signed) })

	// Signed by another: never healthy with the CA, healthy without.
	stranger := newBackend(t, other, "stranger")
	b, logs := startLB(t, Config{CA: caFile}, stranger)
	eventually(t, "stranger unhealthy", func() bool { return !healthy(b, stranger) })
	if !strings.Contains(logs.String(), "certificate signed by unknown authority") {
		t.Errorf("the log does not say why:\n%s", logs)
	}
	stranger.ready.Store(false)
	b, _ = startLB(t, Config{}, stranger)
	eventually(t, "stranger unhealthy without a CA", func() bool { return !healthy(b, stranger) })
	stranger.ready.Store(true)
	eventually(t, "stranger healthy without a CA", func() bool { return healthy(b, stranger) })

	// Plain HTTP answering 200: not an API server.
	plain := &testBackend{t: t, name: "plain", plain: true}
	plain.ready.Store(true)
	plain.start()
	t.Cleanup(plain.stop)
	b, _ = startLB(t, Config{}, plain)
	eventually(t, "plain unhealthy", func() bool { return !healthy(b, plain) })
}

// TestStartErrors: what keeps a balancer from starting says which file.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	good, bad, notPEM := filepath.Join(dir, "good"), filepath.Join(dir, "bad"), filepath.Join(dir, "ca.crt")
	writeFile(t, good, "127.0.0.1:6443\n")
	writeFile(t, bad, "127.0.0.1:6443\n127.0.0.1\n")
	writeFile(t, notPEM, "not a certificate\n")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Listen: "127.0.0.1:0", Backends: bad}, bad + `:2: "127.0.0.1": no port`},
		{Config{Listen: "127.0.0.1:0", Backends: filepath.Join(dir, "missing")}, filepath.Join(dir, "missing")},
		{Config{Listen: "127.0.0.1:0", Backends: good, CA: notPEM}, notPEM + ": no PEM certificate"},
		{Config{Listen: "127.0.0.1:0", Backends: good, CA: filepath.Join(dir, "missing.crt")}, "missing.crt"},
		{Config{Listen: taken.Addr().String(), Backends: good}, "address already in use"},
	} {
		b, err := Start(tc.cfg)
		if err == nil {
			b.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestClose: the balancer stops listening and closes its connections.
func TestClose(t *testing.T) {
	ca := newCA(t)
	b, _ := startLB(t, Config{}, newBackend(t, ca, "m1"))
	h := hold(t, ca, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !h.closed() {
		t.Errorf("a connection outlived the balancer")
	}
	if conn, err := net.Dial("tcp", b.Addr().String()); err == nil {
		conn.Close()
		t.Errorf("the balancer still listens after Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// TestHalfClose: a client that shuts its sending side still reads the
// whole answer, and the backend sees the end of the request.
func TestHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Answers with the length of what it read, once the client is done.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "read %d bytes", n)
			}()
		}
	}()
	file := filepath.Join(t.TempDir(), "backends")
	writeFile(t, file, ln.Addr().String()+"\n")
	// Not an API server: it is never checked, and stays healthy.
	b, _ := startLB(t, Config{Backends: file, HealthInterval: time.Hour, Failures: 100})

	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, strings.Repeat("x", 100000))
	conn.(*net.TCPConn).CloseWrite()
	answer, err := io.ReadAll(conn)
	if err != nil || string(answer) != "read 100000 bytes" {
		t.Errorf("%q %v", answer, err)
	}
}

// TestCmd: the command line binds the flags Args writes; the command
// serves until its context ends, then returns nil, and SIGHUP re-reads
// the backends file.
func TestCmd(t *testing.T) {
	for _, v := range []string{"/etc/hoist/lb-backends", "with space", "--", "-x", "--listen=x", "a=b", ""} {
		want := Cmd{Listen: "127.0.0.1:6443", Backends: v, CA: v}
		args := want.Args()
		if args[0] != "node" || args[1] != "lb" {
			t.Fatalf("%q", args)
		}
		var got Cmd
		fs := flag.NewFlagSet("lb", flag.ContinueOnError)
		for _, f := range got.Flags() {
			fs.Var(f, f.Name, f.Usage)
		}
		if err := fs.Parse(args[2:]); err != nil || fs.NArg() != 0 || got != want {
			t.Errorf("%q bound %+v (%v), want %+v", args, got, err, want)
		}
	}
	if err := (Cmd{Backends: "x"}).Run(context.Background(), io.Discard); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("no --listen: %v", err)
	}

	ca := newCA(t)
	m1 := newBackend(t, ca, "m1")
	file := filepath.Join(t.TempDir(), "backends")
	writeBackends(t, file, m1)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logBuffer{}
	done := make(chan error, 1)
	go func() { done <- Cmd{Listen: addr, Backends: file}.Run(ctx, logs) }()
	eventually(t, "listening", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "reloaded on SIGHUP", func() bool {
		return strings.Contains(logs.String(), "backends from "+file+": "+m1.addr+" (added: none; removed: none)")
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stopped: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running after its context ended")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("still listening once stopped")
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

package registry

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// seeded is a registry directory holding one image of one layer of size
// bytes, as docker.io/library/app: the directory, the layer's blob path.
func seeded(t *testing.T, size int64) (string, string) {
	t.Helper()
	dir := t.TempDir()
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	push(t, serve(t, dir, Options{}), "docker.io/library/app:v1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	return dir, "/v2/docker.io/library/app/blobs/" + d.String()
}

func start(t *testing.T, dir string, opts Options) *Server {
	t.Helper()
	srv, err := Start(context.Background(), dir, "127.0.0.1:0", "", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
	})
	return srv
}

// from is a client whose connections come from the loopback address ip.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	// The timeout guards the test against a server that never answers;
	// it is no claim on how fast it answers.
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: d.DialContext}}
}

// fetch GETs path and checks the status, and for a blob, its digest.
func fetch(t *testing.T, c *http.Client, srv *Server, path string) {
	t.Helper()
	resp, err := c.Get("http://" + srv.Addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	h, _, _ := v1.SHA256(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if want, ok := strings.CutPrefix(path[strings.LastIndex(path, "/"):], "/sha256:"); ok && h.Hex != want {
		t.Fatalf("GET %s: got a blob of digest %s", path, h)
	}
}

// closedByServer tells whether the server closed c: a read returns at
// once then, and times out otherwise.
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestServerCapsConnectionsPerClient: a client that opens 1,000
// connections and sends nothing keeps MaxConnsPerClient of them, the
// server closes the others, and another client still pulls, though the
// flood is larger than the global cap.
func TestServerCapsConnectionsPerClient(t *testing.T) {
	dir, blob := seeded(t, 1<<20)
	srv := start(t, dir, Options{ReadOnly: true, Limits: Limits{HeaderTimeout: time.Hour, MaxConns: 200, MaxConnsPerClient: 64}})
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := range 1000 {
		c, err := d.Dial("tcp", srv.Addr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue // reset by the server before the dial returned
		}
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		flood = append(flood, c)
	}
	// The server accepts in order: once this client is served, every
	// connection of the flood was accepted, and closed or kept.
	client := from("127.0.0.1")
	fetch(t, client, srv, "/v2/")
	fetch(t, client, srv, blob)

	var open sync.WaitGroup
	var mu sync.Mutex
	kept := 0
	for _, c := range flood {
		open.Go(func() {
			if !closedByServer(c, 2*time.Second) {
				mu.Lock()
				kept++
				mu.Unlock()
			}
		})
	}
	open.Wait()
	if kept != 64 {
		t.Errorf("the flooding client holds %d connections, want 64", kept)
	}
}

// TestServerGlobalCapWaits: past MaxConns, a new connection waits for one
// to close rather than being refused.
func TestServerGlobalCapWaits(t *testing.T) {
	dir, _ := seeded(t, 1024)
	srv := start(t, dir, Options{ReadOnly: true, Limits: Limits{HeaderTimeout: time.Hour, MaxConns: 4, MaxConnsPerClient: 64}})
	var held []net.Conn
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := from("127.0.0.1").Get("http://" + srv.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = errors.New(resp.Status)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("served past the cap: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	held[0].Close()
	if err := <-done; err != nil {
		t.Errorf("once a connection closed: %v", err)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

// TestServerClosesIdleConnections: a connection that sends nothing, one
// that stops in the middle of its headers, and one kept alive after a
// request are closed by the server.
func TestServerClosesIdleConnections(t *testing.T) {
	dir, _ := seeded(t, 1024)
	dial := func(srv *Server) net.Conn {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	short := start(t, dir, Options{ReadOnly: true, Limits: Limits{HeaderTimeout: 200 * time.Millisecond}})
	silent := dial(short)
	half := dial(short)
	fmt.Fprintf(half, "GET /v2/ HTTP/1.1\r\nHost: registry\r\n")
	// The request of the kept-alive connection has all the time it needs
	// to arrive: only the wait for the next one is short.
	idle := start(t, dir, Options{ReadOnly: true, Limits: Limits{HeaderTimeout: time.Minute, IdleTimeout: 200 * time.Millisecond}})
	kept := dial(idle)
	fmt.Fprintf(kept, "GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %s, close %v", resp.Status, resp.Close)
	}
	// Far past the timeouts: only a server that never closes them fails.
	for name, c := range map[string]net.Conn{"silent": silent, "half headers": half, "kept alive": kept} {
		if !closedByServer(c, 20*time.Second) {
			t.Errorf("%s: connection still open", name)
		}
	}
}

// slowClient reads from the server through a receive buffer of its own
// size, not one the kernel grows, so that the server's writes wait on the
// client's reads. (Not below the loopback's 64 KiB segments: the window
// would then open only on the sender's probes, far apart.)
func slowClient() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 256<<10)
		})
		if err == nil {
			err = serr
		}
		return err
	}}
}

// getBlob sends a GET for path on a new connection and returns the
// response, its body not read.
func getBlob(t *testing.T, srv *Server, path string) (*http.Response, net.Conn) {
	t.Helper()
	c, err := slowClient().Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: registry\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return resp, c
}

// TestServerEndsStalledTransfers: a download whose client stops reading
// is ended after StallTimeout.
func TestServerEndsStalledTransfers(t *testing.T) {
	const stall = 500 * time.Millisecond
	// Larger than what the sockets' buffers hold: the server's writes
	// wait on the client.
	dir, blob := seeded(t, 24<<20)
	srv := start(t, dir, Options{ReadOnly: true, Limits: Limits{StallTimeout: stall}})
	resp, _ := getBlob(t, srv, blob)
	time.Sleep(4 * stall)
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Errorf("a download stalled for 4 times StallTimeout went on: %d bytes", n)
	}
}

// TestProgressDeadlinesMoveWithProgress: a response written, or a request
// body sent, a piece at a time for three times the stall timeout arrives
// whole: the deadline bounds each piece, not the whole (as WriteTimeout
// and ReadTimeout would).
func TestProgressDeadlinesMoveWithProgress(t *testing.T) {
	const stall = time.Second
	const pieces, pace = 30, 3 * stall / 30
	piece := make([]byte, 32<<10)
	h := progressDeadlines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, err := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d %v", n, err)
			return
		}
		for range pieces {
			time.Sleep(pace)
			if _, err := w.Write(piece); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}), stall)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != pieces*int64(len(piece)) {
		t.Errorf("slow response: %d bytes, %v", n, err)
	}

	body, w := io.Pipe()
	go func() {
		for range pieces {
			time.Sleep(pace)
			w.Write(piece)
		}
		w.Close()
	}()
	resp, err = http.Post(url, "application/octet-stream", body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d <nil>", pieces*len(piece)); string(got) != want {
		t.Errorf("slow request body: read %q, want %q", got, want)
	}
}

// TestServerEndsStalledUploads: a push whose body stops coming is ended
// after StallTimeout.
func TestServerEndsStalledUploads(t *testing.T) {
	srv := start(t, t.TempDir(), Options{Limits: Limits{StallTimeout: 300 * time.Millisecond}})
	client := from("127.0.0.1")
	resp, err := client.Post("http://"+srv.Addr+"/v2/docker.io/x/y/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusAccepted || err != nil {
		t.Fatalf("starting an upload: %s %v", resp.Status, err)
	}
	loc = (&url.URL{Scheme: "http", Host: srv.Addr}).ResolveReference(loc)
	body, w := io.Pipe()
	defer w.Close()
	go w.Write(make([]byte, 4096)) // then nothing
	req, _ := http.NewRequest(http.MethodPatch, loc.String(), body)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = 1 << 20
	// Far past StallTimeout: only a server that waits for the body forever
	// fails.
	done := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				err = fmt.Errorf("a stalled upload got %s", resp.Status)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("the stalled upload ended: %v", err)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "closed") {
			t.Errorf("stalled upload: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the server waits for a stalled upload")
	}
}

// TestServerTLS: the limits hold over HTTPS and HTTP/2.
func TestServerTLS(t *testing.T) {
	dir, blob := seeded(t, 1<<20)
	cert, key, pool := selfSigned(t)
	srv, err := Start(context.Background(), dir, "127.0.0.1:0", cert, key, Options{ReadOnly: true, Limits: Limits{StallTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + srv.Addr + blob)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := v1.SHA256(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasSuffix(blob, h.Hex) || resp.ProtoMajor != 2 {
		t.Errorf("HTTP/2 blob: %s %s %v %s", resp.Proto, resp.Status, err, h)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (string, string, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	parsed, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return certFile, keyFile, pool
}

// mirrored is the path mirrorPaths hands on for path?ns=ns.
func mirrored(path, ns string) string {
	var got string
	h := mirrorPaths(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.Path }))
	u := &url.URL{Path: path, RawQuery: url.Values{"ns": {ns}}.Encode()}
	r := (&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}).WithContext(context.Background())
	h.ServeHTTP(nil, r)
	return got
}

// TestMirrorPathsHosts: a host that is not one (a path, .., an empty
// name) does not become part of the repository: the request goes on as
// it came, and finds nothing.
func TestMirrorPathsHosts(t *testing.T) {
	const path = "/v2/library/nginx/manifests/1.27"
	for ns, want := range map[string]string{
		"docker.io":          "/v2/docker.io/library/nginx/manifests/1.27",
		"Quay.IO":            "/v2/quay.io/library/nginx/manifests/1.27",
		"registry.corp:5000": "/v2/registry.corp_5000/library/nginx/manifests/1.27",
		"localhost":          "/v2/localhost/library/nginx/manifests/1.27",
		"..":                 path,
		"../..":              path,
		".":                  path,
		"docker.io/../..":    path,
		"a/b":                path,
		"/":                  path,
		"a..b":               path,
		".docker.io":         path,
		"docker.io:":         path,
		"[::1]:5000":         path,
		"host name":          path,
		"docker.io?x=1":      path,
		"docker.io%2F..":     path,
	} {
		if got := mirrored(path, ns); got != want {
			t.Errorf("ns=%q: %s, want %s", ns, got, want)
		}
	}
	if got := mirrored("/v2/docker.io/library/nginx/manifests/1", "docker.io"); got != "/v2/docker.io/library/nginx/manifests/1" {
		t.Errorf("a path already under its host: %s", got)
	}
	if got := mirrored("/other/x", "docker.io"); got != "/other/x" {
		t.Errorf("a path outside /v2/: %s", got)
	}
}

// component is a repository path component, as the distribution spec
// defines it.
var component = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

func dotDots(p string) int {
	n := 0
	for s := range strings.SplitSeq(p, "/") {
		if s == ".." || s == "." {
			n++
		}
	}
	return n
}

// FuzzMirrorPaths: whatever the path and ns, mirrorPaths does not panic;
// it either leaves the path alone or puts one valid repository component
// (the host) after /v2/, the rest of the path unchanged.
func FuzzMirrorPaths(f *testing.F) {
	for _, seed := range [][2]string{
		{"/v2/library/nginx/manifests/1.27", "docker.io"},
		{"/v2/team/app/blobs/sha256:abc", "registry.corp:5000"},
		{"/v2/docker.io/library/nginx/manifests/1", "docker.io"},
		{"/v2/library/nginx/manifests/1", ".."},
		{"/v2/library/nginx/manifests/1", "../../etc"},
		{"/v2/library/nginx/manifests/1", "a/b"},
		{"/v2/../../etc/passwd", "docker.io"},
		{"/v2/", "docker.io"},
		{"/v2", "docker.io"},
		{"", "docker.io"},
		{"/v2/x", ""},
		{"/v2/x", "[::1]:5000"},
		{"/v2/x", "\x00"},
		{"/v2/x", "DOCKER.IO"},
		{"/v2/x", "docker.io%2f.."},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, path, ns string) {
		got := mirrored(path, ns)
		if got == path {
			return
		}
		rest, ok := strings.CutPrefix(path, "/v2/")
		if !ok {
			t.Fatalf("%q (ns %q) is not under /v2/, rewritten to %q", path, ns, got)
		}
		host, tail, ok := strings.Cut(strings.TrimPrefix(got, "/v2/"), "/")
		if !strings.HasPrefix(got, "/v2/") || !ok || tail != rest {
			t.Fatalf("%q (ns %q) rewritten to %q: not /v2/<host>/%s", path, ns, got, rest)
		}
		if !component.MatchString(host) {
			t.Fatalf("ns %q put %q in the repository name", ns, host)
		}
		if dotDots(got) != dotDots(path) {
			t.Fatalf("ns %q added a . or .. segment: %q", ns, got)
		}
	})
}

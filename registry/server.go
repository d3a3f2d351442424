package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// The drivers the configuration below names.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Options configure a registry server.
type Options struct {
	// ReadOnly refuses pushes: what a node registry serving an image's
	// registry/ directory wants.
	ReadOnly bool
	// Htpasswd is an htpasswd file (bcrypt) of the users allowed in; empty
	// means no authentication.
	Htpasswd string
	// Log receives one line per request; nil for none.
	Log io.Writer
	// Limits bound what clients can hold of a server that Start runs; a
	// handler served elsewhere is bound by that server.
	Limits Limits
}

// Limits bound the connections and the time clients can hold of the
// server, so that a client that opens many connections, or opens them and
// sends nothing, does not keep the others from pulling. A zero field takes
// its value from DefaultLimits.
type Limits struct {
	// HeaderTimeout is the time a client has to send a request's headers,
	// and to finish the TLS handshake, once it connected or began a request.
	HeaderTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no new request.
	IdleTimeout time.Duration
	// StallTimeout ends a request whose body, or whose response, makes no
	// progress for that long. It is not a bound on the whole transfer: a
	// slow pull of a 500 MB layer goes on as long as it moves.
	StallTimeout time.Duration
	// MaxConns caps the connections open at once: past it, new ones wait
	// for one to close. MaxConnsPerClient caps those of one client address:
	// past it, new ones are closed at once, so that one client can never
	// fill the global cap.
	MaxConns, MaxConnsPerClient int
}

// DefaultLimits are the limits of hoist registry serve. A node's containerd
// pulls a few layers at once per image (3 by default) and the kubelet a few
// images at once, over one address: 128 connections leave that room many
// times over. 2048 in all serve a large cluster pulling at once; a
// connection costs the server a goroutine and a few KiB.
var DefaultLimits = Limits{
	HeaderTimeout:     30 * time.Second,
	IdleTimeout:       90 * time.Second,
	StallTimeout:      2 * time.Minute,
	MaxConns:          2048,
	MaxConnsPerClient: 128,
}

func (l Limits) withDefaults() Limits {
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&l.HeaderTimeout, DefaultLimits.HeaderTimeout)
	set(&l.IdleTimeout, DefaultLimits.IdleTimeout)
	set(&l.StallTimeout, DefaultLimits.StallTimeout)
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultLimits.MaxConns
	}
	if l.MaxConnsPerClient <= 0 {
		l.MaxConnsPerClient = DefaultLimits.MaxConnsPerClient
	}
	return l
}

// NewHandler serves the registry data directory root (the directory that
// holds docker/registry/v2) with the CNCF Distribution registry.
func NewHandler(ctx context.Context, root string, opts Options) (http.Handler, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("registry root: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("registry root %s is not a directory", root)
	}
	if opts.Htpasswd != "" {
		if _, err := os.Stat(opts.Htpasswd); err != nil {
			return nil, fmt.Errorf("htpasswd file: %w", err)
		}
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	config := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": root},
			"maintenance": configuration.Parameters{
				// Upload purging walks and deletes in the data directory:
				// not what a directory shipped inside an image wants.
				"uploadpurging": map[interface{}]interface{}{"enabled": false},
				"readonly":      map[interface{}]interface{}{"enabled": opts.ReadOnly},
			},
		},
	}
	config.HTTP.Secret = hex.EncodeToString(secret)
	// An index is kept whole (its digest is what nodes ask for) while only
	// the platforms a cluster image is built for are stored: accept indexes
	// whose other platforms are absent.
	config.Validation.Manifests.Indexes.Platforms = "none"
	config.Log.AccessLog.Disabled = true
	if opts.Htpasswd != "" {
		config.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "hoist", "path": opts.Htpasswd}}
	}
	app, err := newApp(ctx, config)
	if err != nil {
		return nil, err
	}
	var h http.Handler = mirrorPaths(app)
	if opts.Log != nil {
		h = requestLog(opts.Log, h)
	}
	return h, nil
}

// newApp turns distribution's configuration panics into errors.
func newApp(ctx context.Context, config *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting the registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, config), nil
}

// hostComponent is a repository path component (the distribution spec's):
// what a registry host becomes in a repository name.
var hostComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// mirrorPaths maps containerd's mirror requests, /v2/<path>/...?ns=<host>,
// to the repository <host>/<path>, so that a node configured with this
// registry as a mirror pulls images by their original names.
//
// ns comes from the client: only a host that makes one repository path
// component is put in the path. Anything else ("..", "a/b", an IPv6
// literal, which no repository holds) leaves the request as it came, and
// it finds nothing.
func mirrorPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns := r.URL.Query().Get("ns")
		rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
		if host := strings.ToLower(EncodeHost(ns)); ok && rest != "" && hostComponent.MatchString(host) {
			if !strings.HasPrefix(rest, host+"/") {
				r = r.Clone(r.Context())
				r.URL.Path = "/v2/" + host + "/" + rest
				r.URL.RawPath = ""
			}
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func requestLog(w io.Writer, next http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: rw}
		next.ServeHTTP(rec, r)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s %s %d %d %s\n", start.UTC().Format(time.RFC3339), r.Method, r.URL.RequestURI(), rec.status, rec.bytes, time.Since(start).Round(time.Millisecond))
	})
}

// Server is a running registry.
type Server struct {
	Addr string // host:port it listens on
	srv  *http.Server
	done chan error
}

// Start serves root on addr ("127.0.0.1:0" for any free loopback port),
// within opts.Limits. certFile and keyFile, when set, serve HTTPS.
func Start(ctx context.Context, root, addr, certFile, keyFile string, opts Options) (*Server, error) {
	h, err := NewHandler(ctx, root, opts)
	if err != nil {
		return nil, err
	}
	limits := opts.Limits.withDefaults()
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	ln := newLimitListener(inner, limits.MaxConns, limits.MaxConnsPerClient)
	// No ReadTimeout nor WriteTimeout: they bound a whole request or
	// response, and a node pulling a large layer over a slow link would be
	// cut off in the middle. progressDeadlines bounds each read and write
	// instead.
	srv := &http.Server{
		Handler:           progressDeadlines(h, limits.StallTimeout),
		ReadHeaderTimeout: limits.HeaderTimeout,
		IdleTimeout:       limits.IdleTimeout,
	}
	s := &Server{Addr: ln.Addr().String(), srv: srv, done: make(chan error, 1)}
	go func() {
		var err error
		if certFile != "" {
			err = s.srv.ServeTLS(ln, certFile, keyFile)
		} else {
			err = s.srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Stop finishes the requests in flight (up to the context's deadline) and
// stops the server.
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; err == nil {
		err = serveErr
	}
	return err
}

// Done reports the server stopping by itself (an error while serving).
// Call Stop or read Done, not both.
func (s *Server) Done() <-chan error { return s.done }

// progressDeadlines gives each write of a response, and each read of a
// request's body, stall to complete, the deadline renewed as data flows: a
// client that stops reading a blob, or stops sending one, loses its
// request after stall, and one that reads slowly keeps it however long
// the transfer takes. Where the connection has no deadlines (a test's
// recorder), the handler runs as it is.
func progressDeadlines(next http.Handler, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// Until the first write: the response may be headers only, sent
		// once the handler returns.
		rc.SetWriteDeadline(time.Now().Add(stall))
		var body *progressBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &progressBody{ReadCloser: r.Body, rc: rc, stall: stall}
			r.Body = body
		}
		next.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, stall: stall}, r)
		// What the handler left buffered is sent after it returns, and the
		// server reads what it left of the body: both within stall. A body
		// read to its end is not touched: the server is then reading the
		// connection for the next request, without a deadline of its own.
		rc.SetWriteDeadline(time.Now().Add(stall))
		if body != nil && !body.done {
			rc.SetReadDeadline(time.Now().Add(stall))
		}
	})
}

// progressChunk is the most a write sends under one deadline.
const progressChunk = 256 << 10

// progressWriter renews the write deadline before each write. It has no
// ReadFrom on purpose: io.Copy (a blob served) then writes through Write,
// piece by piece, each under a deadline of its own.
type progressWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), progressChunk)]
		p.rc.SetWriteDeadline(time.Now().Add(p.stall))
		n, err := p.ResponseWriter.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

func (p *progressWriter) Flush() {
	p.rc.SetWriteDeadline(time.Now().Add(p.stall))
	p.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

type progressBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration
	done  bool // read to its end (or failed)
}

func (p *progressBody) Read(b []byte) (int, error) {
	if p.done {
		return p.ReadCloser.Read(b)
	}
	p.rc.SetReadDeadline(time.Now().Add(p.stall))
	n, err := p.ReadCloser.Read(b)
	if err != nil {
		p.done = true
	}
	return n, err
}

// limitListener caps the connections open at once, and those of each
// client address. Past the global cap, Accept waits for a connection to
// close (new ones wait in the kernel's queue); past a client's cap, its new
// connection is reset at once: waiting would let one client block the
// others, and a client with that many connections has no use for more.
//
// A client is an address: nodes in one IPv6 subnet are as many clients,
// and so is a host that holds many addresses.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one per open connection
	perClient int
	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	clients map[string]int // open connections per client address
}

func newLimitListener(ln net.Listener, total, perClient int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, total), perClient: perClient, closed: make(chan struct{}), clients: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		client := clientOf(c)
		l.mu.Lock()
		over := l.clients[client] >= l.perClient
		if !over {
			l.clients[client]++
		}
		l.mu.Unlock()
		if over {
			<-l.slots
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset: no time-wait state kept for it
			}
			c.Close()
			continue
		}
		return &limitConn{Conn: c, release: func() { l.release(client) }}, nil
	}
}

func (l *limitListener) release(client string) {
	l.mu.Lock()
	if l.clients[client]--; l.clients[client] <= 0 {
		delete(l.clients, client)
	}
	l.mu.Unlock()
	<-l.slots
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// clientOf is the address a connection comes from, IPv4 in IPv6 as IPv4.
func clientOf(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().String()
	}
	return c.RemoteAddr().String()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps the server's half close, with which a client still
// reads a response sent before the end of its request.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

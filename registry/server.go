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

// mirrorPaths maps containerd's mirror requests, /v2/<path>/...?ns=<host>,
// to the repository <host>/<path>, so that a node configured with this
// registry as a mirror pulls images by their original names.
func mirrorPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns := r.URL.Query().Get("ns")
		rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
		if ns != "" && ok && rest != "" {
			host := strings.ToLower(EncodeHost(ns))
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

// Start serves root on addr ("127.0.0.1:0" for any free loopback port).
// certFile and keyFile, when set, serve HTTPS.
func Start(ctx context.Context, root, addr, certFile, keyFile string, opts Options) (*Server, error) {
	h, err := NewHandler(ctx, root, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	s := &Server{Addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}, done: make(chan error, 1)}
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

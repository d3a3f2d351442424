package kubefile

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestHTTPSSourceCancelled: Ctrl-C (the build's context) stops a download
// from a server that stalls, whether before it answers or in the middle of
// the body, and leaves nothing that looks cached.
func TestHTTPSSourceCancelled(t *testing.T) {
	for _, tc := range []struct {
		name        string
		answerFirst bool
	}{
		{"before the answer", false},
		{"in the body", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Cancelled once the server stalls, or once the client has its
			// answer when the stall is in the body.
			stalled, answered := make(chan struct{}), make(chan struct{})
			var once sync.Once
			release := make(chan struct{})
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.answerFirst {
					w.Header().Set("Content-Length", "1048576")
					w.Write([]byte("the first bytes of a large file"))
					w.(http.Flusher).Flush()
				}
				once.Do(func() { close(stalled) })
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			defer srv.Close()
			defer close(release) // before Close, which waits for the handler

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				if tc.answerFirst {
					<-answered
				} else {
					<-stalled
				}
				cancel()
			}()
			f, err := NewFile("Kubefile", []byte("FROM scratch\nAPP web "+srv.URL+"/web-0.1.0.tgz\n"))
			if err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			_, err = f.Plan(ctx, Options{ContextDir: t.TempDir(), CacheDir: cache, HTTPClient: &http.Client{Transport: notify{srv.Client().Transport, answered}}})
			if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "Kubefile:2: app web: downloading ") {
				t.Fatalf("err = %v, want Kubefile:2 and context.Canceled", err)
			}
			// The partial file is gone: the next build downloads again.
			entries, _ := os.ReadDir(cache)
			for _, e := range entries {
				inside, _ := os.ReadDir(cache + "/" + e.Name())
				if len(inside) > 0 {
					t.Errorf("cache holds %s/%s after a cancelled download", e.Name(), inside[0].Name())
				}
			}
		})
	}
}

// notify closes answered when the response headers are in.
type notify struct {
	http.RoundTripper
	answered chan struct{}
}

func (n notify) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := n.RoundTripper.RoundTrip(r)
	if err == nil {
		close(n.answered)
	}
	return resp, err
}

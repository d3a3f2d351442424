// Package lb is the node-local load balancer in front of a cluster's API
// servers (`hoist node lb`). With several masters, every node reaches the
// API through a name that resolves, on the node, to this balancer, which
// forwards each connection to a healthy kube-apiserver: losing any one
// master loses no node. It is k3s's agent load balancer in hoist's binary,
// run by the same service supervision as containerd and the kubelet.
//
// It forwards TCP and nothing else: TLS passes through untouched, so the
// clients still verify the API server's certificate and present their own,
// and the balancer holds no key. It health-checks each backend with HTTPS
// GET /readyz, and closes the connections of a backend that becomes
// unhealthy or is removed, as k3s does: a kubelet's watch on a master that
// died would otherwise hang until TCP gives up, minutes later. When no
// backend is healthy it tries them all anyway (fails open): a health check
// that is wrong must not cut a node off the API.
//
// The backends are a file of IP:PORT lines that hoist writes on every apply
// (as a new file renamed over the old, so that it is never read half
// written); the balancer follows its changes (and re-reads it on SIGHUP),
// keeping the last good list when a new one does not parse.
package lb

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is a balancer's. The durations and counts are fields so that tests
// can shorten them; zero means the default.
type Config struct {
	Listen   string // address to listen on, e.g. 127.0.0.1:6443
	Backends string // the backends file (see ParseBackends)
	// CA is a PEM file of the CAs that sign the backends' certificates,
	// for the health checks. Without it the checks do not verify the
	// certificate, but still need TLS and a 200.
	CA  string
	Log io.Writer // health changes and reloads, one line each; default stderr

	HealthInterval time.Duration // between checks of a backend; default 2 s
	HealthTimeout  time.Duration // of one check; default 2 s
	DialTimeout    time.Duration // of a connection to a backend; default 3 s
	ReloadInterval time.Duration // between reads of the backends file; default 1 s
	Failures       int           // failed checks in a row that make a backend unhealthy; default 2
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HealthInterval, 2*time.Second)
	def(&c.HealthTimeout, 2*time.Second)
	def(&c.DialTimeout, 3*time.Second)
	def(&c.ReloadInterval, time.Second)
	if c.Failures <= 0 {
		c.Failures = 2
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
}

// Balancer is a running balancer.
type Balancer struct {
	cfg    Config
	ln     net.Listener
	log    *log.Logger
	tls    *tls.Config // of the health checks
	dialer net.Dialer
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	backends []*backend // in the file's order
	next     int        // where the next pick starts, for round-robin
	seen     []byte     // the backends file as last read
	seenErr  string     // why it could not be read, last time
	closed   bool
}

type backend struct {
	addr     netip.AddrPort
	healthy  bool // true until checks say otherwise
	failures int  // checks failed in a row
	conns    map[*proxied]struct{}
	client   *http.Client
	ctx      context.Context // canceled when the backend is removed
	cancel   context.CancelFunc
}

// proxied is a client's connection and the one to its backend.
type proxied struct{ client, server net.Conn }

func (p *proxied) close() {
	p.client.Close()
	p.server.Close()
}

// Start reads the backends file, listens and serves until Close. A
// backends file that cannot be read or parsed, a CA file that holds no
// certificate or an address already in use fail it.
func Start(cfg Config) (*Balancer, error) {
	cfg.defaults()
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("reading the CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", cfg.CA)
		}
		tlsConfig.RootCAs = pool
	} else {
		tlsConfig.InsecureSkipVerify = true
	}
	data, err := readBackends(cfg.Backends)
	if err != nil {
		return nil, err
	}
	list, err := ParseBackends(cfg.Backends, data)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	b := &Balancer{
		cfg:    cfg,
		ln:     ln,
		log:    log.New(cfg.Log, "lb: ", log.LstdFlags),
		tls:    tlsConfig,
		dialer: net.Dialer{Timeout: cfg.DialTimeout},
		seen:   data,
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	b.setBackends(list)
	b.mu.Unlock()
	b.log.Printf("listening on %s, backends from %s: %s", ln.Addr(), cfg.Backends, join(list))
	b.wg.Add(2)
	go b.accept()
	go b.follow()
	return b, nil
}

// Addr is the address the balancer listens on.
func (b *Balancer) Addr() net.Addr { return b.ln.Addr() }

// Close stops listening, closes every connection and waits for them.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, be := range b.backends {
		be.cancel()
		for p := range be.conns {
			p.close()
		}
	}
	b.mu.Unlock()
	err := b.ln.Close()
	b.cancel()
	b.wg.Wait()
	b.log.Printf("stopped")
	return err
}

func (b *Balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors, most likely: wait for some to
			// close rather than spin.
			b.log.Printf("accept: %v", err)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		b.wg.Add(1)
		go b.serve(c)
	}
}

// serve forwards c to the first of the candidates that answers.
func (b *Balancer) serve(c net.Conn) {
	defer b.wg.Done()
	for _, be := range b.candidates() {
		s, err := b.dialer.DialContext(b.ctx, "tcp", be.addr.String())
		if err != nil {
			b.dialFailed(be, err)
			continue
		}
		p := &proxied{client: c, server: s}
		if !b.attach(be, p) {
			s.Close()
			continue
		}
		pipe(c, s)
		b.detach(be, p)
		return
	}
	c.Close()
}

// candidates are the backends in the order a connection tries them: the
// healthy ones, fewest connections first and round-robin among equals,
// then the others (failing open: a connection to a backend that failed
// its checks beats none).
func (b *Balancer) candidates() []*backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.backends)
	if n == 0 || b.closed {
		return nil
	}
	start := b.next % n
	b.next++
	rotated := append(slices.Clone(b.backends[start:]), b.backends[:start]...)
	var healthy, others []*backend
	for _, be := range rotated {
		if be.healthy {
			healthy = append(healthy, be)
		} else {
			others = append(others, be)
		}
	}
	slices.SortStableFunc(healthy, func(x, y *backend) int { return len(x.conns) - len(y.conns) })
	return append(healthy, others...)
}

func (b *Balancer) attach(be *backend, p *proxied) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || be.ctx.Err() != nil {
		return false
	}
	be.conns[p] = struct{}{}
	return true
}

func (b *Balancer) detach(be *backend, p *proxied) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(be.conns, p)
}

// pipe copies both ways until both directions are done, passing on a
// half-close: a client that has sent all it will still gets the answer.
func pipe(client, server net.Conn) {
	done := make(chan struct{})
	go func() {
		copyHalf(server, client)
		close(done)
	}()
	copyHalf(client, server)
	<-done
	client.Close()
	server.Close()
}

func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		// A reset, or a connection the balancer closed: the other
		// direction has nothing left to say either.
		src.Close()
		dst.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

// dialFailed marks be unhealthy at once: the next connections go
// elsewhere without waiting for its checks to fail.
func (b *Balancer) dialFailed(be *backend, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if be.ctx.Err() != nil {
		return
	}
	be.failures = max(be.failures, b.cfg.Failures)
	if be.healthy {
		b.markDown(be, err)
	}
}

// markDown makes be unhealthy and closes its connections, whose clients
// then connect again, to another backend. Called with b.mu held.
func (b *Balancer) markDown(be *backend, err error) {
	be.healthy = false
	b.log.Printf("backend %s unhealthy: %v; closing its %d connections", be.addr, err, len(be.conns))
	for p := range be.conns {
		p.close()
	}
}

// watch checks be now and every HealthInterval until it is removed.
func (b *Balancer) watch(be *backend) {
	defer b.wg.Done()
	defer be.client.CloseIdleConnections()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-be.ctx.Done():
			return
		case <-timer.C:
		}
		err := b.check(be)
		b.mu.Lock()
		switch {
		case be.ctx.Err() != nil:
		case err == nil:
			be.failures = 0
			if !be.healthy {
				be.healthy = true
				b.log.Printf("backend %s healthy", be.addr)
			}
		default:
			be.failures++
			if be.healthy && be.failures >= b.cfg.Failures {
				b.markDown(be, err)
			}
		}
		b.mu.Unlock()
		timer.Reset(b.cfg.HealthInterval)
	}
}

// check is one health check of be: HTTPS GET /readyz answered 200.
func (b *Balancer) check(be *backend) error {
	ctx, cancel := context.WithTimeout(be.ctx, b.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+be.addr.String()+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := be.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read what little there is, so that the connection is kept for the
	// next check.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET https://%s/readyz: %s", be.addr, resp.Status)
	}
	return nil
}

func (b *Balancer) newBackend(addr netip.AddrPort) *backend {
	be := &backend{
		addr:    addr,
		healthy: true,
		conns:   map[*proxied]struct{}{},
		client: &http.Client{Transport: &http.Transport{
			// No proxy from the environment: the check must reach the
			// backend itself.
			Proxy:               nil,
			DialContext:         b.dialer.DialContext,
			TLSClientConfig:     b.tls,
			TLSHandshakeTimeout: b.cfg.HealthTimeout,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     3 * b.cfg.HealthInterval,
		}},
	}
	be.ctx, be.cancel = context.WithCancel(b.ctx)
	return be
}

// setBackends makes list the backends: new ones are checked and used,
// removed ones stop being checked and their connections are closed, the
// others keep their health and connections. It returns the added and the
// removed. Called with b.mu held.
func (b *Balancer) setBackends(list []netip.AddrPort) (added, removed []netip.AddrPort) {
	old := map[netip.AddrPort]*backend{}
	for _, be := range b.backends {
		old[be.addr] = be
	}
	var next []*backend
	for _, addr := range list {
		if be, ok := old[addr]; ok {
			next = append(next, be)
			delete(old, addr)
			continue
		}
		be := b.newBackend(addr)
		next = append(next, be)
		added = append(added, addr)
		b.wg.Add(1)
		go b.watch(be)
	}
	for _, be := range b.backends {
		if _, gone := old[be.addr]; gone {
			be.cancel()
			for p := range be.conns {
				p.close()
			}
			removed = append(removed, be.addr)
		}
	}
	b.backends = next
	return added, removed
}

// follow re-reads the backends file every ReloadInterval until Close.
func (b *Balancer) follow() {
	defer b.wg.Done()
	ticker := time.NewTicker(b.cfg.ReloadInterval)
	defer ticker.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-ticker.C:
			b.reload(false)
		}
	}
}

// Reload reads the backends file again now (on SIGHUP), logging the
// outcome even when the file did not change.
func (b *Balancer) Reload() { b.reload(true) }

// reload applies the backends file when it changed since it was last read
// (the whole file is compared: it is small, and a change within the
// granularity of the modification time is not missed). A file that cannot
// be read or parsed keeps the list, logged once per change.
func (b *Balancer) reload(force bool) {
	data, err := readBackends(b.cfg.Backends)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if err != nil {
		if force || err.Error() != b.seenErr {
			b.log.Printf("%v; keeping the backends %s", err, join(b.addrs()))
		}
		b.seenErr = err.Error()
		return
	}
	if !force && b.seenErr == "" && bytes.Equal(data, b.seen) {
		return
	}
	b.seen, b.seenErr = data, ""
	list, err := ParseBackends(b.cfg.Backends, data)
	if err != nil {
		b.log.Printf("%v; keeping the backends %s", err, join(b.addrs()))
		return
	}
	added, removed := b.setBackends(list)
	b.log.Printf("backends from %s: %s (added: %s; removed: %s)", b.cfg.Backends, join(list), join(added), join(removed))
}

// addrs are the backends' addresses. Called with b.mu held.
func (b *Balancer) addrs() []netip.AddrPort {
	var list []netip.AddrPort
	for _, be := range b.backends {
		list = append(list, be.addr)
	}
	return list
}

func join(addrs []netip.AddrPort) string {
	if len(addrs) == 0 {
		return "none"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

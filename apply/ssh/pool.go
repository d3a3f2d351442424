package ssh

import (
	"context"
	"sync"
)

// Pool keeps one executor per host, so that the steps of an apply share a
// connection instead of opening one per command.
type Pool struct {
	mu    sync.Mutex
	execs map[string]Executor
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{execs: map[string]Executor{}} }

// Get returns the host's executor, dialling it the first time.
func (p *Pool) Get(ctx context.Context, cfg Config) (Executor, error) {
	key := addr(cfg) + "/" + cfg.User
	p.mu.Lock()
	if e, ok := p.execs[key]; ok {
		if c, isSSH := e.(*Client); !isSSH || !c.lost.Load() {
			p.mu.Unlock()
			return e, nil
		}
		delete(p.execs, key) // dropped for missing keepalives: dial again
	}
	p.mu.Unlock()
	e, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.execs[key]; ok { // another goroutine won
		e.Close()
		return prev, nil
	}
	p.execs[key] = e
	return e, nil
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.execs {
		e.Close()
		delete(p.execs, k)
	}
}

// ForEach runs fn for every item, at most jobs at a time, started in
// their order (with jobs 1, one after the other in order), and returns
// the error of each item (nil for success), in order: one host failing
// does not stop the others.
func ForEach[T any](ctx context.Context, items []T, jobs int, fn func(context.Context, T) error) []error {
	if jobs < 1 {
		jobs = 1
	}
	errs := make([]error, len(items))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return errs
}

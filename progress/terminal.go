package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// maxStatusLen keeps a long error from pushing the bar off the line; the
// full text is printed after the bars on Close.
const maxStatusLen = 60

type terminal struct {
	// mu guards the fields below. mpb's render goroutines never take it
	// (decorators read nodeBar.mu only), so holding it while calling into a
	// bar cannot deadlock.
	mu       sync.Mutex
	w        io.Writer
	p        *mpb.Progress
	bars     map[string]*nodeBar
	failures []Event
	closed   bool
}

type nodeBar struct {
	bar *mpb.Bar
	// mu guards the fields below; it is read by decorators while rendering
	// and never held across a call into bar.
	mu       sync.Mutex
	step     string
	status   string
	total    int64
	finished bool
	lastErr  string
}

// NewTerminal shows one live bar per node, in the order given.
func NewTerminal(w io.Writer, nodes []string) Reporter {
	opts := []mpb.ContainerOption{
		mpb.WithOutput(w),
		// mpb only draws to non-terminals (tests, `script`) when forced to,
		// and would then never draw at all.
		mpb.WithAutoRefresh(),
	}
	if !isTerminal(w) {
		opts = append(opts, mpb.WithWidth(100))
	}
	t := &terminal{w: w, p: mpb.New(opts...), bars: map[string]*nodeBar{}}
	for _, n := range nodes {
		t.nodeBar(n)
	}
	return t
}

// nodeBar returns the node's bar, adding one for a node that was not in the
// list given to NewTerminal. t.mu must be held.
func (t *terminal) nodeBar(node string) *nodeBar {
	if nb, ok := t.bars[node]; ok {
		return nb
	}
	nb := &nodeBar{}
	text := func(f func() string) decor.Decorator {
		return decor.Any(func(decor.Statistics) string {
			nb.mu.Lock()
			defer nb.mu.Unlock()
			return f()
		}, decor.WCSyncSpaceR)
	}
	nb.bar = t.p.AddBar(0,
		mpb.PrependDecorators(
			decor.Name(node, decor.WCSyncSpaceR),
			text(func() string { return nb.step }),
		),
		mpb.AppendDecorators(text(func() string { return nb.status })),
	)
	t.bars[node] = nb
	return nb
}

func (t *terminal) Report(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	nb := t.nodeBar(e.Node)

	nb.mu.Lock()
	finished := nb.finished
	if (e.State == StateFailed || e.State == StateNodeFailed) && e.Error != "" && e.Error != nb.lastErr {
		// node-failed usually repeats the failed step's error; print it once.
		nb.lastErr = e.Error
		t.failures = append(t.failures, e)
	}
	if finished {
		nb.mu.Unlock()
		return
	}
	if e.Step != "" {
		nb.step = e.Step
	}
	switch e.State {
	case StateProgress:
		if e.Total > 0 {
			nb.status = counters(e.Bytes, e.Total)
		} else {
			nb.status = fmt.Sprintf("% .1f", decor.SizeB1024(e.Bytes))
		}
		nb.total = e.Total
	case StateNodeDone:
		nb.step, nb.status, nb.finished = "", "done", true
	case StateNodeFailed:
		nb.status, nb.finished = "failed", true
		if e.Error != "" {
			nb.status += ": " + shorten(e.Error)
		}
	default:
		nb.status = shorten(describe(Event{State: e.State, Elapsed: e.Elapsed, Error: e.Error}))
	}
	total := nb.total
	nb.mu.Unlock()

	switch e.State {
	case StateStart:
		nb.bar.SetTotal(0, false)
		nb.bar.SetCurrent(0)
	case StateProgress:
		if e.Total > 0 {
			nb.bar.SetTotal(e.Total, false)
			nb.bar.SetCurrent(min(e.Bytes, e.Total))
		}
	case StateNodeDone:
		// Fill the bar even if the last step had no byte count.
		nb.bar.SetTotal(max(total, 1), true)
	case StateNodeFailed:
		nb.bar.Abort(false)
	}
}

func (t *terminal) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	// Bars of nodes that never finished (cancelled run) would keep Wait
	// waiting forever.
	for _, nb := range t.bars {
		nb.mu.Lock()
		finished := nb.finished
		nb.finished = true
		nb.mu.Unlock()
		if !finished {
			nb.bar.Abort(false)
		}
	}
	t.mu.Unlock()

	t.p.Wait()
	// Bars only show a shortened error and vanish with the screen; keep the
	// full text.
	pl := &plain{w: t.w, width: minNodeWidth}
	for _, e := range t.failures {
		_, _ = io.WriteString(t.w, pl.line(e, describe(e)))
	}
}

// shorten keeps the first line of s, cut to maxStatusLen runes.
func shorten(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxStatusLen {
		s = string(r[:maxStatusLen-1]) + "…"
	}
	return s
}

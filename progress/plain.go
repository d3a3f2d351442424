package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// minNodeWidth fits any IPv4 address, so columns line up from the first line
// in the common case; longer names (IPv6) widen it from then on.
const minNodeWidth = 15

type plain struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	// quarter is the last quarter of Total printed per node, so a transfer
	// logs at most four progress lines however often it reports.
	quarter map[string]quarterMark
}

type quarterMark struct {
	step  string
	total int64
	q     int64
}

// NewPlain reports one line per event, for logs and pipes.
func NewPlain(w io.Writer) Reporter {
	return &plain{w: w, width: minNodeWidth, quarter: map[string]quarterMark{}}
}

func (p *plain) Report(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var msg string
	if e.State == StateProgress {
		if !p.progressDue(e) {
			return
		}
		msg = counters(e.Bytes, e.Total)
	} else {
		// A new start (e.g. a retry of the same step) should log its progress again.
		delete(p.quarter, e.Node)
		msg = describe(e)
	}
	_, _ = io.WriteString(p.w, p.line(e, msg))
}

func (p *plain) line(e Event, msg string) string {
	p.width = max(p.width, len(e.Node))
	s := fmt.Sprintf("%-*s  ", p.width, e.Node)
	if e.Step != "" {
		s += e.Step + "  "
	}
	return strings.TrimRight(oneLine.Replace(s+msg), " ") + "\n"
}

func (p *plain) progressDue(e Event) bool {
	if e.Total <= 0 {
		return false
	}
	q := min(e.Bytes*4/e.Total, 4)
	m, ok := p.quarter[e.Node]
	if !ok || m.step != e.Step || m.total != e.Total {
		m = quarterMark{step: e.Step, total: e.Total}
	}
	if q <= m.q {
		return false
	}
	m.q = q
	p.quarter[e.Node] = m
	return true
}

func (p *plain) Close() {}

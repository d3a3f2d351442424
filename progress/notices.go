package progress

import (
	"io"
	"sync"
)

type notices struct {
	mu sync.Mutex
	w  io.Writer
}

// NewNotices reports only what a person must read where another output
// already shows the progress (buildah's steps, in `hoist build`): the
// Message of warning and waiting events, as written, one a line. Every
// other event is dropped.
func NewNotices(w io.Writer) Reporter {
	return &notices{w: w}
}

func (n *notices) Report(e Event) {
	if e.State != StateWarning && e.State != StateWaiting {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, _ = io.WriteString(n.w, e.Message+"\n")
}

func (n *notices) Close() {}

// Package progress reports what `hoist apply` and `hoist delete` do on each
// node, and what `hoist build` does: as plain lines for logs and pipes, as
// JSON lines for tools, or as live bars on a terminal.
//
// Reporters print what they are given; callers must keep secrets out of
// events (an SSH error can quote a command line, so scrub it first).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// Event is one thing that happened on one node.
type Event struct {
	Time    time.Time `json:"time"`
	Node    string    `json:"node"`            // IP address
	Step    string    `json:"step,omitempty"`  // e.g. "install-hoist", "rootfs", "hook:pre-init-host"
	State   string    `json:"state"`           // one of the State* constants
	Bytes   int64     `json:"bytes,omitempty"` // progress: bytes sent so far
	Total   int64     `json:"total,omitempty"` // progress: bytes to send, 0 if unknown
	Error   string    `json:"error,omitempty"`
	Elapsed float64   `json:"elapsed,omitempty"` // seconds, on done/failed
	// Message is text for the person running the command, on warning and
	// waiting events: a Kubefile's warnings, a wait for a lock.
	Message string `json:"message,omitempty"`
}

// States of an Event.
const (
	StateStart      = "start"
	StateProgress   = "progress"
	StateDone       = "done"
	StateSkipped    = "skipped"
	StateFailed     = "failed"
	StateNodeDone   = "node-done"
	StateNodeFailed = "node-failed"
	StateWarning    = "warning" // something to fix, that did not stop the work
	StateWaiting    = "waiting" // blocked on something outside (another build)
)

// Reporter receives the events of one apply, delete or build.
type Reporter interface {
	Report(Event) // safe for concurrent use from many goroutines
	Close()       // flush; after Close, Report is not called
}

// Send stamps e with the time and reports it to r; a nil r reports
// nothing (a caller that wants no progress).
func Send(r Reporter, e Event) {
	if r != nil {
		e.Time = time.Now()
		r.Report(e)
	}
}

// Start reports the step begun on node and returns what reports its end:
// done, or failed with the error, and the time it took.
func Start(r Reporter, node, step string) func(error) {
	began := time.Now()
	Send(r, Event{Node: node, Step: step, State: StateStart})
	return func(err error) {
		e := Event{Node: node, Step: step, State: StateDone, Elapsed: time.Since(began).Seconds()}
		if err != nil {
			e.State, e.Error = StateFailed, err.Error()
		}
		Send(r, e)
	}
}

// New picks a Reporter for w. format "json" gives JSON lines; "" or "text"
// gives live bars when w is a terminal and plain lines otherwise, so that
// redirected output and CI logs stay readable.
func New(w io.Writer, format string, nodes []string) (Reporter, error) {
	switch format {
	case "json":
		return NewJSON(w), nil
	case "", "text":
		if isTerminal(w) {
			return NewTerminal(w, nodes), nil
		}
		return NewPlain(w), nil
	default:
		return nil, fmt.Errorf("unknown progress format %q (want \"text\" or \"json\")", format)
	}
}

// isTerminal tells whether w is a terminal that bars can be drawn on: one
// with a size (a pty that reports 0x0, as under script(1) without a
// terminal, would show nothing at all).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	cols, rows, err := term.GetSize(int(f.Fd()))
	return err == nil && cols > 0 && rows > 0
}

// describe renders everything about a non-progress event except node and
// step, e.g. "done (1.2s)" or "failed: connection refused".
func describe(e Event) string {
	s := e.State
	if e.Elapsed > 0 {
		d := time.Duration(e.Elapsed * float64(time.Second)).Round(100 * time.Millisecond)
		s += " (" + d.String() + ")"
	}
	if e.Error != "" {
		s += ": " + e.Error
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// counters renders transfer progress like "512.0 MiB / 2.0 GiB".
func counters(bytes, total int64) string {
	return fmt.Sprintf("% .1f / % .1f", decor.SizeB1024(bytes), decor.SizeB1024(total))
}

// oneLine keeps multi-line errors (remote stderr) from breaking the
// one-line-per-event promise.
var oneLine = strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ")

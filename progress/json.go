package progress

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// jsonProgressEvery bounds progress lines per node: enough for a tool to
// draw its own bar, few enough not to flood a log with a multi-GiB copy.
const jsonProgressEvery = 200 * time.Millisecond

type jsonReporter struct {
	mu   sync.Mutex
	enc  *json.Encoder
	last map[string]lastProgress
}

type lastProgress struct {
	step string
	at   time.Time
}

// NewJSON reports one JSON object per line.
func NewJSON(w io.Writer) Reporter {
	enc := json.NewEncoder(w)
	// Errors quote shell commands; "\u003e" instead of ">" helps nobody.
	enc.SetEscapeHTML(false)
	return &jsonReporter{enc: enc, last: map[string]lastProgress{}}
}

func (j *jsonReporter) Report(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.State == StateProgress {
		// The final one is always kept so consumers see the transfer finish.
		final := e.Total > 0 && e.Bytes >= e.Total
		l, ok := j.last[e.Node]
		if ok && l.step == e.Step && !final && e.Time.Sub(l.at) < jsonProgressEvery {
			return
		}
		j.last[e.Node] = lastProgress{step: e.Step, at: e.Time}
	} else {
		delete(j.last, e.Node)
	}
	_ = j.enc.Encode(e)
}

func (j *jsonReporter) Close() {}

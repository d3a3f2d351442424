package progress

import (
	"errors"
	"sync"
	"testing"
)

type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) Report(ev Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }
func (e *events) Close()          {}

// TestStart: a step's start, then its end, done or failed with the error,
// each stamped; a nil reporter is given nothing and does not panic.
func TestStart(t *testing.T) {
	var got events
	Start(&got, "n1", "rootfs")(nil)
	Start(&got, "n1", "registry")(errors.New("port taken"))
	want := []Event{
		{Node: "n1", Step: "rootfs", State: StateStart},
		{Node: "n1", Step: "rootfs", State: StateDone},
		{Node: "n1", Step: "registry", State: StateStart},
		{Node: "n1", Step: "registry", State: StateFailed, Error: "port taken"},
	}
	if len(got.all) != len(want) {
		t.Fatalf("events %+v", got.all)
	}
	for i, e := range got.all {
		if e.Time.IsZero() {
			t.Errorf("event %d has no time", i)
		}
		e.Time, e.Elapsed = want[i].Time, 0
		if e != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, e, want[i])
		}
	}
	Start(nil, "n1", "rootfs")(nil)
}

package progress

import (
	"bytes"
	"testing"
)

func TestNotices(t *testing.T) {
	var buf bytes.Buffer
	r := NewNotices(&buf)
	for _, e := range []Event{
		{Node: "linux/amd64", Step: "plan", State: StateStart},
		{Node: "build", Step: "plan", State: StateWarning, Message: "Kubefile:3: warning: CMD in a Kubefile"},
		{Node: "linux/amd64", Step: "plan", State: StateDone, Elapsed: 0.2},
		{Node: "build", Step: "lock", State: StateWaiting, Message: "waiting for another build"},
		{Node: "build", Step: "collect-images", State: StateWarning, Message: "warning: not bundled: a\n  b"},
		{Node: "build", Step: "collect-images", State: StateFailed, Error: "boom"},
	} {
		r.Report(e)
	}
	r.Close()
	want := "Kubefile:3: warning: CMD in a Kubefile\nwaiting for another build\nwarning: not bundled: a\n  b\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestPlainMessage(t *testing.T) {
	var buf bytes.Buffer
	r := NewPlain(&buf)
	r.Report(Event{Node: "build", Step: "lock", State: StateWaiting, Message: "waiting for another build"})
	if want := "build            lock  waiting: waiting for another build\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

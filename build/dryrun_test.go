package build_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/test/fixture"
)

type recorder struct {
	mu     sync.Mutex
	events []progress.Event
}

func (r *recorder) Report(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Close() {}

// TestDryRunReports: a dry run plans each platform, needs no store, and
// reports each platform's planning and the Kubefile's warnings, once,
// through the reporter.
func TestDryRunReports(t *testing.T) {
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY bin/${ARCH}/ bin/\n", "bin/amd64/x": "", "bin/arm64/x": ""})
	rec := &recorder{}
	previews, err := DryRun(context.Background(), nil, Options{
		ContextDir: ctx,
		Platforms:  []kubefile.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}},
		BuildArgs:  map[string]string{"UNUSED": "1"},
		Reporter:   rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(previews) != 2 || previews[1].Platform != "linux/arm64" || !strings.Contains(previews[1].Dockerfile, "COPY bin/arm64/ bin/") || previews[0].Images == nil {
		t.Errorf("previews = %+v", previews)
	}
	var got []string
	for _, e := range rec.events {
		got = append(got, e.Node+" "+e.Step+" "+e.State)
		if e.State == progress.StateWarning && !strings.Contains(e.Message, "not consumed: UNUSED") {
			t.Errorf("warning %q", e.Message)
		}
	}
	want := []string{
		"linux/amd64 plan start", "linux/amd64 plan done",
		"linux/arm64 plan start", "linux/arm64 plan done",
		"build plan warning",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

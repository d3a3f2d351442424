package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const gib = 1 << 30

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewPlain(&buf)
	n := "10.250.0.11"
	for _, e := range []Event{
		{Node: n, Step: "rootfs", State: StateStart},
		{Node: n, Step: "rootfs", State: StateProgress, Bytes: 2 * gib / 10, Total: 2 * gib},
		{Node: n, Step: "rootfs", State: StateProgress, Bytes: gib, Total: 2 * gib},
		{Node: n, Step: "rootfs", State: StateProgress, Bytes: 2 * gib, Total: 2 * gib},
		{Node: n, Step: "rootfs", State: StateDone, Elapsed: 1.23},
		{Node: n, Step: "hook:pre-init-host", State: StateFailed, Error: "exit status 1\nline two"},
		{Node: "10.250.0.12", State: StateSkipped},
		{Node: "fd00:1234:5678::1:2", State: StateNodeDone, Elapsed: 75.04},
		{Node: n, State: StateNodeFailed, Error: "hook failed"},
	} {
		r.Report(e)
	}
	r.Close()
	want := []string{
		"10.250.0.11      rootfs  start",
		"10.250.0.11      rootfs  1.0 GiB / 2.0 GiB",
		"10.250.0.11      rootfs  2.0 GiB / 2.0 GiB",
		"10.250.0.11      rootfs  done (1.2s)",
		"10.250.0.11      hook:pre-init-host  failed: exit status 1; line two",
		"10.250.0.12      skipped",
		"fd00:1234:5678::1:2  node-done (1m15s)",
		"10.250.0.11          node-failed: hook failed",
	}
	if got := lines(buf.String()); !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlainProgressThrottle(t *testing.T) {
	var buf bytes.Buffer
	r := NewPlain(&buf)
	report := func(node, step string, total int64) {
		for b := int64(0); b <= total; b += max(total/100, 1) {
			r.Report(Event{Node: node, Step: step, State: StateProgress, Bytes: b, Total: total})
		}
	}
	report("a", "rootfs", 1000)       // 25, 50, 75, 100 %
	report("a", "install-hoist", 100) // new step: four more
	report("b", "rootfs", 0)          // unknown total: none
	// One jump from 0 to 100 % is one event, so one line.
	r.Report(Event{Node: "c", Step: "rootfs", State: StateProgress, Bytes: 10, Total: 10})
	// Restarting the same step logs its progress again.
	r.Report(Event{Node: "c", Step: "rootfs", State: StateStart})
	r.Report(Event{Node: "c", Step: "rootfs", State: StateProgress, Bytes: 10, Total: 10})

	got := lines(buf.String())
	count := map[string]int{}
	for _, l := range got {
		if strings.Contains(l, " / ") {
			count[strings.Fields(l)[0]+" "+strings.Fields(l)[1]]++
		}
	}
	want := map[string]int{"a rootfs": 4, "a install-hoist": 4, "c rootfs": 2}
	if !reflect.DeepEqual(count, want) {
		t.Errorf("progress lines per node/step = %v, want %v; output:\n%s", count, want, buf.String())
	}
	if got[3] != "a                rootfs  1000.0 b / 1000.0 b" {
		t.Errorf("last rootfs line = %q", got[3])
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	r := NewJSON(&buf)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := func(ms int, node string, b int64) Event {
		return Event{Time: at(ms), Node: node, Step: "rootfs", State: StateProgress, Bytes: b, Total: 100}
	}
	in := []Event{
		{Time: at(0), Node: "n1", Step: "rootfs", State: StateStart},
		p(10, "n1", 10), // kept: first
		p(20, "n2", 10), // kept: other node
		p(50, "n1", 20), // dropped: 40 ms after the last
		p(150, "n1", 30),
		p(210, "n1", 40),  // kept: 200 ms after the last
		p(220, "n1", 100), // kept: final
		{Time: at(300), Node: "n1", Step: "rootfs", State: StateDone, Elapsed: 0.3},
		{Time: at(310), Node: "n1", Step: "hook:post", State: StateFailed, Error: `exit 1: "a > b"`, Elapsed: 1.5},
		{Node: "n2", State: StateNodeFailed, Error: "x"}, // zero time: filled in
	}
	for _, e := range in {
		r.Report(e)
	}
	r.Close()

	if !strings.Contains(buf.String(), `"error":"exit 1: \"a > b\""`) {
		t.Errorf("error not written verbatim:\n%s", buf.String())
	}
	var got []Event
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	want := []Event{in[0], in[1], in[2], in[5], in[6], in[7], in[8], in[9]}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	last := got[len(got)-1]
	if time.Since(last.Time) > time.Minute || last.Time.IsZero() {
		t.Errorf("zero Time not filled with now: %v", last.Time)
	}
	got[len(got)-1].Time = time.Time{}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) {
			t.Errorf("event %d time %v, want %v", i, got[i].Time, want[i].Time)
		}
		got[i].Time, want[i].Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestConcurrent checks that lines from many goroutines never interleave and
// none are lost; without the reporters' mutex bytes.Buffer gets garbled.
func TestConcurrent(t *testing.T) {
	const nodes, steps = 20, 1000
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	run := func(r Reporter) {
		var wg sync.WaitGroup
		start := make(chan struct{}) // maximise overlap
		for i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				node := fmt.Sprintf("10.0.0.%d", i)
				r.Report(Event{Time: t0, Node: node, Step: "rootfs", State: StateStart})
				for b := int64(1); b <= steps; b++ {
					// 250 ms apart, so JSON keeps them all.
					r.Report(Event{Time: t0.Add(time.Duration(b) * 250 * time.Millisecond), Node: node,
						Step: "rootfs", State: StateProgress, Bytes: b, Total: steps})
				}
				r.Report(Event{Time: t0.Add(time.Minute), Node: node, Step: "rootfs", State: StateDone, Elapsed: 1})
				r.Report(Event{Node: node, State: StateNodeDone})
			}()
		}
		close(start)
		wg.Wait()
		r.Close()
	}

	var pb bytes.Buffer
	run(NewPlain(&pb))
	perNode := map[string]int{}
	for _, l := range lines(pb.String()) {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], "10.0.0.") {
			t.Fatalf("garbled plain line %q", l)
		}
		perNode[f[0]]++
	}
	for node, n := range perNode {
		if n != 7 { // start, 4 progress, done, node-done
			t.Errorf("%s: %d plain lines, want 7", node, n)
		}
	}
	if len(perNode) != nodes {
		t.Errorf("plain lines for %d nodes, want %d", len(perNode), nodes)
	}

	var jb bytes.Buffer
	run(NewJSON(&jb))
	count := map[string]int{}
	for _, l := range lines(jb.String()) {
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("garbled json line %q: %v", l, err)
		}
		count[e.Node]++
	}
	for node, n := range count {
		if n != steps+3 { // start, progress, done, node-done
			t.Errorf("%s: %d json lines, want %d", node, n, steps+3)
		}
	}
	if len(count) != nodes {
		t.Errorf("json lines for %d nodes, want %d", len(count), nodes)
	}

	var tb bytes.Buffer
	finished := make(chan struct{})
	go func() { run(NewTerminal(&tb, nil)); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("terminal reporter hung")
	}
	for i := range nodes {
		if node := fmt.Sprintf("10.0.0.%d ", i); !strings.Contains(tb.String(), node) {
			t.Errorf("terminal output lacks %q", node)
		}
	}
}

func TestTerminal(t *testing.T) {
	var buf bytes.Buffer
	nodes := []string{"10.250.0.11", "10.250.0.12", "10.250.0.13"}
	r := NewTerminal(&buf, nodes)
	r.Report(Event{Node: nodes[0], Step: "rootfs", State: StateStart})
	r.Report(Event{Node: nodes[0], Step: "rootfs", State: StateProgress, Bytes: gib, Total: 2 * gib})
	r.Report(Event{Node: nodes[0], Step: "rootfs", State: StateProgress, Bytes: 2 * gib, Total: 2 * gib})
	r.Report(Event{Node: nodes[0], Step: "rootfs", State: StateDone, Elapsed: 2})
	r.Report(Event{Node: nodes[0], State: StateNodeDone, Elapsed: 3})
	r.Report(Event{Node: nodes[1], Step: "hook:pre-init-host", State: StateStart})
	r.Report(Event{Node: nodes[1], Step: "hook:pre-init-host", State: StateFailed, Error: "exit status 3: disk full"})
	r.Report(Event{Node: nodes[1], State: StateNodeFailed, Error: "exit status 3: disk full"})
	r.Report(Event{Node: "10.9.9.9", Step: "rootfs", State: StateStart}) // not in the list
	// nodes[2] never finishes, as when a run is cancelled.

	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
	r.Close() // idempotent

	out := buf.String()
	// The last frame drawn holds each node's final bar.
	bar := map[string]string{}
	for _, l := range lines(out) {
		if i := strings.LastIndex(l, "\x1b[J"); i >= 0 { // mpb redrawing over the last frame
			l = l[i+len("\x1b[J"):]
		}
		if f := strings.Fields(l); len(f) > 0 && strings.Contains(l, "[") {
			bar[f[0]] = l
		}
	}
	for node, want := range map[string]string{
		"10.250.0.11": "=] done",
		"10.250.0.12": "] failed: exit status 3: disk full",
		"10.250.0.13": "]",
		"10.9.9.9":    "] start",
	} {
		if !strings.Contains(bar[node], want) {
			t.Errorf("bar of %s = %q, want it to contain %q; output:\n%s", node, bar[node], want, out)
		}
	}
	// The failure is printed in full after the bars, once.
	wantTail := "10.250.0.12      hook:pre-init-host  failed: exit status 3: disk full\n"
	if !strings.HasSuffix(out, wantTail) {
		t.Errorf("output does not end with %q:\n%q", wantTail, out)
	}
	if n := strings.Count(out, "node-failed"); n != 0 {
		t.Errorf("duplicate node-failed error printed %d times", n)
	}
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	for format, want := range map[string]Reporter{"": &plain{}, "text": &plain{}, "json": &jsonReporter{}} {
		r, err := New(&buf, format, nil)
		if err != nil {
			t.Fatalf("New(%q): %v", format, err)
		}
		if reflect.TypeOf(r) != reflect.TypeOf(want) {
			t.Errorf("New(%q) = %T, want %T", format, r, want)
		}
	}
	if _, err := New(&buf, "yaml", nil); err == nil || !strings.Contains(err.Error(), "yaml") {
		t.Errorf("New(yaml) error = %v, want one naming yaml", err)
	}
}

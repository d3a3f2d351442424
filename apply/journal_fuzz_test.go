package apply

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenJournalRefuses: a journal that cannot be read is an error naming
// the file and what is wrong, not an empty journal (which would redo every
// step) nor a panic.
func TestOpenJournalRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		data string
		want string
	}{
		"not json":      {"not json", "invalid character"},
		"truncated":     {`{"cluster": "demo", "nodes": {"10.0.0.2": {"ru`, "unexpected end of JSON input"},
		"other cluster": {`{"cluster": "other"}`, `belongs to cluster "other", not "demo"`},
		"nodes a list":  {`{"cluster": "demo", "nodes": []}`, "cannot unmarshal array"},
		"step a string": {`{"cluster": "demo", "nodes": {"10.0.0.2": {"runtime": "done"}}}`, "cannot unmarshal string"},
		"bad time":      {`{"cluster": "demo", "failed": {"10.0.0.2": {"time": "yesterday"}}}`, "cannot parse"},
		"year 10000":    {`{"cluster": "demo", "apps": {"web": {"done": "10000-01-01T00:00:00Z"}}}`, "cannot parse"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.json")
			os.WriteFile(path, []byte(c.data), 0o600)
			_, err := OpenJournal(path, "demo")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want one naming %s and saying %q", err, path, c.want)
			}
		})
	}
	dir := t.TempDir()
	if _, err := OpenJournal(dir, "demo"); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a directory as the journal: %v", err)
	}
}

// FuzzOpenJournal: whatever the file holds, OpenJournal does not panic;
// when it opens the journal, every accessor works on it, what it saves
// opens again the same, and the records it is given are kept.
func FuzzOpenJournal(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"cluster": "demo"}`,
		`{"cluster": "demo", "nodes": {"10.0.0.2": {"runtime": {"key": "sha256:aa", "done": "2025-01-02T03:04:05Z"}}},
		  "hosts": {"10.0.0.2": {"roles": ["master"], "user": "root", "port": 22, "steps": ["runtime"]}},
		  "apps": {"web": {"key": "k", "done": "2025-01-02T03:04:05.123+02:00"}}, "plannedApps": ["web"],
		  "failed": {"10.0.0.3": {"step": "join", "error": "boom", "time": "2025-01-02T03:04:05Z"}}}`,
		`{"cluster": "demo", "nodes": {"10.0.0.2": null}, "hosts": null, "apps": null, "failed": null}`,
		`{"cluster": "demo", "nodes": {"": {"": {}}}, "failed": {"apps": {}}}`,
		`{"cluster": "demo", "nodes": {"10.0.0.2": {"runtime": {"done": "0000-01-01T00:00:00+23:59"}}}}`,
		`{"cluster": "demo", "hosts": {"\xff": {"port": -1}}}`,
		`{"cluster": "other"}`,
		`{"cluster": "demo", "nodes": []}`,
		`{"cluster": "demo", "nodes": {"10.0.0.2": {"ru`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	// Every record is a file synced to disk: on a memory filesystem, where
	// there is one, the fuzzer runs many times more inputs.
	base := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "hoist-journal-fuzz-"); err == nil {
		base = shm
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "journal.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := OpenJournal(path, "demo")
		if err != nil {
			return
		}
		saved, err := j.Bytes()
		if err != nil {
			t.Fatalf("an opened journal cannot be saved: %v", err)
		}
		// What it saves opens again, and saves the same.
		again := filepath.Join(dir, "again.json")
		os.WriteFile(again, saved, 0o600)
		j2, err := OpenJournal(again, "demo")
		if err != nil {
			t.Fatalf("the journal saved does not open: %v\n%s", err, saved)
		}
		if resaved, _ := j2.Bytes(); !bytes.Equal(resaved, saved) {
			t.Fatalf("saved twice, differs:\n%s\n%s", saved, resaved)
		}

		for _, n := range append(j.Nodes(), "10.9.9.9", AppsNode) {
			j.Done(n, "runtime", "k")
			j.StepDone(n, "runtime")
			j.Host(n)
			j.Failed(n)
		}
		for _, a := range j.Apps() {
			j.AppDone(a, "k")
		}
		j.PlannedApps()
		j.Path()

		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		// A few of the nodes: each record is a write of the journal.
		nodes := j.Nodes()
		for _, n := range append(nodes[:min(len(nodes), 3)], "10.9.9.9") {
			must("MarkDone", j.MarkDone(n, "fuzz", "k1"))
			if !j.Done(n, "fuzz", "k1") || j.Done(n, "fuzz", "k2") {
				t.Fatalf("%s: MarkDone not recorded", n)
			}
			must("SetHost", j.SetHost(n, HostRecord{User: "root", Port: 22}))
			if h, ok := j.Host(n); !ok || h.User != "root" {
				t.Fatalf("%s: SetHost not recorded", n)
			}
			must("SetFailed", j.SetFailed(n, "fuzz", errors.New("boom")))
			if fl, ok := j.Failed(n); !ok || fl.Step != "fuzz" {
				t.Fatalf("%s: SetFailed not recorded", n)
			}
			must("SetFailed nil", j.SetFailed(n, "fuzz", nil))
			if _, ok := j.Failed(n); ok {
				t.Fatalf("%s: failure not cleared", n)
			}
		}
		must("MarkAppDone", j.MarkAppDone("fuzz", "k"))
		if !j.AppDone("fuzz", "k") {
			t.Fatal("MarkAppDone not recorded")
		}
		must("SetPlannedApps", j.SetPlannedApps([]string{"fuzz"}))

		// What was saved on disk opens, with the records just made.
		j3, err := OpenJournal(path, "demo")
		if err != nil {
			t.Fatalf("the journal written does not open: %v", err)
		}
		if !j3.Done("10.9.9.9", "fuzz", "k1") || !j3.AppDone("fuzz", "k") {
			t.Fatal("records lost on disk")
		}

		must("ForgetApps", j.ForgetApps())
		if len(j.Apps()) != 0 || len(j.PlannedApps()) != 0 {
			t.Fatal("ForgetApps kept apps")
		}
		for _, n := range j.Nodes() {
			must("Forget", j.Forget(n))
		}
		if len(j.Nodes()) != 0 {
			t.Fatalf("Forget kept nodes: %v", j.Nodes())
		}
	})
}

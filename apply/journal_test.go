package apply

import (
	"testing"

	"github.com/hoistdev/hoist/layout"
)

// TestJournalVersion: the version an apply brought a node to outlives the
// next apply's host record, a reopened journal has it, and status
// shows it.
func TestJournalVersion(t *testing.T) {
	root := t.TempDir()
	path := layout.Local{Root: root}.Cluster("demo").Journal()
	j, err := OpenJournal(path, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SetVersion("10.0.0.2", "v1.36.3"); err != nil {
		t.Fatal(err)
	}
	if h, _ := j.Host("10.0.0.2"); h.Version != "" {
		t.Errorf("a version recorded for a node without a host record: %q", h.Version)
	}
	j.SetHost("10.0.0.2", HostRecord{Roles: []string{"master"}, User: "root", Port: 22})
	j.SetVersion("10.0.0.2", "v1.36.3")
	j.SetHost("10.0.0.2", HostRecord{Roles: []string{"master"}, User: "root", Port: 22, Steps: []string{"kube-upgrade"}})
	j, err = OpenJournal(path, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := j.Host("10.0.0.2"); h.Version != "v1.36.3" || len(h.Steps) != 1 {
		t.Errorf("host record %+v", h)
	}
	// hoist status shows it.
	rows, err := NamedStatus(root, "demo")
	if err != nil || len(rows) != 1 || rows[0].Version != "v1.36.3" {
		t.Errorf("status %+v, %v", rows, err)
	}
}

package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.podman.io/storage/pkg/ioutils"

	"github.com/hoistdev/hoist/apply/step"
)

// Journal records, per node, the steps of an apply that finished and the
// key they finished with (the digest of what they installed). A step is
// redone only when it is missing or its key changed: an apply that failed or
// was interrupted resumes where it stopped.
//
// Every record is written to disk at once (a temporary file renamed over the
// journal), so a killed hoist loses at most the step it was running.
type Journal struct {
	path string
	mu   sync.Mutex
	data journalData
}

type journalData struct {
	Cluster string                          `json:"cluster"`
	Nodes   map[string]map[string]stepState `json:"nodes"` // node address → step → state
	Hosts   map[string]HostRecord           `json:"hosts,omitempty"`
	Apps    map[string]stepState            `json:"apps,omitempty"` // app → state
	Planned []string                        `json:"plannedApps,omitempty"`
	Failed  map[string]Failure              `json:"failed,omitempty"`
	// Upgrade is the upgrade of Kubernetes an apply began and no apply
	// has finished yet.
	Upgrade *step.Upgrade `json:"upgrade,omitempty"`
}

// HostRecord is what the journal keeps of a node besides its steps: how to
// reach it once the Clusterfile no longer lists it (to clean it), and the
// steps of its last plan (for status). No secret: passwords and
// passphrases come from the Clusterfile each time.
type HostRecord struct {
	Roles      []string `json:"roles"`
	User       string   `json:"user"`
	Port       int      `json:"port"`
	PrivateKey string   `json:"privateKey,omitempty"`
	Steps      []string `json:"steps"`
	// Version is the Kubernetes version the last apply that finished on
	// the node brought it to (an upgrade that failed there leaves the
	// one before).
	Version string `json:"version,omitempty"`
}

// Failure is the last failed step of a node.
type Failure struct {
	Step  string    `json:"step"`
	Error string    `json:"error"`
	Time  time.Time `json:"time"`
}

type stepState struct {
	Key  string    `json:"key"`
	Done time.Time `json:"done"`
}

// OpenJournal reads the journal at path, or starts an empty one.
func OpenJournal(path, cluster string) (*Journal, error) {
	j := &Journal{path: path, data: journalData{Cluster: cluster, Nodes: map[string]map[string]stepState{}, Hosts: map[string]HostRecord{}, Failed: map[string]Failure{}, Apps: map[string]stepState{}}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	if err := json.Unmarshal(data, &j.data); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if j.data.Cluster != cluster {
		return nil, fmt.Errorf("journal %s belongs to cluster %q, not %q", path, j.data.Cluster, cluster)
	}
	if j.data.Nodes == nil {
		j.data.Nodes = map[string]map[string]stepState{}
	}
	if j.data.Hosts == nil {
		j.data.Hosts = map[string]HostRecord{}
	}
	if j.data.Failed == nil {
		j.data.Failed = map[string]Failure{}
	}
	if j.data.Apps == nil {
		j.data.Apps = map[string]stepState{}
	}
	return j, nil
}

// Done tells whether the step finished on the node with this key.
func (j *Journal) Done(node, step, key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.data.Nodes[node][step]
	return ok && s.Key == key
}

// MarkDone records that the step finished on the node with this key.
func (j *Journal) MarkDone(node, step, key string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.data.Nodes[node] == nil {
		j.data.Nodes[node] = map[string]stepState{}
	}
	j.data.Nodes[node][step] = stepState{Key: key, Done: time.Now().UTC()}
	return j.save()
}

// AppsNode is the name under which the journal records failures of the
// apps, which belong to the cluster rather than to a node.
const AppsNode = "apps"

// AppDone tells whether the app was launched with this key.
func (j *Journal) AppDone(app, key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.data.Apps[app]
	return ok && s.Key == key
}

// MarkAppDone records that the app was launched with this key.
func (j *Journal) MarkAppDone(app, key string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data.Apps[app] = stepState{Key: key, Done: time.Now().UTC()}
	return j.save()
}

// Apps lists the apps the journal records as launched, sorted.
func (j *Journal) Apps() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for a := range j.data.Apps {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// SetPlannedApps records the apps of the last plan, for status.
func (j *Journal) SetPlannedApps(apps []string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data.Planned = apps
	return j.save()
}

// PlannedApps returns what SetPlannedApps recorded.
func (j *Journal) PlannedApps() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.data.Planned
}

// ForgetApps drops the apps, when the cluster is deleted.
func (j *Journal) ForgetApps() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data.Apps = map[string]stepState{}
	j.data.Planned = nil
	delete(j.data.Failed, AppsNode)
	return j.save()
}

// SetHost records how to reach a node and the steps planned for it; the
// version recorded stays (SetVersion).
func (j *Journal) SetHost(node string, h HostRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.data.Nodes[node] == nil {
		j.data.Nodes[node] = map[string]stepState{}
	}
	h.Version = j.data.Hosts[node].Version
	j.data.Hosts[node] = h
	return j.save()
}

// SetUpgrade records the upgrade an apply begins; nil once one finished.
func (j *Journal) SetUpgrade(up *step.Upgrade) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data.Upgrade = up
	return j.save()
}

// Upgrade is the upgrade an apply began that none finished, nil when none.
func (j *Journal) Upgrade() *step.Upgrade {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.data.Upgrade
}

// SetVersion records the Kubernetes version an apply brought the node to.
func (j *Journal) SetVersion(node, version string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	h, ok := j.data.Hosts[node]
	if !ok || h.Version == version {
		return nil
	}
	h.Version = version
	j.data.Hosts[node] = h
	return j.save()
}

// Host returns what SetHost recorded.
func (j *Journal) Host(node string) (HostRecord, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	h, ok := j.data.Hosts[node]
	return h, ok
}

// SetFailed records the failure of a node's step; a nil err clears it.
func (j *Journal) SetFailed(node, step string, err error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err == nil {
		if _, ok := j.data.Failed[node]; !ok {
			return nil
		}
		delete(j.data.Failed, node)
	} else {
		j.data.Failed[node] = Failure{Step: step, Error: err.Error(), Time: time.Now().UTC()}
	}
	return j.save()
}

// Failed returns the node's last failure, if it has one.
func (j *Journal) Failed(node string) (Failure, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, ok := j.data.Failed[node]
	return f, ok
}

// StepDone returns when the node's step finished, if it did.
func (j *Journal) StepDone(node, step string) (time.Time, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.data.Nodes[node][step]
	return s.Done, ok
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Bytes is the journal as saved.
func (j *Journal) Bytes() ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return json.MarshalIndent(j.data, "", "  ")
}

// Forget drops a node: after it is cleaned, or with delete --force.
func (j *Journal) Forget(node string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.data.Nodes, node)
	delete(j.data.Hosts, node)
	delete(j.data.Failed, node)
	return j.save()
}

// Nodes lists the nodes the journal knows, sorted.
func (j *Journal) Nodes() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for n := range j.data.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (j *Journal) save() error {
	data, err := json.MarshalIndent(j.data, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	return ioutils.AtomicWriteFile(j.path, data, 0o600)
}

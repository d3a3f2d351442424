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
}

type stepState struct {
	Key  string    `json:"key"`
	Done time.Time `json:"done"`
}

// OpenJournal reads the journal at path, or starts an empty one.
func OpenJournal(path, cluster string) (*Journal, error) {
	j := &Journal{path: path, data: journalData{Cluster: cluster, Nodes: map[string]map[string]stepState{}}}
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

// Forget drops a node: after it is cleaned, or with delete --force.
func (j *Journal) Forget(node string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.data.Nodes, node)
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

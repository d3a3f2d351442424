package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/layout"
)

// NodeStatus is one row of hoist status: a node of a cluster, or its apps.
type NodeStatus struct {
	Cluster string   `json:"cluster"`
	Node    string   `json:"node"`
	Roles   []string `json:"roles"`
	// Version is the Kubernetes version the last apply that finished on
	// the node brought it to.
	Version string `json:"version,omitempty"`
	Status  string `json:"status"`
	Done    int    `json:"stepsDone"`
	Steps   int    `json:"steps"`
	Error   string `json:"error,omitempty"`
}

// setStatus sets failed (with the journal's error), ready or pending.
func (row *NodeStatus) setStatus(j *Journal, node string) {
	switch fail, failed := j.Failed(node); {
	case failed:
		row.Status, row.Error = "failed", fail.Step+": "+fail.Error
	case row.Done == row.Steps:
		row.Status = "ready"
	default:
		row.Status = "pending"
	}
}

// Status reads, from the journals under root, the state of every node of
// the cluster of a Clusterfile (with its hosts not yet applied), or, with
// c nil, of every cluster applied from here, each against the Clusterfile
// its state keeps, when it keeps one, as if it were given.
func Status(root string, c *clusterfile.Cluster) ([]NodeStatus, error) {
	rows := []NodeStatus{}
	if c != nil {
		return clusterStatus(root, c.Name, c, rows)
	}
	names, err := Clusters(root)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if rows, err = keptStatus(root, name, rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// NamedStatus is Status of the one cluster name applied from here.
func NamedStatus(root, name string) ([]NodeStatus, error) {
	if err := agent.CheckClusterName(name); err != nil {
		return nil, fmt.Errorf("cluster name: %w", err)
	}
	names, err := Clusters(root)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(names, name) {
		return nil, fmt.Errorf("cluster %s: not applied from here (no state in %s)", name, layout.Local{Root: root}.Cluster(name).Dir)
	}
	return keptStatus(root, name, []NodeStatus{})
}

// keptStatus adds the rows of cluster name, against its kept Clusterfile
// when there is one (a cluster applied by a hoist that kept none has its
// journal only).
func keptStatus(root, name string, rows []NodeStatus) ([]NodeStatus, error) {
	var c *clusterfile.Cluster
	k, err := KeptClusterfile(root, name)
	switch {
	case err == nil:
		c = &k.Cluster
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return clusterStatus(root, name, c, rows)
}

func clusterStatus(root, name string, c *clusterfile.Cluster, rows []NodeStatus) ([]NodeStatus, error) {
	j, err := OpenJournal(layout.Local{Root: root}.Cluster(name).Journal(), name)
	if err != nil {
		return nil, err
	}
	listed := map[string]bool{}
	if c != nil {
		for _, n := range c.Nodes {
			listed[n.IP.String()] = true
			if _, ok := j.Host(n.IP.String()); !ok {
				rows = append(rows, NodeStatus{Cluster: name, Node: n.IP.String(), Roles: clusterfile.RoleNames(n.Roles), Status: "not applied"})
			}
		}
	}
	for _, node := range j.Nodes() {
		h, _ := j.Host(node)
		row := NodeStatus{Cluster: name, Node: node, Roles: h.Roles, Version: h.Version, Steps: len(h.Steps)}
		for _, s := range h.Steps {
			if _, ok := j.StepDone(node, s); ok {
				row.Done++
			}
		}
		row.setStatus(j, node)
		if c != nil && !listed[node] {
			row.Status = "to remove"
		}
		rows = append(rows, row)
	}
	if planned := j.PlannedApps(); len(planned) > 0 {
		done := map[string]bool{}
		for _, a := range j.Apps() {
			done[a] = true
		}
		row := NodeStatus{Cluster: name, Node: AppsNode, Roles: []string{}, Steps: len(planned)}
		for _, a := range planned {
			if done[a] {
				row.Done++
			}
		}
		row.setStatus(j, AppsNode)
		rows = append(rows, row)
	}
	return rows, nil
}

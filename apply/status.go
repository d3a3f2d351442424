package apply

import (
	"os"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/layout"
)

// NodeStatus is one row of hoist status: a node of a cluster, or its apps.
type NodeStatus struct {
	Cluster string   `json:"cluster"`
	Node    string   `json:"node"`
	Roles   []string `json:"roles"`
	Status  string   `json:"status"`
	Done    int      `json:"stepsDone"`
	Steps   int      `json:"steps"`
	Error   string   `json:"error,omitempty"`
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
// c nil, of every cluster applied from here.
func Status(root string, c *clusterfile.Cluster) ([]NodeStatus, error) {
	rows := []NodeStatus{}
	if c != nil {
		return clusterStatus(root, c.Name, c, rows)
	}
	local := layout.Local{Root: root}
	dirs, _ := os.ReadDir(local.Clusters())
	for _, d := range dirs {
		if _, err := os.Stat(local.Cluster(d.Name()).Journal()); err != nil {
			continue
		}
		var err error
		if rows, err = clusterStatus(root, d.Name(), nil, rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
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
		row := NodeStatus{Cluster: name, Node: node, Roles: h.Roles, Steps: len(h.Steps)}
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

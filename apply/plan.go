package apply

import (
	"fmt"
	"io"
	"strings"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/launch"
	"github.com/hoistdev/hoist/apply/step"
)

// PlannedStep is one step of one node.
type PlannedStep struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	Done bool   `json:"done"`
	// Changes are what an app to launch would create or change, when the
	// cluster could be asked (dry run).
	Changes []launch.Change `json:"changes,omitempty"`
	step    *step.Step
}

// NodePlan is the ordered steps of one node.
type NodePlan struct {
	Node  string        `json:"node"`
	Roles []string      `json:"roles"`
	Steps []PlannedStep `json:"steps"`
}

// Plan is what an apply will do: the steps of every node of the
// Clusterfile, and the nodes the journal knows that the Clusterfile no
// longer lists, which are drained and cleaned only with Prune.
type Plan struct {
	Cluster string     `json:"cluster"`
	Nodes   []NodePlan `json:"nodes"`
	Remove  []string   `json:"remove"`
	// Prune: the nodes of Remove are removed by this apply; without it
	// they are left as they are (as kubectl apply without --prune).
	Prune bool `json:"prune"`
	// Apps are launched once every node is done, in order.
	Apps []PlannedStep `json:"apps"`
	// AppsNote says why the image's apps are not planned.
	AppsNote string `json:"appsNote,omitempty"`
	// PreviewErr, in a dry run, is why the apps' changes are not listed.
	PreviewErr error `json:"-"`
	// Upgrade is the change of Kubernetes version the apply makes to the
	// running cluster, if any; MaxUnavailable is how many workers it
	// upgrades at once.
	Upgrade        *step.Upgrade `json:"upgrade,omitempty"`
	MaxUnavailable int           `json:"maxUnavailable,omitempty"`
}

// makePlan compares the cluster with the journal: each node gets the steps
// whose Key accepts it, done when the journal has that key. prune plans
// the removal of the nodes the Clusterfile no longer lists.
func makePlan(in *step.Input, steps []step.Step, apps []PlannedStep, j *Journal, prune bool) Plan {
	c := in.Cluster
	p := Plan{Cluster: c.Name, Nodes: []NodePlan{}, Remove: []string{}, Prune: prune, Apps: []PlannedStep{}}
	for _, a := range apps {
		p.Apps = append(p.Apps, PlannedStep{Name: a.Name, Key: a.Key, Done: j.AppDone(a.Name, a.Key)})
	}
	listed := map[string]bool{}
	for _, n := range c.Nodes {
		node := n.IP.String()
		listed[node] = true
		np := NodePlan{Node: node, Roles: clusterfile.RoleNames(n.Roles)}
		for i := range steps {
			s := &steps[i]
			if key, ok := s.Key(in, n); ok {
				np.Steps = append(np.Steps, PlannedStep{Name: s.Name, Key: key, Done: j.Done(node, s.Name, key), step: s})
			}
		}
		p.Nodes = append(p.Nodes, np)
	}
	for _, node := range j.Nodes() {
		if !listed[node] {
			p.Remove = append(p.Remove, node)
		}
	}
	return p
}

func (s PlannedStep) state() string {
	if s.Done {
		return "done"
	}
	return "to do"
}

// Print writes the plan for people: per node, each step and whether it is
// done or to do.
func (p Plan) Print(w io.Writer) {
	if p.Upgrade != nil {
		fmt.Fprintf(w, "upgrade of Kubernetes %s -> %s\n", p.Upgrade.From, p.Upgrade.To)
		fmt.Fprintf(w, "  first    every node answers; a backup (etcd snapshot and PKI) is taken to this machine\n")
		fmt.Fprintf(w, "  then     the masters one at a time, then the workers %d at a time (--max-unavailable)\n", p.MaxUnavailable)
	}
	for _, n := range p.Nodes {
		fmt.Fprintf(w, "%s (%s)\n", n.Node, strings.Join(n.Roles, ", "))
		for _, s := range n.Steps {
			fmt.Fprintf(w, "  %-16s %s\n", s.Name, s.state())
		}
	}
	for _, n := range p.Remove {
		if p.Prune {
			fmt.Fprintf(w, "%s (no longer listed)\n  %-16s to do\n", n, stepClean)
		} else {
			fmt.Fprintf(w, "%s (no longer listed)\n  %-16s left as it is: apply --prune removes it\n", n, stepClean)
		}
	}
	if p.AppsNote != "" {
		fmt.Fprintf(w, "apps\n  %s\n", p.AppsNote)
	}
	if len(p.Apps) > 0 {
		fmt.Fprintln(w, "apps")
		for _, a := range p.Apps {
			fmt.Fprintf(w, "  %-16s %s\n", a.Name, a.state())
			for _, c := range a.Changes {
				fmt.Fprintf(w, "    %-8s %s %s\n", c.Action, c.Kind, c.Name)
			}
		}
	}
}

// ToDo counts the steps not done, and the nodes to remove.
func (p Plan) ToDo() int {
	n := 0
	if p.Prune {
		n = len(p.Remove)
	}
	for _, a := range p.Apps {
		if !a.Done {
			n++
		}
	}
	for _, np := range p.Nodes {
		for _, s := range np.Steps {
			if !s.Done {
				n++
			}
		}
	}
	return n
}

// Removed lists the nodes this apply removes: none without Prune.
func (p Plan) Removed() []string {
	if !p.Prune {
		return nil
	}
	return p.Remove
}

// Kept lists the nodes the Clusterfile no longer lists that this apply
// leaves as they are (no Prune).
func (p Plan) Kept() []string {
	if p.Prune {
		return nil
	}
	return p.Remove
}

package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/apply/launch"
)

// Step names, in the order they run on a node.
const (
	StepInstallHoist = "install-hoist"
	StepRootfs       = "rootfs"
	StepRegistry     = "registry"
	StepMirrors      = "mirrors"
	// The Kubernetes runtime's steps (images with etc/kubeadm.yaml).
	StepKubeNode    = "kube-node"    // binaries, containerd, kubelet service
	StepKubeInit    = "kube-init"    // kubeadm init, first master
	StepKubeJoin    = "kube-join"    // kubeadm join, every other node
	StepKubeNetwork = "kube-network" // hoist's pod network: bridge and routes
	StepKubeReady   = "kube-ready"   // Ready, then labels and taints
)

// Stages: every node finishes a stage before any node starts the next,
// since a join needs the init, and routes need every node's pod range.
const (
	stageHost        = iota // distribution, registry, mirrors, node setup
	stageInit               // the first master's kubeadm init
	stageJoinMasters        // other masters join, one at a time
	stageJoinWorkers        // workers join, in parallel
	stageCluster            // network, readiness, labels, post-install
	stages
)

// PlanInput is what the steps' keys are made of: when one changes, the
// steps that depend on it are redone.
type PlanInput struct {
	ImageDigest string
	HoistDigest string
	// TLSDigest names the cluster CA and registry certificate: new ones
	// (registry nodes or domain changed) are installed again.
	TLSDigest string
	Plugins   []clusterfile.Plugin
	// Apps are the apps to launch, in order, each with its key.
	Apps []PlannedStep
	// NoRegistry is an image that bundles no container image: no
	// registry to run, no mirrors to point at it.
	NoRegistry bool
	// Kubernetes is an image that brings Kubernetes up with kubeadm;
	// HoistNetwork, that hoist gives it its pod network (no CNI app).
	Kubernetes, HoistNetwork bool
}

// PlannedStep is one step of one node.
type PlannedStep struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	Done bool   `json:"done"`
	// Changes are what an app to launch would create or change, when the
	// cluster could be asked (dry run).
	Changes []launch.Change `json:"changes,omitempty"`
	stage   int
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
}

// MakePlan compares the cluster with the journal; prune plans the removal
// of the nodes the Clusterfile no longer lists.
func MakePlan(c clusterfile.Cluster, j *Journal, in PlanInput, prune bool) Plan {
	p := Plan{Cluster: c.Name, Nodes: []NodePlan{}, Remove: []string{}, Prune: prune, Apps: []PlannedStep{}}
	for _, a := range in.Apps {
		p.Apps = append(p.Apps, PlannedStep{Name: a.Name, Key: a.Key, Done: j.AppDone(a.Name, a.Key)})
	}
	listed := map[string]bool{}
	var firstMaster netip.Addr
	if m := c.Masters(); len(m) > 0 {
		firstMaster = m[0].IP
	}
	var ips []string
	for _, n := range c.Nodes {
		ips = append(ips, n.IP.String())
	}
	sort.Strings(ips)
	for _, n := range c.Nodes {
		node := n.IP.String()
		listed[node] = true
		np := NodePlan{Node: node, Roles: n.Roles}
		stage := stageHost
		add := func(name, key string) {
			np.Steps = append(np.Steps, PlannedStep{Name: name, Key: key, Done: j.Done(node, name, key), stage: stage})
		}
		add(StepInstallHoist, in.HoistDigest)
		// Registry nodes hold the image's registry/, the others do not:
		// the same image is a different tree for each.
		isRegistry := slices.Contains(c.Registry.Nodes, n.IP) && !in.NoRegistry
		add(StepRootfs, RootfsKey(in.ImageDigest, isRegistry))
		hook := func(phase string) {
			if key := pluginsKey(in, phase, n); key != "" {
				add("hook:"+phase, key)
			}
		}
		hook(clusterfile.PhasePreInitHost)
		if isRegistry {
			// The registry listens on the node's address: part of its key,
			// so that a registry that listened everywhere is restarted.
			add(StepRegistry, fmt.Sprintf("%s %s:%d %s listen %s", in.ImageDigest, c.Registry.Domain, c.Registry.Port, in.TLSDigest, n.IP))
		}
		if !in.NoRegistry {
			add(StepMirrors, mirrorsKey(c, in))
		}
		hook(clusterfile.PhasePostInitHost)
		if in.Kubernetes {
			add(StepKubeNode, in.ImageDigest)
		}
		hook(clusterfile.PhasePreInstall)
		if in.Kubernetes {
			// A done init is never redone; a join is redone only when
			// the node's role changes.
			switch {
			case n.IP == firstMaster:
				stage = stageInit
				add(StepKubeInit, kubeInitKey)
			case n.IsMaster():
				stage = stageJoinMasters
				add(StepKubeJoin, joinKey(n))
			default:
				stage = stageJoinWorkers
				add(StepKubeJoin, joinKey(n))
			}
			stage = stageCluster
			if in.HoistNetwork {
				// Every node routes to every other node's pods: a node
				// added or removed changes every node's routes.
				add(StepKubeNetwork, in.ImageDigest+" "+strings.Join(ips, ","))
			}
			h := sha256.New()
			json.NewEncoder(h).Encode(struct {
				Labels map[string]string
				Taints []string
			}{n.Labels, n.Taints})
			add(StepKubeReady, "sha256:"+hex.EncodeToString(h.Sum(nil)))
		}
		stage = stageCluster
		hook(clusterfile.PhasePostInstall)
		p.Nodes = append(p.Nodes, np)
	}
	for _, node := range j.Nodes() {
		if !listed[node] {
			p.Remove = append(p.Remove, node)
		}
	}
	return p
}

// kubeInitKey is the key of kube-init: a done init is never redone.
const kubeInitKey = "init"

// joinKey is the key of a node's kube-join: its role, so that a node that
// changes role joins again.
func joinKey(n clusterfile.Node) string {
	if n.IsMaster() {
		return "control-plane"
	}
	return "worker"
}

// pluginsKey is the digest of the hooks of a phase that apply to the node,
// in the order they run (by name); "" when there are none.
func pluginsKey(in PlanInput, phase string, n clusterfile.Node) string {
	hooks := HooksOf(in.Plugins, phase, n.Roles)
	if len(hooks) == 0 {
		return ""
	}
	h := sha256.New()
	json.NewEncoder(h).Encode(struct {
		Image string
		Hooks []clusterfile.Plugin
	}{in.ImageDigest, hooks})
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func mirrorsKey(c clusterfile.Cluster, in PlanInput) string {
	var regs []string
	for _, a := range c.Registry.Nodes {
		regs = append(regs, a.String())
	}
	return fmt.Sprintf("%s %s:%d %s %s", in.ImageDigest, c.Registry.Domain, c.Registry.Port, strings.Join(regs, ","), in.TLSDigest)
}

// RootfsKey is the digest marker of a node's rootfs: the image, with or
// without its registry/.
func RootfsKey(imageDigest string, withRegistry bool) string {
	if withRegistry {
		return imageDigest + "+registry"
	}
	return imageDigest
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
	for _, n := range p.Nodes {
		fmt.Fprintf(w, "%s (%s)\n", n.Node, strings.Join(n.Roles, ", "))
		for _, s := range n.Steps {
			fmt.Fprintf(w, "  %-16s %s\n", s.Name, s.state())
		}
	}
	for _, n := range p.Remove {
		if p.Prune {
			fmt.Fprintf(w, "%s (no longer listed)\n  %-16s to do\n", n, StepClean)
		} else {
			fmt.Fprintf(w, "%s (no longer listed)\n  %-16s left as it is: apply --prune removes it\n", n, StepClean)
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

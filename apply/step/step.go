// Package step is what the apply engine runs and what a runtime plugs into
// it: the Step type, the stages that order steps across nodes, and the
// Runtime interface. It is a leaf of the engine: the engine (package apply)
// and each runtime (apply/runtime/...) import it, never each other's
// internals.
//
// To add a step: write one file with a Step value (in package apply for a
// step of every cluster, in the runtime's package for a runtime's) and add
// it to the list (apply/steps.go, or the runtime's Steps).
package step

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/layout"
)

// Stage orders steps across nodes: every node finishes a stage before any
// node starts the next, since a join needs the init, and routes need every
// node's pod range.
type Stage int

const (
	Host           Stage = iota // distribution, registry, mirrors, node setup
	Init                        // the one node that makes the cluster (kubeadm init)
	UpgradeMasters              // the control plane's members upgraded, one at a time
	JoinMasters                 // other control-plane nodes join, one at a time
	UpgradeWorkers              // workers upgraded, MaxUnavailable at a time
	JoinWorkers                 // workers join, in parallel
	Cluster                     // network, readiness, labels, post-install
	Stages                      // the number of stages
)

// Step is one kind of work on a node. The engine plans it for the nodes
// its Key accepts, records it in the journal with that key when it
// succeeds, and runs it again only when the key changes or its Probe says
// that what it left is gone.
type Step struct {
	Name  string
	Stage Stage
	// Key is what the step installs on the node, as the journal records
	// it: everything the step's work depends on goes in. ok is false for a
	// node that does not get the step.
	Key func(in *Input, n clusterfile.Node) (key string, ok bool)
	// Run does the step on the node.
	Run func(ctx context.Context, t *Target) error
	// Probe, when set, is a command that exits with agent.ExitNotRunning
	// when what a done step left is gone (services of a machine that
	// restarted without systemd, routes after any restart): the step then
	// runs again. Only steps whose results do not stay on disk have one.
	Probe func(t *Target) string
	// Undo, when set, is the step's part of the shell script that cleans a
	// node (run by delete and prune, from the last step's part to the
	// first); it may use "$b", the node's hoist binary.
	Undo func(u Undo) string

	// Joins: the step changes the cluster's membership when it runs, so
	// the steps that RedoOnJoin run again on every node in this apply.
	Joins, RedoOnJoin bool
	// Restarts: the step (re)starts the node's services when it runs, so
	// the node's steps that RedoOnRestart run again.
	Restarts, RedoOnRestart bool
}

// Input is what the steps' keys are made of, for one apply.
type Input struct {
	Cluster     clusterfile.Cluster
	ImageDigest string
	HoistDigest string
	// TLSDigest names the cluster CA and registry certificate: new ones
	// (registry nodes or domain changed) are installed again.
	TLSDigest string
	Plugins   []clusterfile.Plugin
	// NoRegistry is an image that bundles no container image: no
	// registry to run, no mirrors to point at it.
	NoRegistry bool
	// IPs are the addresses of every node of the Clusterfile, sorted.
	IPs []string
	// InitNode is the master that makes the cluster: the first master
	// until the cluster is made, then the one that made it while it is
	// listed, then none (every new master joins).
	InitNode string
	// Upgrade, when set, is the change of version this apply makes to the
	// running cluster (Runtime.CheckCluster found it).
	Upgrade *Upgrade
}

// Upgrade is a change of the running cluster's Kubernetes version: From
// is the oldest version one of its parts (a control plane, a kubelet)
// still runs, To the image's.
type Upgrade struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Target is a node a step runs on, and what the engine lends the step.
type Target struct {
	Node    clusterfile.Node
	Cluster *clusterfile.Cluster
	Input   *Input
	Exec    ssh.Executor
	Dir     layout.Node
	// Hoist is the node's copy of hoist.
	Hoist string
	// Env is what the image's scripts and the hooks see.
	Env map[string]string
	// Master reaches the first master of the Clusterfile.
	Master func(ctx context.Context) (ssh.Executor, string, error)
	// Done tells whether the journal records the step done on a node with
	// this key.
	Done func(node, step, key string) bool
	// Progress reports the bytes of a transfer of the running step.
	Progress func(sent, total int64)
}

// Undo is what a step's part of the clean script may use.
type Undo struct {
	Cluster string
	Dir     layout.Node
	// WholeCluster tells that every node of the cluster goes at once: a
	// master then need not leave etcd, which could not answer.
	WholeCluster bool
}

// Runtime brings a cluster's orchestrator up on the nodes: it contributes
// its steps to the plan and does what only it knows. kubeadm's is in
// apply/runtime/kubeadm; the engine lists the runtimes it knows, as their
// zero values, in apply/runtimes.go.
type Runtime interface {
	// Detect returns the runtime for a cluster image, nil when the image
	// does not bring this runtime up, or an error when the Clusterfile
	// does not fit it. It is called on the zero value.
	Detect(c clusterfile.Cluster, image Image) (Runtime, error)
	// Steps are the runtime's node steps, in order: those of stage Host
	// run before the pre-install hooks, the others after them. The zero
	// value lists every step the runtime may plan (for the help text, and
	// to clean a node without its image).
	Steps() []Step
	// Version is the Kubernetes version the runtime installs, "" when its
	// tool chooses.
	Version() string
	// Kubeconfig reads the cluster's admin kubeconfig from a master, one
	// that reaches the cluster from the machine that runs hoist.
	Kubeconfig(ctx context.Context, master ssh.Executor, masterIP string) ([]byte, error)
	// Drain takes a node out of the cluster, from a master, before it is
	// cleaned.
	Drain(ctx context.Context, master ssh.Executor, ip string) error
	// CheckCluster refuses, before any node step runs, what the running
	// cluster (asked on a master) cannot take from the image: a version it
	// cannot go to. It returns the upgrade the image brings when some part
	// of the cluster runs an older version it can go from (an upgrade an
	// earlier apply left half done too), nil when none does.
	CheckCluster(ctx context.Context, master ssh.Executor) (*Upgrade, error)
}

// Image is what a runtime is detected from: the cluster image's tree and
// metadata, and where the cluster lives on the nodes.
type Image struct {
	Rootfs string
	Meta   *metadata.Metadata
	Dir    layout.Node
	// Hoist is hoist's binary on the nodes.
	Hoist string
}

// Hash is the key of a step made of several values: the sha256 of their
// JSON.
func Hash(v any) string {
	h := sha256.New()
	json.NewEncoder(h).Encode(v)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Exports is the env as sh export lines, sorted, each value quoted. Keys
// that are not variable names (Helm value paths such as image.tag, from
// ENV or APPENV) are for charts and templates: they are left out, never
// spliced into a script.
func Exports(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		if clusterfile.IsEnvName(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, ssh.Quote(env[k]))
	}
	return b.String()
}

// ServiceStatus is a Probe's command: it exits with agent.ExitNotRunning
// when one of the node's services (started by the agent) does not run.
func ServiceStatus(t *Target, services ...string) string {
	return Agent(t.Hoist, agent.ServiceStatusCmd{Names: services, StateDir: t.Dir.State()})
}

// Agent is the command line that runs a command of the node's agent with
// the node's hoist.
func Agent(hoist string, cmd interface{ Args() []string }) string {
	return ssh.Command(append([]string{hoist}, cmd.Args()...)...)
}

package apply

import (
	"slices"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/step"
)

// runtimes are the runtimes hoist knows, as zero values, tried in order on
// an image. A new runtime implements step.Runtime and gets a line here.
var runtimes = []step.Runtime{
	&kubeadm.Runtime{},
}

// detectRuntime returns the runtime the image brings up, nil for an image
// that brings none (an app image, or one of plain hosts).
func detectRuntime(c clusterfile.Cluster, image step.Image) (step.Runtime, error) {
	for _, zero := range runtimes {
		rt, err := zero.Detect(c, image)
		if err != nil || rt != nil {
			return rt, err
		}
	}
	return nil, nil
}

// recordedRuntime is the runtime whose cluster the journal records node as
// part of (its init or join step done), for delete and kubeconfig, which
// have no image to detect it from: nil when none is.
func recordedRuntime(j *Journal, node string) step.Runtime {
	for _, zero := range runtimes {
		if member(j, zero.Steps(), node) {
			return zero
		}
	}
	return nil
}

// clusterRuntime is the runtime of the cluster the journal records on any
// node, nil before a cluster is made.
func clusterRuntime(j *Journal) step.Runtime {
	for _, node := range j.Nodes() {
		if rt := recordedRuntime(j, node); rt != nil {
			return rt
		}
	}
	return nil
}

// recordedSteps are the steps of every runtime, for what reads the journal
// without an image (delete, kubeconfig).
func recordedSteps() []step.Step {
	var steps []step.Step
	for _, zero := range runtimes {
		steps = append(steps, zero.Steps()...)
	}
	return steps
}

// member tells whether the journal records node in the cluster: its step
// of stage Init, JoinMasters or JoinWorkers done.
func member(j *Journal, steps []step.Step, node string) bool {
	return doneStage(j, steps, node, step.Init) || doneStage(j, steps, node, step.JoinMasters) || doneStage(j, steps, node, step.JoinWorkers)
}

// made tells whether the journal records a cluster made: a node of it, the
// one that made it or another (the one that made it may have left).
func made(j *Journal, steps []step.Step) bool {
	return slices.ContainsFunc(j.Nodes(), func(node string) bool { return member(j, steps, node) })
}

// madeBy is the node the journal records as having made the cluster (its
// step of stage Init done), listed or not; "" when none is (before the
// cluster is made, or once that node left it).
func madeBy(j *Journal, steps []step.Step) string {
	for _, node := range j.Nodes() {
		if doneStage(j, steps, node, step.Init) {
			return node
		}
	}
	return ""
}

// controlPlane tells whether the journal records node as a member of its
// cluster's control plane: a master (as recorded) whose step of stage
// Init or JoinMasters is done.
func controlPlane(j *Journal, steps []step.Step, node string) bool {
	h, ok := j.Host(node)
	if !ok || !slices.Contains(h.Roles, string(clusterfile.RoleMaster)) {
		return false
	}
	return doneStage(j, steps, node, step.Init) || doneStage(j, steps, node, step.JoinMasters)
}

// doneStage tells whether the journal records a step of the stage done on
// node.
func doneStage(j *Journal, steps []step.Step, node string, stage step.Stage) bool {
	for _, s := range steps {
		if s.Stage != stage {
			continue
		}
		if _, done := j.StepDone(node, s.Name); done {
			return true
		}
	}
	return false
}

// initNode is the master whose init step makes the cluster: the first
// master until a cluster is made; then the node that made it while the
// Clusterfile lists it as a master; else none: the cluster lives on in
// the other masters, which every new master joins, first listed or not.
func initNode(j *Journal, c clusterfile.Cluster, steps []step.Step) string {
	masters := c.Masters()
	if len(masters) == 0 {
		return ""
	}
	if !made(j, steps) {
		return masters[0].IP.String()
	}
	by := madeBy(j, steps)
	if slices.ContainsFunc(masters, func(n clusterfile.Node) bool { return n.IP.String() == by }) {
		return by
	}
	return ""
}

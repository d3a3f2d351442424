package apply

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// TestEngineScaleUpHooks: sealer's pre-scaleup and post-scaleup hooks run
// on the first master when nodes join a cluster an earlier apply brought
// up, before and after the joins; not at the first install, not when no
// node joins; a failed pre-scaleup makes no node join.
func TestEngineScaleUpHooks(t *testing.T) {
	plugins, err := clusterfile.ParsePlugins("plugins.yaml", []byte(`apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: scale}
spec: {type: SHELL, action: pre-scaleup, data: echo pre-scaleup}
---
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: scaled}
spec: {type: SHELL, action: post-scaleup, data: echo post-scaleup}
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecord()
	steps := []step.Step{
		rec.step("host", step.Host, nil),
		rec.step("init", step.Init, firstMaster),
		rec.step("join-worker", step.JoinWorkers, worker),
	}
	apply := func(root string, c clusterfile.Cluster, nodes *scriptNodes) (*Result, []string) {
		t.Helper()
		j, err := OpenJournal(filepath.Join(root, "journal.json"), c.Name)
		if err != nil {
			t.Fatal(err)
		}
		r := &runner{c: c, plugins: plugins, opts: Options{Root: root, Jobs: 4, Dial: nodes.dial}, journal: j, dir: nodeDir(c), packed: map[bool]packedTree{}, hoistDigest: strings.Repeat("0", 64)}
		r.in = withNodes(step.Input{ImageDigest: "sha256:img", Plugins: plugins}, c)
		r.steps = steps
		r.membership()
		r.plan = makePlan(&r.in, r.steps, nil, j, false)
		res, err := r.apply(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes.mu.Lock()
		defer nodes.mu.Unlock()
		ran := nodes.ran
		nodes.ran = nil
		return res, ran
	}
	two := testCluster(t, "    - {ips: [10.0.0.2], roles: [master]}\n    - {ips: [10.0.0.4], roles: [node]}\n")
	three := testCluster(t, "    - {ips: [10.0.0.2], roles: [master]}\n    - {ips: [10.0.0.4, 10.0.0.5], roles: [node]}\n")

	root := t.TempDir()
	nodes := &scriptNodes{}
	if res, ran := apply(root, two, nodes); res.Err() != nil || len(ran) != 0 {
		t.Errorf("the first install ran hooks %v (%v)", ran, res.Err())
	}
	rec.take()
	res, ran := apply(root, three, nodes)
	if res.Err() != nil || !slices.Equal(ran, []string{"10.0.0.2: pre-scaleup", "10.0.0.2: post-scaleup"}) {
		t.Errorf("a node added: hooks %v (%v)", ran, res.Err())
	}
	if got := rec.take(); !slices.Equal(got, []string{"10.0.0.5 host", "10.0.0.5 join-worker"}) {
		t.Errorf("a node added: steps %v", got)
	}
	if res, ran := apply(root, three, nodes); res.Err() != nil || len(ran) != 0 {
		t.Errorf("nothing to join, hooks %v (%v)", ran, res.Err())
	}
	rec.take()

	// A failed pre-scaleup: the new node does not join.
	root = t.TempDir()
	apply(root, two, &scriptNodes{})
	rec.take()
	res, ran = apply(root, three, &scriptNodes{fail: "echo pre-scaleup"})
	var ne *NodeError
	if !errors.As(res.Errors["10.0.0.2"], &ne) || ne.Step != "hook:pre-scaleup" || res.Errors["10.0.0.5"] == nil || !slices.Equal(ran, []string{"10.0.0.2: pre-scaleup"}) {
		t.Errorf("a failed pre-scaleup: hooks %v, errors %v", ran, res.Errors)
	}
	if got := rec.take(); slices.Contains(got, "10.0.0.5 join-worker") {
		t.Errorf("a node joined after a failed pre-scaleup: %v", got)
	}
}

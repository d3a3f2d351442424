package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// The engine's own tests: the stages, the journal's resume, a node's
// failure, probes and the steps that follow others, run with fake nodes
// and steps that record what ran. The real steps over real sshd are
// tested in cmd/hoist and test/e2e.

// fakeNodes are nodes reached through Options.Dial: each answers a probe
// ("probe STEP") with agent.ExitNotRunning when its result is marked lost.
type fakeNodes struct {
	mu   sync.Mutex
	down map[string]bool // unreachable
	lost map[string]bool // "node step": a probe says it is gone
}

func (f *fakeNodes) dial(_ context.Context, cfg ssh.Config) (ssh.Executor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[cfg.Host] {
		return nil, &ssh.Error{Host: cfg.Host, Err: errors.New("connection refused")}
	}
	return &fakeExec{nodes: f, host: cfg.Host}, nil
}

type fakeExec struct {
	nodes *fakeNodes
	host  string
}

func (e *fakeExec) Run(_ context.Context, command string, _ io.Reader, _ io.Writer) error {
	if s, ok := strings.CutPrefix(command, "probe "); ok {
		e.nodes.mu.Lock()
		defer e.nodes.mu.Unlock()
		if e.nodes.lost[e.host+" "+s] {
			return &ssh.ExitError{Status: agent.ExitNotRunning}
		}
		return nil
	}
	return fmt.Errorf("%s: unexpected command %q", e.host, command)
}

func (e *fakeExec) Close() error { return nil }

// record is what the fake steps did, in order.
type record struct {
	mu      sync.Mutex
	ran     []string // "node step"
	running map[step.Stage]int
	most    map[step.Stage]int // most steps of a stage running at once
	fail    map[string]error   // "node step" → its error, once
}

func (rec *record) step(name string, stage step.Stage, on func(n clusterfile.Node, in *step.Input) bool) step.Step {
	return step.Step{
		Name:  name,
		Stage: stage,
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			return in.ImageDigest, on == nil || on(n, in)
		},
		Run: func(_ context.Context, t *step.Target) error {
			id := t.Node.IP.String() + " " + name
			rec.mu.Lock()
			rec.ran = append(rec.ran, id)
			rec.running[stage]++
			rec.most[stage] = max(rec.most[stage], rec.running[stage])
			err := rec.fail[id]
			delete(rec.fail, id)
			rec.mu.Unlock()
			// Long enough for steps run in parallel to overlap.
			time.Sleep(20 * time.Millisecond)
			rec.mu.Lock()
			rec.running[stage]--
			rec.mu.Unlock()
			return err
		},
	}
}

func (rec *record) take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.ran
	rec.ran = nil
	return out
}

const fourNodes = "    - ips: [10.0.0.2, 10.0.0.3]\n      roles: [master]\n    - ips: [10.0.0.4, 10.0.0.5]\n      roles: [node]\n"

// engine runs an apply of c with steps, against the fake nodes, the
// journal kept under root.
func engine(t *testing.T, root string, c clusterfile.Cluster, nodes *fakeNodes, steps []step.Step) *Result {
	t.Helper()
	return engineWith(t, root, c, nodes, steps, Options{})
}

// engineWith is engine with options (Jobs 4 unless set).
func engineWith(t *testing.T, root string, c clusterfile.Cluster, nodes *fakeNodes, steps []step.Step, opts Options) *Result {
	t.Helper()
	j, err := OpenJournal(filepath.Join(root, "journal.json"), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	opts.Root, opts.Dial = root, nodes.dial
	if opts.Jobs == 0 {
		opts.Jobs = 4
	}
	r := &runner{c: c, opts: opts, journal: j, dir: nodeDir(c), packed: map[bool]packedTree{}, hoistDigest: strings.Repeat("0", 64)}
	r.in = withNodes(step.Input{ImageDigest: "sha256:img"}, c)
	r.steps = steps
	r.membership()
	r.plan = makePlan(&r.in, r.steps, nil, j, false)
	res, err := r.apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func newRecord() *record {
	return &record{running: map[step.Stage]int{}, most: map[step.Stage]int{}, fail: map[string]error{}}
}

func firstMaster(n clusterfile.Node, in *step.Input) bool { return n.IP == in.Cluster.Masters()[0].IP }

func otherMaster(n clusterfile.Node, in *step.Input) bool { return n.IsMaster() && !firstMaster(n, in) }

func worker(n clusterfile.Node, _ *step.Input) bool { return !n.IsMaster() }

func TestEngineStagesAndResume(t *testing.T) {
	c := testCluster(t, strings.Replace(fourNodes, "10.0.0.3]", "10.0.0.3, 10.0.0.6]", 1))
	rec := newRecord()
	steps := []step.Step{
		rec.step("host", step.Host, nil),
		rec.step("init", step.Init, firstMaster),
		rec.step("join-master", step.JoinMasters, otherMaster),
		rec.step("join-worker", step.JoinWorkers, worker),
		rec.step("cluster", step.Cluster, nil),
	}
	nodes := &fakeNodes{}
	root := t.TempDir()
	rec.fail["10.0.0.5 join-worker"] = errors.New("boom")
	res := engine(t, root, c, nodes, steps)

	// Every node finishes a stage before any starts the next.
	ran := rec.take()
	stageOf := map[string]int{"host": 0, "init": 1, "join-master": 2, "join-worker": 3, "cluster": 4}
	for i := 1; i < len(ran); i++ {
		prev, cur := strings.Fields(ran[i-1])[1], strings.Fields(ran[i])[1]
		if stageOf[cur] < stageOf[prev] {
			t.Errorf("%q ran after %q: %v", ran[i], ran[i-1], ran)
		}
	}
	if rec.most[step.JoinMasters] != 1 {
		t.Errorf("%d masters joined at once", rec.most[step.JoinMasters])
	}
	// The failed node stops at its step; the others go on.
	var ne *NodeError
	if err := res.Errors["10.0.0.5"]; !errors.As(err, &ne) || ne.Step != "join-worker" || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed node: %v", err)
	}
	if rec.most[step.JoinWorkers] != 2 {
		t.Errorf("%d workers joined at once, want both", rec.most[step.JoinWorkers])
	}
	for _, n := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"} {
		if err := res.Errors[n]; err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if slices.Contains(ran, "10.0.0.5 cluster") || !slices.Contains(ran, "10.0.0.4 cluster") {
		t.Errorf("after a failure: %v", ran)
	}
	if err := res.Err(); err == nil || err.Error() != "1 of 5 nodes failed: 10.0.0.5" {
		t.Errorf("result: %v", err)
	}

	// Run again: only what is left runs.
	res = engine(t, root, c, nodes, steps)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); strings.Join(got, ",") != "10.0.0.5 join-worker,10.0.0.5 cluster" {
		t.Errorf("resumed: %v", got)
	}
	res = engine(t, root, c, nodes, steps)
	if got := rec.take(); res.Err() != nil || len(got) != 0 {
		t.Errorf("a third apply ran %v (%v)", got, res.Err())
	}
}

// TestEngineUpgradeStages: in an upgrade, the masters go one at a time
// before new masters join, then the workers MaxUnavailable at a time
// before new workers join, whatever --jobs allows.
func TestEngineUpgradeStages(t *testing.T) {
	c := testCluster(t, "    - ips: [10.0.0.2, 10.0.0.3, 10.0.0.4]\n      roles: [master]\n    - ips: [10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9]\n      roles: [node]\n")
	rec := newRecord()
	steps := []step.Step{
		rec.step("host", step.Host, nil),
		rec.step("upgrade-master", step.UpgradeMasters, func(n clusterfile.Node, _ *step.Input) bool { return n.IsMaster() }),
		rec.step("join-master", step.JoinMasters, func(n clusterfile.Node, _ *step.Input) bool { return n.IP.String() == "10.0.0.4" }),
		rec.step("upgrade-worker", step.UpgradeWorkers, func(n clusterfile.Node, _ *step.Input) bool { return !n.IsMaster() && n.IP.String() != "10.0.0.9" }),
		rec.step("join-worker", step.JoinWorkers, func(n clusterfile.Node, _ *step.Input) bool { return n.IP.String() == "10.0.0.9" }),
	}
	res := engineWith(t, t.TempDir(), c, &fakeNodes{}, steps, Options{Jobs: 10, MaxUnavailable: 2})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	ran := rec.take()
	stageOf := map[string]int{"host": 0, "upgrade-master": 1, "join-master": 2, "upgrade-worker": 3, "join-worker": 4}
	for i := 1; i < len(ran); i++ {
		if prev, cur := strings.Fields(ran[i-1])[1], strings.Fields(ran[i])[1]; stageOf[cur] < stageOf[prev] {
			t.Errorf("%q ran after %q: %v", ran[i], ran[i-1], ran)
		}
	}
	if rec.most[step.UpgradeMasters] != 1 || rec.most[step.UpgradeWorkers] != 2 || rec.most[step.Host] < 3 {
		t.Errorf("at once: %d masters, %d workers upgraded (want 1, 2), %d hosts set up", rec.most[step.UpgradeMasters], rec.most[step.UpgradeWorkers], rec.most[step.Host])
	}
}

// TestEngineUpgradeNeedsEveryNode: an upgrade with a node that does not
// answer is refused before any step, naming the node, and recorded for
// status.
func TestEngineUpgradeNeedsEveryNode(t *testing.T) {
	c := testCluster(t, fourNodes)
	rec := newRecord()
	root := t.TempDir()
	j, err := OpenJournal(filepath.Join(root, "journal.json"), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	nodes := &fakeNodes{down: map[string]bool{"10.0.0.5": true}}
	r := &runner{c: c, opts: Options{Root: root, Jobs: 4, Dial: nodes.dial}, journal: j, dir: nodeDir(c), packed: map[bool]packedTree{}, hoistDigest: strings.Repeat("0", 64)}
	r.in = withNodes(step.Input{ImageDigest: "sha256:img", Upgrade: &step.Upgrade{From: "v1.36.3", To: "v1.37.2"}}, c)
	r.steps = []step.Step{rec.step("host", step.Host, nil)}
	r.membership()
	r.plan = makePlan(&r.in, r.steps, nil, j, false)
	_, err = r.apply(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "upgrading Kubernetes v1.36.3 -> v1.37.2 needs every node, and these do not answer (nothing was changed):\n  10.0.0.5: ") {
		t.Errorf("an upgrade with a node down: %v", err)
	}
	if ran := rec.take(); len(ran) > 0 {
		t.Errorf("steps ran: %v", ran)
	}
	if f, failed := j.Failed(AppsNode); !failed || f.Step != stepUpgradeCheck {
		t.Errorf("recorded failure %+v", f)
	}
}

func TestEngineUnreachableNodeAndFirstMaster(t *testing.T) {
	c := testCluster(t, fourNodes)
	rec := newRecord()
	steps := []step.Step{
		rec.step("host", step.Host, nil),
		rec.step("init", step.Init, firstMaster),
		rec.step("join-worker", step.JoinWorkers, worker),
	}
	// A worker that cannot be reached fails alone, at "connect".
	res := engine(t, t.TempDir(), c, &fakeNodes{down: map[string]bool{"10.0.0.4": true}}, steps)
	var ne *NodeError
	if err := res.Errors["10.0.0.4"]; !errors.As(err, &ne) || ne.Step != "connect" {
		t.Errorf("unreachable node: %v", err)
	}
	if got := rec.take(); !slices.Contains(got, "10.0.0.5 join-worker") || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "10.0.0.4") }) {
		t.Errorf("with a node down: %v", got)
	}
	// Nothing joins a cluster whose first master failed.
	rec.fail["10.0.0.2 init"] = errors.New("init failed")
	res = engine(t, t.TempDir(), c, &fakeNodes{}, steps)
	if err := res.Errors["10.0.0.5"]; err == nil || !strings.Contains(err.Error(), "join-worker: not run: the first master 10.0.0.2 failed") {
		t.Errorf("a worker after the first master failed: %v", err)
	}
	if got := rec.take(); slices.Contains(got, "10.0.0.5 join-worker") {
		t.Errorf("a worker joined a cluster whose init failed: %v", got)
	}
}

func TestEngineProbesAndFollowers(t *testing.T) {
	c := testCluster(t, fourNodes)
	rec := newRecord()
	services := rec.step("services", step.Host, nil)
	services.Probe = func(*step.Target) string { return "probe services" }
	services.Restarts = true
	join := rec.step("join", step.JoinWorkers, nil)
	join.Key = func(in *step.Input, n clusterfile.Node) (string, bool) { return "joined", true }
	join.Joins = true
	routes := rec.step("routes", step.Cluster, nil)
	routes.RedoOnJoin = true
	ready := rec.step("ready", step.Cluster, nil)
	ready.RedoOnRestart = true
	steps := []step.Step{services, join, routes, ready}
	nodes := &fakeNodes{lost: map[string]bool{}}
	root := t.TempDir()
	if res := engine(t, root, c, nodes, steps); res.Err() != nil {
		t.Fatal(res.Err())
	}
	rec.take()

	// What a done step left is gone on one node: that step runs again
	// there, and the steps that follow its restart; nothing joined.
	nodes.lost["10.0.0.3 services"] = true
	if res := engine(t, root, c, nodes, steps); res.Err() != nil {
		t.Fatal(res.Err())
	}
	if got := strings.Join(rec.take(), ","); got != "10.0.0.3 services,10.0.0.3 ready" {
		t.Errorf("after a lost service: %s", got)
	}
	nodes.lost = map[string]bool{}

	// A node added joins: every node's routes are made again, and only
	// the new node's other steps run.
	c2 := testCluster(t, strings.Replace(fourNodes, "10.0.0.5]", "10.0.0.5, 10.0.0.6]", 1))
	if res := engine(t, root, c2, nodes, steps); res.Err() != nil {
		t.Fatal(res.Err())
	}
	got := rec.take()
	slices.Sort(got)
	want := []string{"10.0.0.2 routes", "10.0.0.3 routes", "10.0.0.4 routes", "10.0.0.5 routes",
		"10.0.0.6 join", "10.0.0.6 ready", "10.0.0.6 routes", "10.0.0.6 services"}
	if !slices.Equal(got, want) {
		t.Errorf("after a node joined:\n got %v\nwant %v", got, want)
	}
}

// checkOnlyRuntime is a runtime whose cluster says no upgrade is left (an
// API server that does not answer tells no kubelet's version): the real
// one is tested in test/e2e (TestKubernetesUpgrade).
type checkOnlyRuntime struct{ version string }

func (f *checkOnlyRuntime) Detect(clusterfile.Cluster, step.Image) (step.Runtime, error) {
	return f, nil
}
func (f *checkOnlyRuntime) Steps() []step.Step { return nil }
func (f *checkOnlyRuntime) Version() string    { return f.version }
func (f *checkOnlyRuntime) Kubeconfig(context.Context, ssh.Executor, string) ([]byte, error) {
	return nil, nil
}
func (f *checkOnlyRuntime) Drain(context.Context, ssh.Executor, string) error { return nil }
func (f *checkOnlyRuntime) CheckCluster(context.Context, ssh.Executor) (*step.Upgrade, error) {
	return nil, nil
}

// TestEngineResumesUpgradeFromJournal: an upgrade an apply began and did
// not finish goes on even when the cluster cannot tell, for an image of
// that version only.
func TestEngineResumesUpgradeFromJournal(t *testing.T) {
	c := testCluster(t, twoHosts)
	rec := newRecord()
	for _, image := range []struct {
		version string
		resumed bool
	}{{"v1.37.2", true}, {"v1.37.3", false}} {
		j, err := OpenJournal(filepath.Join(t.TempDir(), "journal.json"), c.Name)
		if err != nil {
			t.Fatal(err)
		}
		j.MarkDone("10.0.0.2", "init", "sha256:img")
		began := &step.Upgrade{From: "v1.36.3", To: "v1.37.2"}
		j.SetUpgrade(began)
		r := &runner{c: c, opts: Options{Jobs: 4, Dial: (&fakeNodes{}).dial}, journal: j, dir: nodeDir(c), rt: &checkOnlyRuntime{image.version}}
		r.in = withNodes(step.Input{ImageDigest: "sha256:img"}, c)
		r.steps = []step.Step{rec.step("init", step.Init, firstMaster)}
		r.membership()
		r.makePlan()
		if err := r.checkCluster(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := r.in.Upgrade != nil && *r.in.Upgrade == *began && r.plan.Upgrade == r.in.Upgrade; got != image.resumed {
			t.Errorf("image %s: upgrade %+v, want resumed %v", image.version, r.in.Upgrade, image.resumed)
		}
	}
}

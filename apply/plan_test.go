package apply

import (
	"bytes"
	"fmt"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testCluster(t *testing.T, hosts string) clusterfile.Cluster {
	t.Helper()
	cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  image: acme/platform:v1\n  hosts:\n"+hosts))
	if err != nil {
		t.Fatal(err)
	}
	return cf.Cluster
}

const twoHosts = "    - ips: [10.0.0.2]\n      roles: [master]\n    - ips: [10.0.0.3]\n      roles: [node]\n"

func TestJournalPersistsAndResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clusters", "demo", "journal.json")
	j, err := OpenJournal(path, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 { // nodes finish steps concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.MarkDone(fmt.Sprintf("10.0.0.%d", i), StepRootfs, "k1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	again, err := OpenJournal(path, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Nodes()) != 20 || !again.Done("10.0.0.7", StepRootfs, "k1") || again.Done("10.0.0.7", StepRootfs, "k2") || again.Done("10.0.0.7", StepRegistry, "k1") {
		t.Errorf("reloaded journal: %v", again.Nodes())
	}
	if err := again.Forget("10.0.0.7"); err != nil {
		t.Fatal(err)
	}
	if again.Done("10.0.0.7", StepRootfs, "k1") {
		t.Errorf("a forgotten node kept its steps")
	}
	if _, err := OpenJournal(path, "other"); err == nil || !strings.Contains(err.Error(), `belongs to cluster "demo"`) {
		t.Errorf("journal of another cluster: %v", err)
	}
}

func TestPlan(t *testing.T) {
	c := testCluster(t, twoHosts)
	j, _ := OpenJournal(filepath.Join(t.TempDir(), "journal.json"), "demo")
	in := PlanInput{ImageDigest: "sha256:img1", HoistDigest: "h1", Plugins: []clusterfile.Plugin{
		{Name: "b", Phase: "post-init-host", Scope: []string{"master"}, Data: "x"},
		{Name: "a", Phase: "pre-init-host", Data: "y"},
	}}
	p := MakePlan(c, j, in, false)
	names := func(np NodePlan) string {
		var s []string
		for _, st := range np.Steps {
			s = append(s, st.Name)
		}
		return strings.Join(s, ",")
	}
	if got := names(p.Nodes[0]); got != "install-hoist,rootfs,hook:pre-init-host,registry,mirrors,hook:post-init-host" {
		t.Errorf("master steps %s", got)
	}
	if got := names(p.Nodes[1]); got != "install-hoist,rootfs,hook:pre-init-host,mirrors" {
		t.Errorf("worker steps %s (no registry, no master-only hook)", got)
	}
	noReg := in
	noReg.NoRegistry = true
	if got := names(MakePlan(c, j, noReg, false).Nodes[0]); got != "install-hoist,rootfs,hook:pre-init-host,hook:post-init-host" {
		t.Errorf("master steps without bundled images %s (no registry, no mirrors)", got)
	}
	if p.ToDo() != 10 {
		t.Errorf("to do %d", p.ToDo())
	}
	// Record everything as done: nothing to do.
	for _, np := range p.Nodes {
		for _, s := range np.Steps {
			j.MarkDone(np.Node, s.Name, s.Key)
		}
	}
	if p := MakePlan(c, j, in, false); p.ToDo() != 0 {
		t.Errorf("after a full apply, %d to do", p.ToDo())
	}
	// A new image redoes what depends on it, not the hoist install.
	in2 := in
	in2.ImageDigest = "sha256:img2"
	p2 := MakePlan(c, j, in2, false)
	for _, s := range p2.Nodes[0].Steps {
		if s.Done != (s.Name == StepInstallHoist) {
			t.Errorf("new image: %s done=%v", s.Name, s.Done)
		}
	}
	// An added host is all to do, the others nothing; a removed host is
	// to be cleaned with prune, and left alone without.
	c3 := testCluster(t, "    - ips: [10.0.0.2]\n      roles: [master]\n    - ips: [10.0.0.4]\n      roles: [node]\n")
	p3 := MakePlan(c3, j, in, true)
	if p3.ToDo() != 4+1 || len(p3.Remove) != 1 || p3.Remove[0] != "10.0.0.3" || len(p3.Removed()) != 1 || len(p3.Kept()) != 0 {
		t.Errorf("added/removed: to do %d, remove %v", p3.ToDo(), p3.Remove)
	}
	var out bytes.Buffer
	p3.Print(&out)
	for _, want := range []string{"10.0.0.2 (master)\n  install-hoist    done\n", "10.0.0.4 (node)\n  install-hoist    to do\n", "10.0.0.3 (no longer listed)\n  clean            to do\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("print lacks %q:\n%s", want, out.String())
		}
	}
	kept := MakePlan(c3, j, in, false)
	if kept.ToDo() != 4 || len(kept.Removed()) != 0 || strings.Join(kept.Kept(), ",") != "10.0.0.3" {
		t.Errorf("without prune: to do %d, removed %v, kept %v", kept.ToDo(), kept.Removed(), kept.Kept())
	}
	out.Reset()
	kept.Print(&out)
	if want := "10.0.0.3 (no longer listed)\n  clean            left as it is: apply --prune removes it\n"; !strings.Contains(out.String(), want) {
		t.Errorf("print without prune lacks %q:\n%s", want, out.String())
	}
}

func TestResultErr(t *testing.T) {
	boom := fmt.Errorf("boom")
	for _, tc := range []struct {
		res  Result
		want string
	}{
		{Result{Nodes: []string{"a", "b"}, Errors: map[string]error{}}, ""},
		{Result{Nodes: []string{"a", "b", AppsNode}, Errors: map[string]error{"b": boom}}, "1 of 2 nodes failed: b"},
		{Result{Nodes: []string{"a", AppsNode}, Errors: map[string]error{AppsNode: boom}}, "apps failed: boom"},
		{Result{Nodes: []string{"a", AppsNode}, Errors: map[string]error{"a": boom, AppsNode: boom}}, "1 of 1 nodes failed: a; apps failed: boom"},
	} {
		err := tc.res.Err()
		if (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("%v: %v, want %q", tc.res.Errors, err, tc.want)
		}
	}
}

func TestKubernetesPlan(t *testing.T) {
	three := "    - ips: [10.0.0.2, 10.0.0.4]\n      roles: [master]\n    - ips: [10.0.0.3]\n      roles: [node]\n      labels: {tier: apps}\n"
	c := testCluster(t, three)
	j, _ := OpenJournal(filepath.Join(t.TempDir(), "journal.json"), "demo")
	in := PlanInput{ImageDigest: "sha256:i", HoistDigest: "sha256:h", Kubernetes: true, HoistNetwork: true}
	p := MakePlan(c, j, in, false)
	type step struct {
		name  string
		stage int
	}
	want := map[string][]step{
		"10.0.0.2": {{StepInstallHoist, stageHost}, {StepRootfs, stageHost}, {StepRegistry, stageHost}, {StepMirrors, stageHost}, {StepKubeNode, stageHost},
			{StepKubeInit, stageInit}, {StepKubeNetwork, stageCluster}, {StepKubeReady, stageCluster}},
		"10.0.0.4": {{StepInstallHoist, stageHost}, {StepRootfs, stageHost}, {StepMirrors, stageHost}, {StepKubeNode, stageHost},
			{StepKubeJoin, stageJoinMasters}, {StepKubeNetwork, stageCluster}, {StepKubeReady, stageCluster}},
		"10.0.0.3": {{StepInstallHoist, stageHost}, {StepRootfs, stageHost}, {StepMirrors, stageHost}, {StepKubeNode, stageHost},
			{StepKubeJoin, stageJoinWorkers}, {StepKubeNetwork, stageCluster}, {StepKubeReady, stageCluster}},
	}
	keys := map[string]string{}
	for _, np := range p.Nodes {
		var got []step
		for _, s := range np.Steps {
			got = append(got, step{s.Name, s.stage})
			keys[np.Node+" "+s.Name] = s.Key
		}
		if fmt.Sprint(got) != fmt.Sprint(want[np.Node]) {
			t.Errorf("%s: steps %v, want %v", np.Node, got, want[np.Node])
		}
	}
	// A node added changes every node's routes, not its joins; a label
	// changes that node's kube-ready only.
	c2 := testCluster(t, strings.Replace(three, "[10.0.0.3]\n      roles: [node]\n      labels: {tier: apps}", "[10.0.0.3, 10.0.0.5]\n      roles: [node]\n      labels: {tier: web}", 1))
	for _, np := range MakePlan(c2, j, in, false).Nodes {
		for _, s := range np.Steps {
			old, ok := keys[np.Node+" "+s.Name]
			if !ok {
				continue
			}
			changed := old != s.Key
			wantChanged := s.Name == StepKubeNetwork || (s.Name == StepKubeReady && np.Node == "10.0.0.3")
			if changed != wantChanged {
				t.Errorf("%s %s: key changed %v, want %v", np.Node, s.Name, changed, wantChanged)
			}
		}
	}
	// Without hoist's network (the image has a CNI app): no kube-network.
	in.HoistNetwork = false
	for _, s := range MakePlan(c, j, in, false).Nodes[0].Steps {
		if s.Name == StepKubeNetwork {
			t.Error("kube-network planned for an image with its own CNI")
		}
	}
}

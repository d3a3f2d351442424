package apply

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/step"
)

func testCluster(t *testing.T, hosts string) clusterfile.Cluster {
	t.Helper()
	cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  image: acme/platform:v1\n  hosts:\n"+hosts))
	if err != nil {
		t.Fatal(err)
	}
	return cf.Cluster
}

// planOf plans an apply of the cluster with the steps of hoist and of the
// runtime rt (nil: none), as prepare does.
func planOf(c clusterfile.Cluster, j *Journal, in step.Input, rt step.Runtime, prune bool) Plan {
	in = withNodes(in, c)
	steps := (&runner{}).stepList(rt)
	in.InitNode = initNode(j, c, steps)
	return makePlan(&in, steps, nil, j, prune)
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
			if err := j.MarkDone(fmt.Sprintf("10.0.0.%d", i), stepRootfs, "k1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	again, err := OpenJournal(path, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Nodes()) != 20 || !again.Done("10.0.0.7", stepRootfs, "k1") || again.Done("10.0.0.7", stepRootfs, "k2") || again.Done("10.0.0.7", stepRegistry, "k1") {
		t.Errorf("reloaded journal: %v", again.Nodes())
	}
	if err := again.Forget("10.0.0.7"); err != nil {
		t.Fatal(err)
	}
	if again.Done("10.0.0.7", stepRootfs, "k1") {
		t.Errorf("a forgotten node kept its steps")
	}
	if _, err := OpenJournal(path, "other"); err == nil || !strings.Contains(err.Error(), `belongs to cluster "demo"`) {
		t.Errorf("journal of another cluster: %v", err)
	}
}

func TestPlan(t *testing.T) {
	c := testCluster(t, twoHosts)
	j, _ := OpenJournal(filepath.Join(t.TempDir(), "journal.json"), "demo")
	in := step.Input{ImageDigest: "sha256:img1", HoistDigest: "h1", Plugins: []clusterfile.Plugin{
		{Name: "b", Phase: "post-init-host", Scope: []clusterfile.Role{"master"}, Data: "x"},
		{Name: "a", Phase: "pre-init-host", Data: "y"},
	}}
	p := planOf(c, j, in, nil, false)
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
	if got := names(planOf(c, j, noReg, nil, false).Nodes[0]); got != "install-hoist,rootfs,hook:pre-init-host,hook:post-init-host" {
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
	if p := planOf(c, j, in, nil, false); p.ToDo() != 0 {
		t.Errorf("after a full apply, %d to do", p.ToDo())
	}
	// A new image redoes what depends on it, not the hoist install.
	in2 := in
	in2.ImageDigest = "sha256:img2"
	p2 := planOf(c, j, in2, nil, false)
	for _, s := range p2.Nodes[0].Steps {
		if s.Done != (s.Name == stepInstallHoist) {
			t.Errorf("new image: %s done=%v", s.Name, s.Done)
		}
	}
	// An added host is all to do, the others nothing; a removed host is
	// to be cleaned with prune, and left alone without.
	c3 := testCluster(t, "    - ips: [10.0.0.2]\n      roles: [master]\n    - ips: [10.0.0.4]\n      roles: [node]\n")
	p3 := planOf(c3, j, in, nil, true)
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
	kept := planOf(c3, j, in, nil, false)
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
	in := step.Input{ImageDigest: "sha256:i", HoistDigest: "sha256:h"}
	rt := &kubeadm.Runtime{}
	p := planOf(c, j, in, rt, false)
	type staged struct {
		name  string
		stage step.Stage
	}
	want := map[string][]staged{
		"10.0.0.2": {{stepInstallHoist, step.Host}, {stepRootfs, step.Host}, {stepRegistry, step.Host}, {stepMirrors, step.Host}, {kubeadm.StepNode, step.Host},
			{kubeadm.StepInit, step.Init}, {kubeadm.StepNetwork, step.Cluster}, {kubeadm.StepReady, step.Cluster}},
		"10.0.0.4": {{stepInstallHoist, step.Host}, {stepRootfs, step.Host}, {stepMirrors, step.Host}, {kubeadm.StepNode, step.Host},
			{kubeadm.StepJoin, step.JoinMasters}, {kubeadm.StepNetwork, step.Cluster}, {kubeadm.StepReady, step.Cluster}},
		"10.0.0.3": {{stepInstallHoist, step.Host}, {stepRootfs, step.Host}, {stepMirrors, step.Host}, {kubeadm.StepNode, step.Host},
			{kubeadm.StepJoin, step.JoinWorkers}, {kubeadm.StepNetwork, step.Cluster}, {kubeadm.StepReady, step.Cluster}},
	}
	keys := map[string]string{}
	for _, np := range p.Nodes {
		var got []staged
		for _, s := range np.Steps {
			got = append(got, staged{s.Name, s.step.Stage})
			keys[np.Node+" "+s.Name] = s.Key
		}
		if fmt.Sprint(got) != fmt.Sprint(want[np.Node]) {
			t.Errorf("%s: steps %v, want %v", np.Node, got, want[np.Node])
		}
	}
	// A node added changes every node's routes, not its joins; a label
	// changes that node's kube-ready only.
	c2 := testCluster(t, strings.Replace(three, "[10.0.0.3]\n      roles: [node]\n      labels: {tier: apps}", "[10.0.0.3, 10.0.0.5]\n      roles: [node]\n      labels: {tier: web}", 1))
	for _, np := range planOf(c2, j, in, rt, false).Nodes {
		for _, s := range np.Steps {
			old, ok := keys[np.Node+" "+s.Name]
			if !ok {
				continue
			}
			changed := old != s.Key
			wantChanged := s.Name == kubeadm.StepNetwork || (s.Name == kubeadm.StepReady && np.Node == "10.0.0.3")
			if changed != wantChanged {
				t.Errorf("%s %s: key changed %v, want %v", np.Node, s.Name, changed, wantChanged)
			}
		}
	}
	// An upgrade: every member gets kube-upgrade, masters before new
	// masters join, workers before new workers join; the plan says so.
	up := in
	up.Upgrade = &step.Upgrade{From: "v1.36.3", To: "v1.37.2"}
	p = planOf(c, j, up, rt, false)
	p.Upgrade, p.MaxUnavailable = up.Upgrade, 2
	for _, np := range p.Nodes {
		i := slices.IndexFunc(np.Steps, func(s PlannedStep) bool { return s.Name == kubeadm.StepUpgrade })
		wantStage := step.UpgradeWorkers
		if np.Node != "10.0.0.3" {
			wantStage = step.UpgradeMasters
		}
		if i < 0 || np.Steps[i].step.Stage != wantStage || np.Steps[i].Key != "v1.37.2" {
			t.Errorf("%s in an upgrade: %+v", np.Node, np.Steps)
		}
	}
	// sealer's upgrade-host hooks: in the node's upgrade turn, before
	// kube-upgrade, on the hosts of their scope only, in an upgrade only.
	up.Plugins = []clusterfile.Plugin{{Name: "kernel", Phase: clusterfile.PhaseUpgradeHost, Scope: []clusterfile.Role{clusterfile.RoleNode}, Data: "true"}}
	for _, in := range []step.Input{up, func() step.Input { in := up; in.Upgrade = nil; return in }()} {
		for _, np := range planOf(c, j, in, rt, false).Nodes {
			names := ""
			for _, s := range np.Steps {
				if s.step.Stage == step.UpgradeWorkers || s.step.Stage == step.UpgradeMasters {
					names += s.Name + " "
				}
			}
			want := ""
			switch {
			case in.Upgrade != nil && np.Node == "10.0.0.3":
				want = "hook:upgrade-host kube-upgrade "
			case in.Upgrade != nil:
				want = "kube-upgrade "
			}
			if names != want {
				t.Errorf("%s (upgrade %v): upgrade steps %q, want %q", np.Node, in.Upgrade != nil, names, want)
			}
		}
	}
	var b strings.Builder
	p.Print(&b)
	if !strings.HasPrefix(b.String(), "upgrade of Kubernetes v1.36.3 -> v1.37.2\n") || !strings.Contains(b.String(), "the workers 2 at a time") ||
		!strings.Contains(b.String(), "  kube-upgrade     to do\n") {
		t.Errorf("the plan of an upgrade:\n%s", b.String())
	}
	// Without hoist's network (the image has a CNI app): no kube-network.
	for _, s := range planOf(c, j, in, &kubeadm.Runtime{OwnCNI: true}, false).Nodes[0].Steps {
		if s.Name == kubeadm.StepNetwork {
			t.Error("kube-network planned for an image with its own CNI")
		}
	}
}

// TestChangedFieldRerunsItsSteps: a field of the Clusterfile that changes
// what a step installs re-runs exactly the steps that use it, on exactly
// the nodes it concerns; the real steps of hoist and of the kubeadm
// runtime.
func TestChangedFieldRerunsItsSteps(t *testing.T) {
	base := func() (clusterfile.Cluster, step.Input) {
		c := testCluster(t, fourNodes)
		return c, step.Input{ImageDigest: "sha256:i", HoistDigest: "sha256:h", TLSDigest: "sha256:t"}
	}
	rt := &kubeadm.Runtime{}
	j, _ := OpenJournal(filepath.Join(t.TempDir(), "journal.json"), "demo")
	c, in := base()
	for _, np := range planOf(c, j, in, rt, false).Nodes {
		for _, s := range np.Steps {
			j.MarkDone(np.Node, s.Name, s.Key)
		}
	}
	all := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}
	on := func(name string, nodes ...string) []string {
		var out []string
		for _, n := range nodes {
			out = append(out, n+" "+name)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		change func(c *clusterfile.Cluster, in *step.Input)
		want   []string
	}{
		{"nothing", func(*clusterfile.Cluster, *step.Input) {}, nil},
		{"registry port", func(c *clusterfile.Cluster, _ *step.Input) { c.Registry.Port++ },
			append(on(stepRegistry, "10.0.0.2"), on(stepMirrors, all...)...)},
		{"registry domain", func(c *clusterfile.Cluster, _ *step.Input) { c.Registry.Domain = "reg.example" },
			append(on(stepRegistry, "10.0.0.2"), on(stepMirrors, all...)...)},
		{"registry nodes", func(c *clusterfile.Cluster, _ *step.Input) {
			c.Registry.Nodes = append(c.Registry.Nodes, c.Nodes[1].IP)
		}, append(append(on(stepRootfs, "10.0.0.3"), on(stepRegistry, "10.0.0.3")...), on(stepMirrors, all...)...)},
		{"a host's labels", func(c *clusterfile.Cluster, _ *step.Input) { c.Nodes[2].Labels = map[string]string{"tier": "web"} },
			on(kubeadm.StepReady, "10.0.0.4")},
		{"a host's taints", func(c *clusterfile.Cluster, _ *step.Input) { c.Nodes[3].Taints = []string{"gpu=true:NoSchedule"} },
			on(kubeadm.StepReady, "10.0.0.5")},
		{"a host's role", func(c *clusterfile.Cluster, _ *step.Input) {
			c.Nodes[3].Roles = []clusterfile.Role{clusterfile.RoleMaster}
		},
			on(kubeadm.StepJoin, "10.0.0.5")},
		{"a host added", func(c *clusterfile.Cluster, _ *step.Input) {
			n := c.Nodes[3]
			n.IP = netip.MustParseAddr("10.0.0.6")
			c.Nodes = append(c.Nodes, n)
		}, append(on(kubeadm.StepNetwork, all...), "10.0.0.6 "+stepInstallHoist, "10.0.0.6 "+stepRootfs, "10.0.0.6 "+stepMirrors,
			"10.0.0.6 "+kubeadm.StepNode, "10.0.0.6 "+kubeadm.StepJoin, "10.0.0.6 "+kubeadm.StepNetwork, "10.0.0.6 "+kubeadm.StepReady)},
		{"a master hook", func(_ *clusterfile.Cluster, in *step.Input) {
			in.Plugins = []clusterfile.Plugin{{Name: "p", Phase: clusterfile.PhasePreInstall, Scope: []clusterfile.Role{clusterfile.RoleMaster}, Data: "true"}}
		}, on("hook:"+string(clusterfile.PhasePreInstall), "10.0.0.2", "10.0.0.3")},
		{"the registry certificate", func(_ *clusterfile.Cluster, in *step.Input) { in.TLSDigest = "sha256:t2" },
			append(on(stepRegistry, "10.0.0.2"), on(stepMirrors, all...)...)},
		{"the hoist binary", func(_ *clusterfile.Cluster, in *step.Input) { in.HoistDigest = "sha256:h2" },
			on(stepInstallHoist, all...)},
	} {
		c, in := base()
		tc.change(&c, &in)
		var got []string
		for _, np := range planOf(c, j, in, rt, false).Nodes {
			for _, s := range np.Steps {
				if !s.Done {
					got = append(got, np.Node+" "+s.Name)
				}
			}
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s changed: to do\n  %v\nwant\n  %v", tc.name, got, tc.want)
		}
	}
}

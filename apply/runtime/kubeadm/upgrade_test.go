package kubeadm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
)

// TestParseNodeVersions: where a node stands in an upgrade, from its own
// answer (member or not, its kubelet's version, its API server's
// manifest).
func TestParseNodeVersions(t *testing.T) {
	for _, c := range []struct {
		name, out string
		want      NodeVersions
	}{
		{"master", "member\nkubelet Kubernetes v1.36.3\n" + kubeadmAPIServerManifest, NodeVersions{Member: true, Kubelet: "v1.36.3", ControlPlane: "v1.37.2"}},
		{"worker", "member\nkubelet Kubernetes v1.37.2\n", NodeVersions{Member: true, Kubelet: "v1.37.2"}},
		{"new machine", "kubelet\n", NodeVersions{}},
		{"installed, not joined", "kubelet Kubernetes v1.37.2\n", NodeVersions{Kubelet: "v1.37.2"}},
	} {
		got, err := parseNodeVersions(c.out)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	for _, c := range badNodeVersions {
		if _, err := parseNodeVersions(c.out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

var badNodeVersions = []struct{ name, out, want string }{
	{"no kubelet line", "member\nsomething else\n", `the node's answer "something else" is not its kubelet's version`},
	{"kubelet says garbage", "kubelet Kubernetes v1.37.2; rm -rf /\n", "/usr/bin/kubelet --version: "},
	{"manifest not a pod", "member\nkubelet Kubernetes v1.37.2\nkind: [\n", "/etc/kubernetes/manifests/kube-apiserver.yaml: "},
	{"manifest image untagged", "member\nkubelet Kubernetes v1.37.2\n" + strings.Replace(kubeadmAPIServerManifest, "kube-apiserver:v1.37.2", "kube-apiserver", 1), "has no version tag"},
}

// FuzzParseNodeVersions: a node's answer is untrusted; what is accepted
// holds versions only.
func FuzzParseNodeVersions(f *testing.F) {
	f.Add("member\nkubelet Kubernetes v1.36.3\n" + kubeadmAPIServerManifest)
	f.Add("kubelet\n")
	for _, c := range badNodeVersions {
		f.Add(c.out)
	}
	f.Fuzz(func(t *testing.T, out string) {
		v, err := parseNodeVersions(out)
		if err != nil {
			return
		}
		for _, s := range []string{v.Kubelet, v.ControlPlane} {
			if s != "" && !version.MatchString(s) {
				t.Fatalf("accepted version %q", s)
			}
		}
	})
}

// TestUpgradeStepStages: kube-upgrade is planned only in an upgrade, for
// masters in the stage before new masters join, for workers in the stage
// before new workers join, keyed by the version it brings.
func TestUpgradeStepStages(t *testing.T) {
	k := &Runtime{}
	master := clusterfile.Node{Roles: []clusterfile.Role{clusterfile.RoleMaster}}
	worker := clusterfile.Node{Roles: []clusterfile.Role{clusterfile.RoleNode}}
	var upgrades []step.Step
	for _, s := range k.Steps() {
		if s.Name == StepUpgrade {
			upgrades = append(upgrades, s)
		}
	}
	if len(upgrades) != 2 || upgrades[0].Stage != step.UpgradeMasters || upgrades[1].Stage != step.UpgradeWorkers {
		t.Fatalf("kube-upgrade steps %+v", upgrades)
	}
	if !(step.Init < step.UpgradeMasters && step.UpgradeMasters < step.JoinMasters && step.JoinMasters < step.UpgradeWorkers && step.UpgradeWorkers < step.JoinWorkers) {
		t.Fatal("stages out of kubeadm's order")
	}
	in := &step.Input{}
	for _, s := range upgrades {
		for _, n := range []clusterfile.Node{master, worker} {
			if _, ok := s.Key(in, n); ok {
				t.Errorf("planned without an upgrade (stage %d)", s.Stage)
			}
		}
	}
	in.Upgrade = &step.Upgrade{From: "v1.36.3", To: "v1.37.2"}
	for i, s := range upgrades {
		for j, n := range []clusterfile.Node{master, worker} {
			key, ok := s.Key(in, n)
			if ok != (i == j) || (ok && key != "v1.37.2") {
				t.Errorf("stage %d, node %v: %q %v", s.Stage, n.Roles, key, ok)
			}
		}
	}
}

// TestIgnoredPreflightErrors: kubeadm upgrade skips what the Clusterfile
// tells kubeadm init (masters) or join (workers) to skip.
func TestIgnoredPreflightErrors(t *testing.T) {
	c := imageDefaults(t)
	// The base image's own (cgroup v1 machines fail SystemVerification).
	if got := strings.Join(c.IgnoredPreflightErrors(true), ","); got != "SystemVerification" {
		t.Errorf("the image's defaults ignore %v", got)
	}
	c.Merge("Clusterfile", []json.RawMessage{
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {ignorePreflightErrors: [Swap, SystemVerification]}\n"),
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration: {ignorePreflightErrors: [all]}\n"),
	})
	if got := strings.Join(c.IgnoredPreflightErrors(true), ","); got != "Swap,SystemVerification" {
		t.Errorf("master: %s", got)
	}
	if got := strings.Join(c.IgnoredPreflightErrors(false), ","); got != "all" {
		t.Errorf("worker: %s", got)
	}
}

// kubeletPods is a kubelet's /pods as the v1 PodList documents it: two
// static pods (the file source) and a pod of the API server's, which is
// not waited for.
const kubeletPods = `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[
{"metadata":{"name":"kube-apiserver-node1","namespace":"kube-system","uid":"5b1c","labels":{"component":"kube-apiserver","tier":"control-plane"},
  "annotations":{"kubernetes.io/config.hash":"5b1c","kubernetes.io/config.source":"file"}},
 "status":{"phase":"Running","conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"True"}]}},
{"metadata":{"name":"kube-scheduler-node1","namespace":"kube-system","labels":{"component":"kube-scheduler"},
  "annotations":{"kubernetes.io/config.source":"file"}},
 "status":{"phase":"Running","conditions":[{"type":"Ready","status":"False"}]}},
{"metadata":{"name":"web-84c9f","namespace":"default","labels":{"app":"web"},"annotations":{"kubernetes.io/config.source":"api"}},
 "status":{"phase":"Pending"}}
]}`

// TestParseStaticPods: the kubelet's static pods and their readiness; a
// master's control plane waits for every one, and for kubeadm's three.
func TestParseStaticPods(t *testing.T) {
	pods, err := parseStaticPods([]byte(kubeletPods))
	if err != nil {
		t.Fatal(err)
	}
	want := []kubeletPod{{"kube-apiserver-node1", "kube-apiserver", true}, {"kube-scheduler-node1", "kube-scheduler", false}}
	if len(pods) != len(want) || pods[0] != want[0] || pods[1] != want[1] {
		t.Fatalf("%+v, want %+v", pods, want)
	}
	if got := strings.Join(notReady(pods), ", "); got != "kube-controller-manager not started, kube-scheduler-node1 not ready" {
		t.Errorf("waiting for: %s", got)
	}
	all := []kubeletPod{{"etcd-node1", "etcd", true}, {"kube-apiserver-node1", "kube-apiserver", true},
		{"kube-controller-manager-node1", "kube-controller-manager", true}, {"kube-scheduler-node1", "kube-scheduler", true}}
	if got := notReady(all); len(got) != 0 {
		t.Errorf("a ready control plane waits for %v", got)
	}
	// Restarted by a new kubelet: known to it, no status yet.
	all[0].Ready = false
	if got := strings.Join(notReady(all), ", "); got != "etcd-node1 not ready" {
		t.Errorf("waiting for: %s", got)
	}
	for _, c := range badKubeletPods {
		if _, err := parseStaticPods([]byte(c.out)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

var badKubeletPods = []struct{ name, out, want string }{
	{"not JSON", "<html>502</html>", "its pods: invalid character"},
	{"not a list", `{"kind":"Status","status":"Failure"}`, `its pods: a "Status", not a PodList`},
	{"items not a list", `{"kind":"PodList","items":{}}`, "its pods: json: cannot unmarshal"},
}

// FuzzParseStaticPods: a kubelet's answer is untrusted: no input panics,
// and each pod read is an object of the input.
func FuzzParseStaticPods(f *testing.F) {
	f.Add(kubeletPods)
	for _, c := range badKubeletPods {
		f.Add(c.out)
	}
	f.Fuzz(func(t *testing.T, out string) {
		pods, err := parseStaticPods([]byte(out))
		if err != nil {
			return
		}
		if objects := strings.Count(out, "{"); len(pods) > objects {
			t.Fatalf("%d static pods from %d objects", len(pods), objects)
		}
	})
}

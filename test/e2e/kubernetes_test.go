//go:build e2e

// Package e2e proves hoist end to end on this one machine: the Kubernetes
// base image built from sources, an app image FROM it, applied to kube
// test bed nodes, grown, shrunk and deleted. `make e2e-kubernetes` runs it
// (it is not part of `go test ./...`: the build tag keeps it out).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

func TestMain(m *testing.M) { fixture.Main(m) }

const (
	baseImage = "hoist.dev/kubernetes:v1.37.2"
	helloRef  = "registry.example.com/e2e/hello:v1"
)

// repoRoot is the checkout, two levels up from test/e2e.
func repoRoot(t *testing.T) string {
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

type env struct {
	t       *testing.T
	hoist   string
	root    string
	kubectl string
	dir     string
}

// newEnv is a test's hoist with a store of its own, emptied when the test
// ends.
func newEnv(t *testing.T) *env {
	e := &env{t: t, hoist: fixture.HoistBinary(t), dir: t.TempDir()}
	e.root = filepath.Join(e.dir, "root")
	t.Cleanup(func() {
		exec.Command(e.hoist, "--root", e.root, "rmi", "--all", "--force").Run()
		os.RemoveAll(clusterimage.RunRoot(e.root))
	})
	return e
}

// run runs a command, its output streamed to the test log on failure.
func (e *env) run(name string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(e.t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) h(args ...string) string {
	e.t.Helper()
	return e.run(e.hoist, append([]string{"--root", e.root}, args...)...)
}

// kube runs kubectl against the cluster and decodes its JSON.
func (e *env) kube(kubeconfig string, into any, args ...string) {
	e.t.Helper()
	out, err := exec.Command(e.kubectl, append([]string{"--kubeconfig", kubeconfig, "-o", "json"}, args...)...).Output()
	if err != nil {
		e.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, into); err != nil {
		e.t.Fatal(err)
	}
}

type nodeList struct {
	Items []struct {
		Metadata struct{ Name string }
		Status   struct {
			Addresses  []struct{ Type, Address string }
			Conditions []struct{ Type, Status string }
		}
	}
}

type pod struct {
	Metadata struct{ Name, Namespace string }
	Spec     struct {
		NodeName   string
		Containers []struct{ Image string }
	}
	Status struct {
		Phase             string
		PodIP             string
		ContainerStatuses []struct {
			Image, ImageID string
			Ready          bool
		}
	}
}

type podList struct{ Items []pod }

// readyNodes maps node addresses to readiness.
func (e *env) readyNodes(kubeconfig string) map[string]bool {
	e.t.Helper()
	ready, err := e.tryReadyNodes(kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	return ready
}

// tryReadyNodes is readyNodes, its error returned: while a control plane
// recovers, a request may fail and be tried again.
func (e *env) tryReadyNodes(kubeconfig string) (map[string]bool, error) {
	data, err := exec.Command(e.kubectl, "--kubeconfig", kubeconfig, "--request-timeout", "10s", "-o", "json", "get", "nodes").Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %v", err)
	}
	var nodes nodeList
	if err := json.Unmarshal(data, &nodes); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %v", err)
	}
	out := map[string]bool{}
	for _, n := range nodes.Items {
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				ip = a.Address
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" {
				out[ip] = c.Status == "True"
			}
		}
	}
	return out, nil
}

// waitPods waits until every pod of the cluster is Running (or Succeeded)
// with its containers ready, and returns them.
func (e *env) waitPods(kubeconfig string, timeout time.Duration) podList {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var pods podList
		e.kube(kubeconfig, &pods, "get", "pods", "-A")
		var bad []string
		for _, p := range pods.Items {
			ok := p.Status.Phase == "Succeeded" || p.Status.Phase == "Running"
			for _, c := range p.Status.ContainerStatuses {
				ok = ok && (c.Ready || p.Status.Phase == "Succeeded")
			}
			if !ok {
				bad = append(bad, p.Metadata.Namespace+"/"+p.Metadata.Name+" "+p.Status.Phase)
			}
		}
		if len(bad) == 0 && len(pods.Items) > 0 {
			return pods
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pods not healthy after %s: %v\n%s", timeout, bad, e.clusterState(kubeconfig))
		}
		time.Sleep(3 * time.Second)
	}
}

// clusterState is what the cluster says of its pods and recent events, for
// a failure's message.
func (e *env) clusterState(kubeconfig string) string {
	out, _ := exec.Command(e.kubectl, "--kubeconfig", kubeconfig, "--request-timeout", "10s", "get", "pods", "-A", "-o", "wide").CombinedOutput()
	ev, _ := exec.Command(e.kubectl, "--kubeconfig", kubeconfig, "--request-timeout", "10s", "get", "events", "-A", "--sort-by=.lastTimestamp").CombinedOutput()
	return string(out) + "\n" + string(ev)
}

// buildBase builds the Kubernetes base image into the test's store, and
// points e.kubectl at the node binaries' kubectl; it returns their
// directory.
func (e *env) buildBase() string {
	e.t.Helper()
	e.t.Log("building the Kubernetes base image (images/kubernetes/build.sh)")
	build := exec.Command("images/kubernetes/build.sh", baseImage)
	build.Dir = repoRoot(e.t)
	build.Env = append(os.Environ(), "HOIST="+e.hoist, "ROOT="+e.root)
	if out, err := build.CombinedOutput(); err != nil {
		e.t.Fatalf("images/kubernetes/build.sh: %v\n%s", err, out)
	}
	bins := strings.TrimSpace(e.run("images/kubernetes/binaries.sh"))
	e.kubectl = filepath.Join(bins, "bin", "kubectl")
	return bins
}

// apply runs hoist apply of the Clusterfile, its output logged.
func (e *env) apply(clusterfile string, flags ...string) (string, error) {
	out, err := exec.Command(e.hoist, append([]string{"--root", e.root, "apply", "-f", clusterfile, "--accept-new-host-keys"}, flags...)...).CombinedOutput()
	e.t.Logf("hoist apply %s:\n%s", strings.Join(flags, " "), out)
	return string(out), err
}

// testBedKubeadm are the kubeadm documents of the tests' Clusterfiles: the
// test bed's nodes have no br_netfilter sysfs, swap checks or systemd to
// please kubeadm's preflight; merged over the image's defaults.
const testBedKubeadm = `---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  ignorePreflightErrors: [all]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  ignorePreflightErrors: [all]
`

func TestKubernetesEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: kube test bed nodes (namespaces, mounts, cgroups; CI runs as root)")
	}
	e := &env{t: t, hoist: fixture.HoistBinary(t), dir: t.TempDir()}
	// The store lives outside the test's temporary directory only when
	// asked (HOIST_E2E_ROOT), to keep images between runs by hand.
	e.root = os.Getenv("HOIST_E2E_ROOT")
	if e.root == "" {
		e.root = filepath.Join(e.dir, "root")
		t.Cleanup(func() {
			exec.Command(e.hoist, "--root", e.root, "rmi", "--all", "--force").Run()
			os.RemoveAll(clusterimage.RunRoot(e.root))
		})
	}
	// The state of a cluster "e2e" left by an earlier run (whose nodes are
	// gone) is not this run's.
	os.RemoveAll(filepath.Join(e.root, "clusters", "e2e"))

	start := time.Now()
	e.buildBase()
	t.Logf("base image built in %s", time.Since(start).Round(time.Second))

	// The app's own image, built by hoist FROM scratch and served where
	// its registry's mirror says, as a site mirror would.
	e.buildHello()

	app := fixture.Context(t, map[string]string{
		"manifests/hello.yaml": helloManifest,
		"Kubefile":             "FROM " + baseImage + "\nAPP hello local://manifests/hello.yaml\nLAUNCH [\"hello\"]\n",
	})
	e.h("build", "-q", "-t", "acme/hello-cluster:v1", "-f", filepath.Join(app, "Kubefile"), app)
	// The digest the image bundled: what the pods must run.
	var bundled []struct{ Ref, Digest string }
	if err := json.Unmarshal([]byte(e.h("inspect", "--images", "--format", "json", "acme/hello-cluster:v1")), &bundled); err != nil {
		t.Fatal(err)
	}
	helloDigest := ""
	for _, b := range bundled {
		if b.Ref == helloRef {
			helloDigest = b.Digest
		}
	}
	if helloDigest == "" {
		t.Fatalf("the app image does not bundle %s: %v", helloRef, bundled)
	}

	bed, key := testbed.ForKubeTest(t, 3)
	for _, n := range bed.Nodes {
		t.Logf("%s %s", n.Name, n.IP)
	}
	sysctlsBefore, err := testbed.SavedSysctls()
	if err != nil || sysctlsBefore == nil {
		t.Fatalf("the host sysctls were not saved by the kube bed: %v", err)
	}
	clusterfile := filepath.Join(e.dir, "Clusterfile")
	// joinExtra is laid over the JoinConfiguration, to make a join fail.
	writeClusterfile := func(masters, workers []testbed.Node, joinExtra string) {
		ips := func(nodes []testbed.Node) string {
			var out []string
			for _, n := range nodes {
				out = append(out, n.IP)
			}
			return strings.Join(out, ", ")
		}
		cf := fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: e2e}
spec:
  image: acme/hello-cluster:v1
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
  - ips: [%s]
    roles: [node]
    labels: {acme.example/tier: apps}
---
# sealer's Application: the apps launched, and the commands after them.
apiVersion: sealer.io/v2
kind: Application
metadata: {name: e2e-apps}
spec:
  launchApps: [hello]
  cmds: ["touch /root/sealer-application-cmds"]
  configs:
  - name: hello
    files:
    - path: hello.yaml
      strategy: merge
      data: |
        metadata: {labels: {acme.example/from: application}}
%s%s`, key, ips(masters), ips(workers), testBedKubeadm, joinExtra)
		if err := os.WriteFile(clusterfile, []byte(cf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := filepath.Join(e.dir, "admin.conf")
	apply := func(flags ...string) (string, error) { return e.apply(clusterfile, flags...) }
	applied := func(flags ...string) {
		t.Helper()
		if _, err := apply(flags...); err != nil {
			t.Fatalf("hoist apply: %v", err)
		}
		if err := os.WriteFile(kubeconfig, []byte(e.h("kubeconfig", "-f", clusterfile)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	master, worker, third := bed.Nodes[0], bed.Nodes[1], bed.Nodes[2]
	one := []testbed.Node{master}

	// 1 master + 1 worker.
	writeClusterfile(one, []testbed.Node{worker}, "")
	t0 := time.Now()
	applied()
	applyToReady := time.Since(t0)
	ready := e.readyNodes(kubeconfig)
	for _, n := range bed.Nodes[:2] {
		if !ready[n.IP] {
			t.Errorf("node %s (%s) is not Ready: %v", n.Name, n.IP, ready)
		}
	}
	pods := e.waitPods(kubeconfig, 5*time.Minute)
	appPods, appRunning := 0, 0
	for _, p := range pods.Items {
		if p.Metadata.Namespace != "hello" {
			continue
		}
		appPods++
		if p.Status.Phase == "Running" {
			appRunning++
		}
		if p.Spec.NodeName != bed.Nodes[1].Name {
			t.Errorf("app pod %s runs on %q, want the worker %s", p.Metadata.Name, p.Spec.NodeName, bed.Nodes[1].Name)
		}
		for _, c := range p.Status.ContainerStatuses {
			if !strings.HasSuffix(c.ImageID, "@"+helloDigest) || !strings.Contains(c.ImageID, "registry.example.com/e2e/hello") {
				t.Errorf("app pod %s: image %s, ID %s: want %s@%s", p.Metadata.Name, c.Image, c.ImageID, helloRef, helloDigest)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(master.Upper, "root/sealer-application-cmds")); err != nil {
		t.Errorf("the Application's cmds did not run on the first master: %v", err)
	}
	var ns struct {
		Metadata struct{ Labels map[string]string }
	}
	if e.kube(kubeconfig, &ns, "get", "namespace", "hello"); ns.Metadata.Labels["acme.example/from"] != "application" {
		t.Errorf("the Application's file merge did not reach the app's manifests: namespace hello's labels %v", ns.Metadata.Labels)
	}
	if appPods != 2 {
		t.Errorf("%d app pods, want 2", appPods)
	}
	// Pods reach pods on other nodes (hoist's routes) and services
	// (kube-proxy, CoreDNS): from an app pod on the worker, the probe's web
	// server on the master by pod IP (with nc: busybox's wget, static
	// glibc, crashes in an image without NSS), and a name through the DNS
	// service.
	var probe podList
	e.kube(kubeconfig, &probe, "get", "pods", "-n", "probe")
	var appPod string
	for _, p := range pods.Items {
		if p.Metadata.Namespace == "hello" {
			appPod = p.Metadata.Name
		}
	}
	exec1 := func(args ...string) (string, error) {
		out, err := exec.Command(e.kubectl, append([]string{"--kubeconfig", kubeconfig, "exec", "-n", "hello", appPod, "--"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if len(probe.Items) != 1 || probe.Items[0].Spec.NodeName != master.Name {
		t.Errorf("the probe pod is not on %s: %+v", master.Name, probe.Items)
	} else {
		ip := probe.Items[0].Status.PodIP
		out, err := exec1("/bin/busybox", "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | /bin/busybox timeout 5 /bin/busybox nc `+ip+` 8080`)
		if err != nil || !strings.HasPrefix(out, "HTTP/1.") {
			t.Errorf("from %s, the probe on %s (%s): %v %q", worker.Name, master.Name, ip, err, out)
		}
	}
	if out, err := exec1("/bin/busybox", "nslookup", "kubernetes.default.svc.cluster.local", "10.96.0.10"); err != nil || !strings.Contains(out, "10.96.0.1") {
		t.Errorf("DNS through the service: %v %s", err, out)
	}

	// The pull went through the cluster's registry on the first master.
	regLog, _ := os.ReadFile(filepath.Join(bed.Nodes[0].Upper, "var/lib/hoist/e2e/state/hoist-registry-e2e.log"))
	if !strings.Contains(string(regLog), "e2e/hello/manifests") {
		t.Errorf("the registry on the master logged no pull of the app image:\n%s", tail(string(regLog), 3000))
	}
	// The summary of the proof: 1 master + 1 worker, the app on it.
	fmt.Printf("nodes Ready: %d/%d, app pods Running: %d/%d\n", count(ready), 2, appRunning, appPods)
	t.Logf("apply to Ready: %s", applyToReady.Round(time.Second))

	// An image of an older Kubernetes (here the Clusterfile's own
	// kubernetesVersion) is refused, naming both versions, before any
	// node step runs.
	writeClusterfile(one, []testbed.Node{worker}, "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.1\n")
	if out, err := apply(); err == nil || !strings.Contains(out, "the cluster runs Kubernetes v1.37.2, the image v1.37.1: a downgrade") || strings.Contains(out, " start") {
		t.Errorf("apply of an older Kubernetes: %v; want it refused before any step", err)
	}
	writeClusterfile(one, []testbed.Node{worker}, "")

	// The worker's machine dies and comes back without its services (no
	// systemd to start them): apply again finds them gone, starts them
	// and waits for the node; its pods run again.
	if err := bed.Crash(worker); err != nil {
		t.Fatal(err)
	}
	if err := bed.Restart(context.Background(), worker); err != nil {
		t.Fatal(err)
	}
	// Once the cluster has seen it go, so that Ready after the apply is
	// the restarted kubelet's.
	for deadline := time.Now().Add(3 * time.Minute); e.readyNodes(kubeconfig)[worker.IP]; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still Ready 3 minutes after its machine died", worker.Name)
		}
	}
	out, err := apply()
	ran := func(ip, step string) bool {
		return regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(ip) + `\s+` + step + `\s+done`).MatchString(out)
	}
	if err != nil || !ran(worker.IP, "kube-node") || !ran(worker.IP, "kube-ready") || ran(master.IP, "kube-node") {
		t.Errorf("apply after %s restarted: %v; want kube-node and kube-ready run again on it, and not on %s", worker.Name, err, master.Name)
	}
	if ready := e.readyNodes(kubeconfig); !ready[worker.IP] {
		t.Errorf("after apply, the restarted %s is not Ready: %v", worker.Name, ready)
	}
	e.waitPods(kubeconfig, 5*time.Minute)

	// A second worker joins.
	writeClusterfile(one, []testbed.Node{worker, third}, "")
	applied()
	if ready := e.readyNodes(kubeconfig); !ready[third.IP] || len(ready) != 3 {
		t.Errorf("after adding %s: nodes %v, want 3 Ready", third.IP, ready)
	}
	// ... and leaves: drained, deleted, reset, with --prune only.
	writeClusterfile(one, []testbed.Node{worker}, "")
	if out, err := apply(); err != nil || !strings.Contains(out, third.IP+" (hoist apply --prune removes them)") {
		t.Errorf("apply without --prune of a Clusterfile without %s: %v; want it named as left alone", third.IP, err)
	}
	if ready := e.readyNodes(kubeconfig); !ready[third.IP] {
		t.Errorf("apply without --prune removed %s: nodes %v", third.IP, ready)
	}
	applied("--prune", "--force")
	if ready := e.readyNodes(kubeconfig); len(ready) != 2 {
		t.Errorf("after removing %s: nodes %v, want 2", third.IP, ready)
	}
	if ps, err := bed.Processes(third); err != nil || slices.ContainsFunc(ps, isClusterProcess) {
		t.Errorf("the removed node still runs: %v %v", ps, err)
	}

	// The reset node comes back as a second master; its first join fails
	// (a node name kubeadm refuses), which fails that node only, and the
	// next apply joins it.
	writeClusterfile([]testbed.Node{master, third}, []testbed.Node{worker}, "  name: Not_A_Node_Name\n")
	out, err = apply()
	if err == nil || !strings.Contains(out, third.IP) || !strings.Contains(out, "kube-join") {
		t.Errorf("a join that fails: error %v, output without %s and kube-join", err, third.IP)
	}
	for _, n := range []testbed.Node{master, worker} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n.IP) + `\s+ok$`).MatchString(out) {
			t.Errorf("the failed join of %s failed %s too", third.IP, n.IP)
		}
	}
	writeClusterfile([]testbed.Node{master, third}, []testbed.Node{worker}, "")
	applied()
	if ready := e.readyNodes(kubeconfig); !ready[third.IP] || len(ready) != 3 {
		t.Errorf("after the retried join of %s: nodes %v, want 3 Ready", third.IP, ready)
	}
	// The rejoined node has a new pod range: the others route to it.
	var nodes struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ PodCIDR string }
		}
	}
	e.kube(kubeconfig, &nodes, "get", "nodes")
	for _, n := range nodes.Items {
		if n.Metadata.Name != third.Name {
			continue
		}
		for _, o := range []testbed.Node{master, worker} {
			routes, _ := exec.Command("ip", "-n", o.NetNS, "route", "show", "proto", "77").Output()
			if !strings.Contains(string(routes), n.Spec.PodCIDR+" via "+third.IP) {
				t.Errorf("%s has no route to %s's pods (%s via %s):\n%s", o.Name, third.Name, n.Spec.PodCIDR, third.IP, routes)
			}
		}
	}
	// Its static kube-apiserver pod's status follows the node's Ready by
	// a few seconds: wait for it.
	var apiserver podList
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		e.kube(kubeconfig, &apiserver, "get", "pods", "-n", "kube-system", "-l", "component=kube-apiserver")
		if slices.ContainsFunc(apiserver.Items, func(p pod) bool { return p.Spec.NodeName == third.Name && p.Status.Phase == "Running" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no kube-apiserver Running on the second master %s after 2m: %+v", third.Name, apiserver.Items)
			break
		}
	}

	e.certs(clusterfile, kubeconfig, []testbed.Node{master, third})
	e.restore(clusterfile, kubeconfig, 3)
	e.h("delete", "-f", clusterfile, "--force")
	for _, n := range bed.Nodes {
		if ps, err := bed.Processes(n); err != nil || slices.ContainsFunc(ps, isClusterProcess) {
			t.Errorf("%s still runs after delete: %v %v", n.Name, ps, err)
		}
	}
	bed.Destroy()
	if saved, _ := testbed.SavedSysctls(); saved != nil {
		// Another kube bed is up (another test binary): the restore is
		// its Destroy's.
		t.Logf("sysctls: another kube bed is up, restored when it goes")
	} else if after, err := testbed.HostSysctls(); err != nil || !mapsEqual(sysctlsBefore, after) {
		t.Errorf("host sysctls not restored: before %v, after %v (%v)", sysctlsBefore, after, err)
	}
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

const helloManifest = `apiVersion: v1
kind: Namespace
metadata: {name: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      nodeSelector: {acme.example/tier: apps}
      containers:
      - name: hello
        image: ` + helloRef + `
        args: [sleep, "100000"]
---
# A web server on the master, for the app's pods on the worker to reach
# across nodes, wherever the scheduler put CoreDNS.
apiVersion: v1
kind: Namespace
metadata: {name: probe}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: probe}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec:
      nodeSelector: {node-role.kubernetes.io/control-plane: ""}
      tolerations: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]
      containers:
      - name: probe
        image: ` + helloRef + `
        args: [httpd, -f, -p, "8080", -h, /]
`

// buildHello builds the app's image FROM scratch (busybox) and serves it
// on loopback as the mirror of registry.example.com.
func (e *env) buildHello() {
	t := e.t
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static (make deps installs it): %v", err)
	}
	ctx := fixture.Context(t, map[string]string{"busybox": string(busybox)})
	os.Chmod(filepath.Join(ctx, "busybox"), 0o755)
	kubefile := filepath.Join(ctx, "Kubefile")
	os.WriteFile(kubefile, []byte("FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n"), 0o644)
	e.h("build", "-q", "-t", helloRef, "-f", kubefile, ctx)
	host := fixture.Registry(t, nil)
	e.h("push", "-q", "--tls-verify=false", helloRef, host+"/registry.example.com/e2e/hello:v1")
	conf := fmt.Sprintf("[[registry]]\nprefix = \"registry.example.com\"\nlocation = \"registry.example.com\"\n[[registry.mirror]]\nlocation = \"%s/registry.example.com\"\ninsecure = true\n", host)
	dir := filepath.Join(e.root, "config", "registries.conf.d")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "50-e2e-hello.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// isClusterProcess is a process a cluster left running.
func isClusterProcess(cmdline string) bool {
	for _, p := range []string{"kubelet", "containerd", "etcd", "kube-", "coredns", "pause", "hoist"} {
		if strings.Contains(cmdline, p) {
			return true
		}
	}
	return false
}

func count(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

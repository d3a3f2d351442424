//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

// The previous minor's base image, built the same way as baseImage and
// cached by version outside the checkout.
const (
	oldVersion   = "v1.36.3"
	oldBaseImage = "hoist.dev/kubernetes:" + oldVersion
	newVersion   = "v1.37.2"
)

// webManifest is the app the upgrade must not interrupt: 2 replicas that
// tolerate the master's taint, kept apart, a PodDisruptionBudget that
// lets a drain take one at a time, and a NodePort Service. busybox's
// httpd answers /etc/hostname: the pod's name.
const webManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations:
      - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {app: web}}
      containers:
      - name: web
        image: ` + helloRef + `
        args: [httpd, -f, -p, "8080", -h, /]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080, nodePort: 30080}
`

// TestKubernetesUpgrade: a cluster of the previous minor (1 master, 1
// worker) with an app, upgraded by applying the same app FROM the new base
// image. A downgrade is refused before anything changes; hoist is killed
// once in the middle of the upgrade and the next apply finishes it; a
// request goes to the app's Service every second throughout, and its
// failures are counted. HOIST_E2E_UPGRADE_MASTERS=N runs it with N
// masters (kubeadm upgrade node on all but the first), by hand: CI runs
// one.
func TestKubernetesUpgrade(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: kube test bed nodes (namespaces, mounts, cgroups; CI runs as root)")
	}
	e := newEnv(t)
	start := time.Now()
	e.buildBase()
	e.buildBaseVersion(oldVersion, oldBaseImage)
	t.Logf("base images %s and %s built in %s", oldVersion, newVersion, time.Since(start).Round(time.Second))
	e.buildHello()
	for tag, base := range map[string]string{"v1": oldBaseImage, "v2": baseImage} {
		app := fixture.Context(t, map[string]string{
			"manifests/web.yaml": webManifest,
			"Kubefile":           "FROM " + base + "\nAPP web local://manifests/web.yaml\nLAUNCH [\"web\"]\n",
		})
		e.h("build", "-q", "-t", "acme/web-cluster:"+tag, "-f", filepath.Join(app, "Kubefile"), app)
	}

	masters := 1
	if n := os.Getenv("HOIST_E2E_UPGRADE_MASTERS"); n != "" {
		if _, err := fmt.Sscan(n, &masters); err != nil || masters < 1 {
			t.Fatalf("HOIST_E2E_UPGRADE_MASTERS=%q: want a number of masters", n)
		}
	}
	bed, key := testbed.ForKubeTest(t, masters+1)
	master, worker := bed.Nodes[0], bed.Nodes[masters]
	var masterIPs []string
	for _, n := range bed.Nodes[:masters] {
		masterIPs = append(masterIPs, n.IP)
	}
	clusterfile := filepath.Join(e.dir, "Clusterfile")
	use := func(image string) {
		cf := fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: upgrade}
spec:
  image: %s
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
  - ips: [%s]
    roles: [node]
%s---
# sealer's upgrade hooks: on every host in its turn, then on a master.
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: upgrade-host-mark}
spec:
  type: SHELL
  action: upgrade-host
  data: echo "$HOIST_NODE" >> /root/hoist-upgrade-host
---
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: upgraded-mark}
spec:
  type: SHELL
  action: upgrade
  data: kubectl --kubeconfig /etc/kubernetes/admin.conf version -o json > /root/hoist-upgraded
`, image, key, strings.Join(masterIPs, ", "), worker.IP, testBedKubeadm)
		if err := os.WriteFile(clusterfile, []byte(cf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := filepath.Join(e.dir, "admin.conf")
	fetch := func() {
		t.Helper()
		if err := os.WriteFile(kubeconfig, []byte(e.h("kubeconfig", "-f", clusterfile)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	versions := func() map[string]string {
		t.Helper()
		var nodes struct {
			Items []struct {
				Status struct {
					Addresses []struct{ Type, Address string }
					NodeInfo  struct{ KubeletVersion string }
				}
			}
		}
		e.kube(kubeconfig, &nodes, "get", "nodes")
		out := map[string]string{}
		for _, n := range nodes.Items {
			for _, a := range n.Status.Addresses {
				if a.Type == "InternalIP" {
					out[a.Address] = n.Status.NodeInfo.KubeletVersion
				}
			}
		}
		return out
	}

	// The previous minor, with the app.
	use("acme/web-cluster:v1")
	if _, err := e.apply(clusterfile); err != nil {
		t.Fatalf("hoist apply of %s: %v", oldVersion, err)
	}
	fetch()
	e.waitPods(kubeconfig, 3*time.Minute)
	for ip, v := range versions() {
		if v != oldVersion {
			t.Fatalf("before the upgrade: %s at %s, want %s", ip, v, oldVersion)
		}
	}
	t.Logf("%s cluster with the app after %s", oldVersion, time.Since(start).Round(time.Second))

	// The probe: a request every second through the Service, on each
	// node's port in turn.
	probe := &serviceProbe{urls: []string{"http://" + master.IP + ":30080/etc/hostname", "http://" + worker.IP + ":30080/etc/hostname"}}
	if err := probe.once(); err != nil {
		t.Fatalf("the app does not answer before the upgrade: %v", err)
	}
	stopProbe := probe.start()

	// The plan says what the upgrade does.
	use("acme/web-cluster:v2")
	plan := e.h("apply", "-f", clusterfile, "--dry-run")
	if !strings.HasPrefix(plan, "upgrade of Kubernetes "+oldVersion+" -> "+newVersion+"\n") ||
		strings.Count(plan, "  kube-upgrade     to do\n") != masters+1 {
		t.Errorf("apply --dry-run of the upgrade:\n%s", plan)
	}

	// The upgrade, killed once in the middle: when the worker's turn
	// comes (the control plane is upgraded by then).
	upgradeStart := time.Now()
	out, killed := e.applyKilledAt(clusterfile, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(worker.IP)+`\s+kube-upgrade\s+start`))
	if !killed {
		t.Fatalf("hoist apply finished before the worker's upgrade started:\n%s", out)
	}
	for _, ip := range masterIPs {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ip) + `\s+kube-upgrade\s+done`).MatchString(out) {
			t.Fatalf("master %s was not upgraded before the worker:\n%s", ip, out)
		}
	}
	t.Logf("hoist killed after %s, once the master was upgraded", time.Since(upgradeStart).Round(time.Second))
	// The apply runs again at once: the master's control plane, restarted
	// by its new kubelet, is up by then.
	out, err := e.apply(clusterfile)
	if err != nil {
		t.Fatalf("hoist apply after the kill: %v\n%s", err, e.clusterState(kubeconfig))
	}
	if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(master.IP)+`\s+kube-upgrade\s+skipped`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(worker.IP)+`\s+kube-upgrade\s+done`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^upgrade\s+backup \S+\s+skipped`).MatchString(out) {
		t.Errorf("the second apply did not resume with the worker's upgrade, keeping the backup:\n%s", out)
	}
	upgraded := time.Since(upgradeStart).Round(time.Second)
	fetch()
	pods := e.waitPods(kubeconfig, 3*time.Minute)
	failures, requests := stopProbe()
	v := versions()
	n := 0
	for _, node := range bed.Nodes {
		if v[node.IP] == newVersion {
			n++
		}
	}
	if n != len(bed.Nodes) {
		t.Errorf("after the upgrade: node versions %v, want %s", v, newVersion)
	}
	// Every pod runs an image the new image (the app's and its base's
	// registry layers) bundles: etcd and CoreDNS were upgraded to its
	// versions too (its registry has no others).
	var bundled []struct{ Ref string }
	if err := json.Unmarshal([]byte(e.h("inspect", "--images", "--format", "json", "acme/web-cluster:v2", baseImage)), &bundled); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			if !slices.ContainsFunc(bundled, func(b struct{ Ref string }) bool { return b.Ref == c.Image }) {
				t.Errorf("after the upgrade, pod %s runs %s, which acme/web-cluster:v2 does not bundle", p.Metadata.Name, c.Image)
			}
		}
	}
	// The journal's versions, which status shows.
	var status []struct{ Node, Version string }
	if err := json.Unmarshal([]byte(e.h("status", "-f", clusterfile, "--format", "json")), &status); err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.Node != "apps" && s.Version != newVersion {
			t.Errorf("hoist status: %s at %q, want %s", s.Node, s.Version, newVersion)
		}
	}
	// The hooks: upgrade-host once on each node (the kill did not run
	// the worker's twice), upgrade once on a master, after the masters'
	// upgrade (its kubectl talks to the new control plane).
	for _, n := range bed.Nodes {
		if out := e.onNode(key, n, "cat /root/hoist-upgrade-host"); out != n.IP+"\n" {
			t.Errorf("upgrade-host hooks on %s: %q, want one run", n.IP, out)
		}
	}
	if out := e.onNode(key, master, "cat /root/hoist-upgraded"); !strings.Contains(out, `"gitVersion": "`+newVersion+`"`) {
		t.Errorf("the upgrade hook on %s: %q, want the server at %s", master.IP, out, newVersion)
	}
	backups, _ := filepath.Glob(filepath.Join(e.root, "clusters", "upgrade", "backups", "upgrade-before-"+newVersion+"-*.hoist-backup"))
	if len(backups) != 1 {
		t.Errorf("backups before the upgrade: %v, want one", backups)
	}
	// A few failures at most: a NodePort's connections to a pod being
	// evicted, or through a node whose kube-proxy restarts.
	if failures > requests/10 {
		t.Errorf("the app failed %d of %d requests during the upgrade:\n%s", failures, requests, probe.log())
	}
	fmt.Printf("upgrade: %s -> %s nodes %d/%d, probe failures %d/%d\n", oldVersion, newVersion, n, len(bed.Nodes), failures, requests)
	t.Logf("upgraded in %s (with the kill); probe failures %d/%d", upgraded, failures, requests)

	// Back to the previous minor: refused before anything changes.
	use("acme/web-cluster:v1")
	journal := filepath.Join(e.root, "clusters", "upgrade", "journal.json")
	before, _ := os.ReadFile(journal)
	out, err = e.apply(clusterfile)
	if err == nil || !strings.Contains(out, "the cluster runs Kubernetes "+newVersion+", the image "+oldVersion+": a downgrade") {
		t.Errorf("a downgrade: %v\n%s", err, out)
	}
	if regexp.MustCompile(`(?m)^\S+\s+\S+\s+start`).MatchString(out) {
		t.Errorf("a step started before the downgrade was refused:\n%s", out)
	}
	after, _ := os.ReadFile(journal)
	var j1, j2 struct{ Nodes map[string]map[string]any }
	json.Unmarshal(before, &j1)
	json.Unmarshal(after, &j2)
	if fmt.Sprint(j1.Nodes) != fmt.Sprint(j2.Nodes) {
		t.Errorf("the refused downgrade changed the journal's steps")
	}
	for ip, v := range versions() {
		if v != newVersion {
			t.Errorf("after the refused downgrade: %s at %s", ip, v)
		}
	}

	use("acme/web-cluster:v2")
	e.h("delete", "-f", clusterfile, "--force")
	bed.Destroy()
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// onNode runs a command on a node over SSH (as root, with the test bed's
// key) and returns its output.
func (e *env) onNode(key string, n testbed.Node, command string) string {
	e.t.Helper()
	out, err := exec.Command("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"root@"+n.IP, command).Output()
	if err != nil {
		e.t.Errorf("%s on %s: %v", command, n.Name, err)
	}
	return string(out)
}

// buildBaseVersion builds the base image of another Kubernetes version as
// buildBase does (its binaries cached by version).
func (e *env) buildBaseVersion(version, name string) {
	e.t.Helper()
	e.t.Logf("building %s (KUBERNETES_VERSION=%s images/kubernetes/build.sh)", name, version)
	build := exec.Command("images/kubernetes/build.sh", name)
	build.Dir = repoRoot(e.t)
	build.Env = append(os.Environ(), "HOIST="+e.hoist, "ROOT="+e.root, "KUBERNETES_VERSION="+version)
	if out, err := build.CombinedOutput(); err != nil {
		e.t.Fatalf("KUBERNETES_VERSION=%s images/kubernetes/build.sh: %v\n%s", version, err, out)
	}
}

// applyKilledAt runs hoist apply and kills it (SIGKILL, as a machine
// lost) as soon as its output matches at; it returns the output and
// whether it was killed.
func (e *env) applyKilledAt(clusterfile string, at *regexp.Regexp) (string, bool) {
	e.t.Helper()
	cmd := exec.Command(e.hoist, "--root", e.root, "apply", "-f", clusterfile, "--accept-new-host-keys")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	var out strings.Builder
	killed := false
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !killed && at.MatchString(out.String()) {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	io.Copy(io.Discard, pipe)
	cmd.Wait()
	e.t.Logf("hoist apply (killed: %v):\n%s", killed, out.String())
	return out.String(), killed
}

// serviceProbe sends a request every second, to each URL in turn, and
// counts those that fail.
type serviceProbe struct {
	urls               []string
	requests, failures atomic.Int64
	mu                 sync.Mutex
	failed             []string
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

func (p *serviceProbe) once() error { return p.get(p.urls[0]) }

func (p *serviceProbe) get(url string) error {
	resp, err := probeClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "web-") {
		return fmt.Errorf("%s: %s %q", url, resp.Status, body)
	}
	return nil
}

// start probes until the returned stop is called; stop returns the
// failures and the requests.
func (p *serviceProbe) start() (stop func() (int, int)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			url := p.urls[i%len(p.urls)]
			p.requests.Add(1)
			if err := p.get(url); err != nil {
				p.failures.Add(1)
				p.mu.Lock()
				p.failed = append(p.failed, time.Now().Format("15:04:05")+" "+err.Error())
				p.mu.Unlock()
			}
		}
	}()
	return func() (int, int) {
		cancel()
		<-done
		return int(p.failures.Load()), int(p.requests.Load())
	}
}

func (p *serviceProbe) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.failed, "\n")
}

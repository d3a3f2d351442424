//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/test/testbed"
)

// TestKubernetesHA: three masters and a worker from the base image, every
// node reaching the API servers through its own balancer. The machine that
// ran kubeadm init dies (every process killed, its network gone, as a
// power loss): within 2 minutes the worker is still Ready, a new
// Deployment runs, hoist kubeconfig gives a working kubeconfig and hoist
// apply succeeds for every other node. That machine, taken out of the
// Clusterfile, is removed with --prune (etcd down to 2 members), then
// comes back as a new master (3 members again).
func TestKubernetesHA(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: kube test bed nodes (namespaces, mounts, cgroups; CI runs as root)")
	}
	e := newEnv(t)
	start := time.Now()
	bins := e.buildBase()
	images, err := os.ReadFile(filepath.Join(bins, "images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pause := regexp.MustCompile(`(?m)^\S+/pause:\S+$`).FindString(string(images))
	if pause == "" {
		t.Fatalf("no pause image in %s/images.txt:\n%s", bins, images)
	}

	bed, key := testbed.ForKubeTest(t, 4)
	masters, worker := bed.Nodes[:3], bed.Nodes[3]
	first := masters[0]
	clusterfile := filepath.Join(e.dir, "Clusterfile")
	writeClusterfile := func(masters []testbed.Node) {
		var ips []string
		for _, n := range masters {
			ips = append(ips, n.IP)
		}
		cf := fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: ha}
spec:
  image: %s
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
  - ips: [%s]
    roles: [node]
  # The registry on every master too: the first one is not special.
  registry:
    nodes: [%[3]s]
%[5]s`, baseImage, key, strings.Join(ips, ", "), worker.IP, testBedKubeadm)
		if err := os.WriteFile(clusterfile, []byte(cf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(flags ...string) (string, error) { return e.apply(clusterfile, flags...) }
	kubeconfig := filepath.Join(e.dir, "admin.conf")
	// fetch writes the kubeconfig hoist gives now, and tells whether the
	// API server answers with it.
	fetch := func() error {
		out, err := exec.Command(e.hoist, "--root", e.root, "kubeconfig", "-f", clusterfile).Output()
		if err != nil {
			return fmt.Errorf("hoist kubeconfig: %v", err)
		}
		if err := os.WriteFile(kubeconfig, out, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(e.kubectl, "--kubeconfig", kubeconfig, "get", "--raw", "/readyz", "--request-timeout", "10s").CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl get --raw /readyz: %v %s", err, out)
		}
		return nil
	}
	// members counts etcd's members, asked on a master that lives.
	members := func(on testbed.Node) int {
		t.Helper()
		out, err := exec.Command("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
			"root@"+on.IP, "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "+
				"--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key member list -w json").Output()
		if err != nil {
			t.Fatalf("etcdctl member list on %s: %v", on.Name, err)
		}
		var list struct{ Members []json.RawMessage }
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("etcdctl member list on %s: %v\n%s", on.Name, err, out)
		}
		return len(list.Members)
	}
	ok := func(out string, nodes ...testbed.Node) {
		t.Helper()
		for _, n := range nodes {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n.IP) + `\s+ok$`).MatchString(out) {
				t.Errorf("hoist apply: %s (%s) not ok", n.Name, n.IP)
			}
		}
	}
	ready := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(3 * time.Second) {
			r := e.readyNodes(kubeconfig)
			if count(r) == want && len(r) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("nodes %v, want %d Ready", r, want)
			}
		}
	}

	writeClusterfile(masters)
	out, err := apply()
	if err != nil {
		t.Fatalf("hoist apply of 3 masters and a worker: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(first.IP) + `\s+kube-init\s+done`).MatchString(out) {
		t.Fatalf("%s did not run kubeadm init", first.IP)
	}
	if err := fetch(); err != nil {
		t.Fatal(err)
	}
	ready(4)
	before := members(masters[1])
	t.Logf("3 masters and a worker Ready after %s; etcd members %d", time.Since(start).Round(time.Second), before)

	// The machine that made the cluster dies.
	if err := bed.Crash(first); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	// A kubeconfig that works, from another master.
	for err := fetch(); err != nil; err = fetch() {
		if time.Since(crashed) > 2*time.Minute {
			t.Fatalf("2 minutes after %s died: %v", first.Name, err)
		}
		time.Sleep(2 * time.Second)
	}
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command(e.kubectl, append([]string{"--kubeconfig", kubeconfig, "--request-timeout", "10s"}, args...)...).CombinedOutput()
		return string(out), err
	}
	// The API answers before etcd has elected a leader in the dead one's
	// place: a request may time out meanwhile, and is tried again, within
	// the 2 minutes (one that timed out yet was committed already exists).
	for {
		out, err := kubectl("create", "deployment", "after-loss", "--image", pause)
		if err == nil || strings.Contains(out, "AlreadyExists") || strings.Contains(out, "already exists") {
			break
		}
		if time.Since(crashed) > 2*time.Minute {
			t.Fatalf("a Deployment 2 minutes after %s died: %v %s", first.Name, err, out)
		}
		time.Sleep(2 * time.Second)
	}
	var running string
	for {
		r, _ := e.tryReadyNodes(kubeconfig)
		out, _ := kubectl("get", "pods", "-l", "app=after-loss", "-o", "jsonpath={.items[*].status.phase}")
		if r[worker.IP] && out == "Running" {
			running = time.Since(crashed).Round(time.Second).String()
			break
		}
		if time.Since(crashed) > 2*time.Minute {
			pods, _ := kubectl("get", "pods", "-A", "-o", "wide")
			t.Fatalf("2 minutes after %s died: nodes %v, the new Deployment's pod %q\n%s", first.Name, r, out, pods)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("%s died: worker Ready and a new Deployment Running after %s", first.Name, running)
	// apply: every other node succeeds, the dead one fails.
	out, err = apply()
	if err == nil || !strings.Contains(out, first.IP) {
		t.Errorf("apply with %s dead: %v; want that node failed", first.Name, err)
	}
	ok(out, masters[1], masters[2], worker)

	// Out of the Clusterfile, and pruned: out of etcd too.
	writeClusterfile(masters[1:])
	if out, err := apply("--prune", "--force"); err != nil {
		t.Fatalf("apply --prune without %s: %v", first.Name, err)
	} else {
		ok(out, masters[1], masters[2], worker)
	}
	ready(3)
	pruned := members(masters[1])

	// It comes back, as a new master.
	if err := bed.Restart(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	writeClusterfile(append(masters[1:], first))
	if out, err := apply(); err != nil {
		t.Fatalf("apply with %s back as a master: %v", first.Name, err)
	} else {
		ok(out, bed.Nodes...)
	}
	if err := fetch(); err != nil {
		t.Fatal(err)
	}
	ready(4)
	after := members(first)
	if before != 3 || pruned != 2 || after != 3 {
		t.Errorf("etcd members %d->%d->%d, want 3->2->3", before, pruned, after)
	}
	fmt.Printf("HA: survived master loss, etcd members %d->%d->%d\n", before, pruned, after)

	e.h("delete", "-f", clusterfile, "--force")
	bed.Destroy()
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

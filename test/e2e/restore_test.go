//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// restore proves hoist backup and hoist restore on the end-to-end test's
// cluster (its masters and workers all Ready): a namespace made, a backup
// taken, the namespace deleted (gone from the cluster), the backup
// restored on every master: the namespace is back with what it held, and
// every node is Ready again, every pod running.
func (e *env) restore(clusterfile, kubeconfig string, nodes int) {
	t := e.t
	t.Helper()
	start := time.Now()
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command(e.kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	const ns = "restore-e2e"
	for _, args := range [][]string{
		{"create", "namespace", ns},
		{"create", "configmap", "proof", "-n", ns, "--from-literal=taken=before the backup"},
	} {
		if out, err := kubectl(args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	file := filepath.Join(e.dir, "e2e.hoist-backup")
	t.Logf("hoist backup: %s", e.h("backup", "-f", clusterfile, "-o", file))
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file %s: %v %v, want mode 600", file, fi, err)
	}

	if out, err := kubectl("delete", "namespace", ns, "--wait", "--timeout=3m"); err != nil {
		t.Fatalf("kubectl delete namespace %s: %v\n%s", ns, err, out)
	}
	if out, err := kubectl("get", "namespace", ns); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("namespace %s still there after its deletion: %v\n%s", ns, err, out)
	}

	t0 := time.Now()
	t.Logf("hoist restore:\n%s", e.h("restore", "-f", clusterfile, "--from", file, "--force"))
	restored := time.Since(t0)

	// hoist restore waited for every API server; through the cluster's
	// endpoint, the namespace is back with its config map.
	var got string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		out, err := kubectl("get", "configmap", "proof", "-n", ns, "-o", "jsonpath={.data.taken}")
		if got = out; err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restore, no config map proof in namespace %s: %v\n%s", ns, err, out)
		}
	}
	if got != "before the backup" {
		t.Errorf("after the restore, config map proof holds %q", got)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(3 * time.Second) {
		ready := e.readyNodes(kubeconfig)
		if len(ready) == nodes && count(ready) == nodes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restore, nodes %v: want %d Ready", ready, nodes)
		}
	}
	e.waitPods(kubeconfig, 5*time.Minute)
	fmt.Printf("restore: namespace back after restore\n")
	t.Logf("backup and restore: %s (restore %s)", time.Since(start).Round(time.Second), restored.Round(time.Second))
}

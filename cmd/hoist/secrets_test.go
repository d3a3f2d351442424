package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

// secretsClusterfile holds a secret in its env and a hook that looks at
// every process's arguments while it runs, and proves the secret reached it.
const secretsClusterfile = `apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: secrets}
spec:
  image: demo/secrets:v1
  ssh: {user: root, privateKey: %s}
  env: {DB_PASSWORD: %s}
  hosts:
  - ips: [%s]
    roles: [master]
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: look}
spec:
  type: SHELL
  phase: pre-init-host
  data: |
    ps -eo args > /root/ps.txt
    for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done >> /root/ps.txt 2>/dev/null
    printf %%s "$DB_PASSWORD" | sha256sum > /root/used.txt
`

// TestApplyKeepsSecretsOutOfSight: the Clusterfile's secret env reaches the
// hooks, but no process's arguments (on the node, whose processes here
// include this machine's), nor apply's output, the journal or the store;
// and a dry run before it writes no state at all.
func TestApplyKeepsSecretsOutOfSight(t *testing.T) {
	needRoot(t)
	root := fixture.Root(t)
	t.Setenv("HOIST_NODE_BINARY", fixture.HoistBinary(t))
	dir := fixture.Context(t, map[string]string{
		"Kubefile":   "FROM scratch\nCOPY . .\n",
		"etc/a.conf": "a\n",
	})
	if out, stderr, err := hoistAt(t, root, "", "build", "-q", "-t", "demo/secrets:v1", dir); err != nil {
		t.Fatalf("build: %v\n%s%s", err, out, stderr)
	}
	b := make([]byte, 16)
	rand.Read(b)
	secret := "pw-" + hex.EncodeToString(b)
	bed, key := testbed.ForTest(t, 1)
	n := bed.Nodes[0]
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(secretsClusterfile, key, secret, n.IP)), 0o644)

	state := filepath.Join(root, "clusters", "secrets")
	dry, stderr, err := hoistAt(t, root, "", "apply", "-f", cf, "--dry-run")
	if err != nil || !strings.Contains(dry, "hook:pre-init-host") {
		t.Fatalf("dry run: %v\n%s%s", err, dry, stderr)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(state)
		t.Errorf("a dry run wrote the cluster's state (%v): %v", err, entries)
	}

	// A killed apply left its temporary directory: the next one removes it.
	dead := exec.Command("true")
	dead.Run()
	stale := filepath.Join(root, "tmp", fmt.Sprintf("apply-%d-1234", dead.Process.Pid))
	os.MkdirAll(filepath.Join(stale, "rootfs"), 0o700)

	out, stderr, err := hoistAt(t, root, "", "apply", "-f", cf, "--accept-new-host-keys", "--format", "json")
	if err != nil {
		t.Fatalf("apply: %v\n%s%s", err, out, stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "tmp", "apply-*")); len(left) != 0 {
		t.Errorf("temporary directories left after apply: %v", left)
	}
	ps, err := os.ReadFile(filepath.Join(n.Upper, "root/ps.txt"))
	if err != nil || !bytes.Contains(ps, []byte("ps -eo args")) {
		t.Fatalf("the hook saw no processes: %v\n%s", err, ps)
	}
	sum := sha256.Sum256([]byte(secret))
	if used, _ := os.ReadFile(filepath.Join(n.Upper, "root/used.txt")); !strings.HasPrefix(string(used), hex.EncodeToString(sum[:])) {
		t.Errorf("the hook did not get the secret in its env: %q", used)
	}
	if c := bytes.Count(ps, []byte(secret)); c != 0 {
		t.Errorf("the secret is in %d process arguments:\n%s", c, ps)
	}
	if strings.Contains(out+stderr, secret) {
		t.Errorf("the secret is in apply's output:\n%s%s", out, stderr)
	}
	// Every file hoist keeps: the store, the journal, the PKI, here and on
	// the node.
	for _, tree := range []string{root, filepath.Join(n.Upper, "var/lib/hoist/secrets")} {
		files := 0
		filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			files++
			if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(secret)) {
				t.Errorf("the secret is in %s", p)
			}
			return nil
		})
		if files == 0 {
			t.Errorf("no file under %s", tree)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "journal.json")); err != nil {
		t.Errorf("the journal: %v", err)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

// sealerImagePlugins are an image's plugins as sealer's plugin repository
// writes them: apiVersion sealer.io/v2, a phase list.
const sealerImagePlugins = `apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: 10-image}
spec:
  type: SHELL
  action: post-init-host|pre-clean-host
  data: echo "$HOIST_PHASE 10-image $(cat etc/greeting.conf)" >> /root/hooks.log
`

// sealerClusterfile is a sealer Clusterfile: env as a list, ssh.pk, a
// custom role, plugins of both apiVersions with phase lists and old
// action names, the whole cluster's uninstall phases, and Config
// documents (merged into the image's file; processed).
func sealerClusterfile(key, master, worker string) string {
	return fmt.Sprintf(`apiVersion: sealer.io/v2
kind: Cluster
metadata: {name: shop}
spec:
  image: demo/sealer:v1
  ssh: {user: root, pk: %s}
  env: [GREETING=hello]
  containerRuntime: {type: containerd}
  hosts:
    - ips: [%s]
      roles: [master]
    - ips: [%s]
      roles: [node, db]
---
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: 20-db}
spec:
  type: SHELL
  action: pre-init-host|post-install
  scope: db
  data: echo "$HOIST_PHASE 20-db" >> /root/hooks.log
---
apiVersion: sealer.io/v1
kind: Plugin
metadata: {name: 30-masters}
spec:
  type: SHELL
  action: PostInstall
  scope: master
  data: echo "$HOIST_PHASE 30-masters" >> /root/hooks.log
---
apiVersion: sealer.io/v2
kind: Config
metadata: {name: db}
spec:
  path: etc/db.yaml
  strategy: merge
  data: |
    db: {host: db.shop}
    extra: not added, as in sealer
---
apiVersion: sealer.io/v2
kind: Config
metadata: {name: token}
spec:
  path: etc/token
  process: toBase64
  data: s3cret
---
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: 40-bye}
spec:
  type: SHELL
  action: pre-uninstall|post-uninstall
  scope: master
  data: echo "$HOIST_PHASE 40-bye" >> /root/bye.log
`, key, master, worker)
}

// TestApplySealerClusterfile applies a sealer Clusterfile to 2 nodes of a
// real test bed: what each plugin ran, where and in which order; the
// image's *.tmpl under etc/ rendered with the cluster env, and the Config
// documents' files, on every node;
// then status and delete from the kept Clusterfile, the uninstall hooks
// around the clean. (An Application's launch needs Kubernetes: launch
// overrides are tested in apply's TestWithLaunch.)
func TestApplySealerClusterfile(t *testing.T) {
	needRoot(t)
	root := fixture.Root(t)
	t.Setenv("HOIST_NODE_BINARY", fixture.HoistBinary(t))
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := hoistAt(t, root, "", args...)
		if err != nil {
			t.Fatalf("hoist %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	dir := fixture.Context(t, map[string]string{
		"Kubefile":               "FROM scratch\nCOPY . .\n",
		"etc/greeting.conf.tmpl": "greeting={{ .GREETING }}\n",
		"etc/db.yaml":            "db:\n  host: localhost\n  port: 5432\n",
		"plugins/hooks.yaml":     sealerImagePlugins,
	})
	run("build", "-q", "-t", "demo/sealer:v1", dir)

	bed, key := testbed.ForTest(t, 2)
	m, w := bed.Nodes[0], bed.Nodes[1]
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte(sealerClusterfile(key, m.IP, w.IP)), 0o644)
	run("apply", "-f", cf, "--accept-new-host-keys")

	want := map[string]string{
		m.IP: "post-init-host 10-image greeting=hello\npost-install 30-masters\n",
		w.IP: "pre-init-host 20-db\npost-init-host 10-image greeting=hello\npost-install 20-db\n",
	}
	for _, n := range bed.Nodes {
		if data, _ := os.ReadFile(filepath.Join(n.Upper, "root/hooks.log")); string(data) != want[n.IP] {
			t.Errorf("%s ran:\n%s\nwant:\n%s", n.IP, data, want[n.IP])
		}
		files := map[string]string{
			"etc/greeting.conf": "greeting=hello\n",
			"etc/db.yaml":       "db:\n  host: db.shop\n  port: 5432\n",
			"etc/token":         "czNjcmV0",
		}
		for name, want := range files {
			if data, _ := os.ReadFile(filepath.Join(n.Upper, "var/lib/hoist/shop/rootfs", name)); string(data) != want {
				t.Errorf("%s: %s is %q, want %q", n.IP, name, data, want)
			}
		}
	}

	if status := run("status"); !strings.Contains(status, "shop") || !strings.Contains(status, w.IP) {
		t.Errorf("status from the kept Clusterfile:\n%s", status)
	}
	run("delete", "--name", "shop", "--force")
	if data, _ := os.ReadFile(filepath.Join(m.Upper, "root/bye.log")); string(data) != "pre-uninstall 40-bye\npost-uninstall 40-bye\n" {
		t.Errorf("the uninstall hooks ran:\n%s", data)
	}
	for _, n := range bed.Nodes {
		data, _ := os.ReadFile(filepath.Join(n.Upper, "root/hooks.log"))
		if !strings.HasSuffix(string(data), "pre-clean-host 10-image greeting=hello\n") {
			t.Errorf("%s: no pre-clean-host hook in the rootfs:\n%s", n.IP, data)
		}
		if _, err := os.Stat(filepath.Join(n.Upper, "var/lib/hoist/shop")); !os.IsNotExist(err) {
			t.Errorf("%s: the cluster's directory is still there: %v", n.IP, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "clusters", "shop")); !os.IsNotExist(err) {
		t.Errorf("the cluster's state is still there: %v", err)
	}
}

package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/apply/backupfile"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/test/testbed"
)

// nodeBinDir is the directory of the base image's binaries (kubeadm,
// etcd, etcdctl, etcdutl), made once and cached by version outside the
// checkout by images/kubernetes/binaries.sh, as the end-to-end test makes
// them. Making them needs root, as the test bed does.
func nodeBinDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a test bed of nodes, and images/kubernetes/binaries.sh makes the node binaries as root (CI runs as root)")
	}
	script := filepath.Join("..", "images", "kubernetes", "binaries.sh")
	out, err := exec.Command("sh", script).Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

func TestDefaultBackupName(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	if got := DefaultBackupName("prod", at); got != "prod-20261201T020405Z.hoist-backup" {
		t.Errorf("DefaultBackupName = %s", got)
	}
}

// TestBackupRestoreEtcd: masters of a real test bed (sshd), laid out by
// the real kubeadm as kubeadm init and a control-plane join leave them
// (PKI, kubeconfigs, the etcd and kube-apiserver manifests), running a
// real two-member etcd with kubeadm's TLS, as their kubelet would from
// the manifest (no kubelet here: the end-to-end test stops and starts a
// real control plane). Backup skips a master that is down and one whose
// etcd is unhealthy, writes a private file whole or not at all; restore
// refuses, changing nothing, a backup that does not fit and a cluster with
// a master down; the snapshot restored on both members (twice, as a
// restore run again does) makes one etcd cluster again, with the data of
// the backup and the old data beside it.
func TestBackupRestoreEtcd(t *testing.T) {
	bin := nodeBinDir(t)
	bed, key := testbed.ForTest(t, 3)
	ctx := context.Background()
	root, out := t.TempDir(), t.TempDir()
	m0, m1, down := bed.Nodes[0], bed.Nodes[1], bed.Nodes[2]
	parse := func(name string, nodes ...testbed.Node) clusterfile.Cluster {
		t.Helper()
		var ips []string
		for _, n := range nodes {
			ips = append(ips, n.IP)
		}
		cf, err := clusterfile.ParseClusterfile("Clusterfile", fmt.Appendf(nil, `apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: %s}
spec:
  image: acme/platform:v1
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
`, name, key, strings.Join(ips, ", ")))
		if err != nil {
			t.Fatal(err)
		}
		return cf.Cluster
	}
	two := parse("bk", m0, m1)
	etcd := etcdOf(two)
	etcd.Timeout = time.Minute
	execs := map[string]ssh.Executor{}
	for _, n := range []testbed.Node{m0, m1} {
		e, err := ssh.Dial(ctx, ssh.Config{Host: n.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: layout.Local{Root: root}.KnownHosts(), AcceptNew: true})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		execs[n.IP] = e
		for _, b := range []struct{ name, dest string }{
			{"kubeadm", etcd.Rootfs + "/bin/kubeadm"}, {"etcdctl", etcd.Rootfs + "/bin/etcdctl"},
			{"etcdutl", etcd.Rootfs + "/bin/etcdutl"}, {"etcd", "/usr/local/bin/etcd"},
		} {
			f, err := os.Open(filepath.Join(bin, b.name))
			if err != nil {
				t.Fatal(err)
			}
			err = e.Run(ctx, fmt.Sprintf("mkdir -p %s && cat > %s && chmod 755 %[2]s", path.Dir(b.dest), b.dest), f, nil)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// kubeadm makes the CAs on the first master; the second gets them as
	// a control-plane join does, then each makes its own certificates,
	// kubeconfig and manifests.
	kubeadmBin := etcd.Rootfs + "/bin/kubeadm"
	for i, n := range []testbed.Node{m0, m1} {
		e := execs[n.IP]
		config := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: %s}
nodeRegistration: {name: master-%d}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
etcd: {local: {imageTag: 3.7.3-0}}
`, n.IP, i)
		if i == 0 {
			if err := e.Run(ctx, "set -e\nmkdir -p /etc/kubernetes\ncat > /etc/kubernetes/kubeadm.yaml\n"+kubeadmBin+" init phase certs ca --config /etc/kubernetes/kubeadm.yaml >&2\n"+
				kubeadmBin+" init phase certs etcd-ca --config /etc/kubernetes/kubeadm.yaml >&2", strings.NewReader(config), nil); err != nil {
				t.Fatal(err)
			}
		} else {
			var cas bytes.Buffer
			if err := execs[m0.IP].Run(ctx, "cd /etc/kubernetes && tar -cf - pki/ca.crt pki/ca.key pki/etcd/ca.crt pki/etcd/ca.key", nil, &cas); err != nil {
				t.Fatal(err)
			}
			if err := e.Run(ctx, "mkdir -p /etc/kubernetes && tar -xf - -C /etc/kubernetes", &cas, nil); err != nil {
				t.Fatal(err)
			}
			if err := ssh.WriteFile(ctx, e, "/etc/kubernetes/kubeadm.yaml", []byte(config)); err != nil {
				t.Fatal(err)
			}
		}
		script := "set -e\n"
		for _, phase := range []string{"certs etcd-server", "certs etcd-peer", "certs etcd-healthcheck-client", "certs apiserver-etcd-client",
			"kubeconfig admin", "etcd local", "control-plane apiserver"} {
			script += kubeadmBin + " init phase " + phase + " --config /etc/kubernetes/kubeadm.yaml >&2\n"
		}
		if err := e.Run(ctx, script, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	digest := "sha256:" + strings.Repeat("5e", 32)
	if err := ssh.WriteFile(ctx, execs[m0.IP], etcd.Rootfs+"/.hoist-digest", []byte(digest+"+registry\n")); err != nil {
		t.Fatal(err)
	}
	// The kubelet's part: etcd run from its manifest, as one cluster of
	// the two members; the restored members later ignore --initial-*.
	cluster := fmt.Sprintf("master-0=https://%s:2380,master-1=https://%s:2380", m0.IP, m1.IP)
	startEtcd := func(n testbed.Node) {
		t.Helper()
		e := execs[n.IP]
		data, err := ssh.Output(ctx, e, "cat "+kubeadm.ManifestsDir+"/etcd.yaml")
		if err != nil {
			t.Fatal(err)
		}
		pod, err := kubeadm.ParseStaticPod(data)
		if err != nil {
			t.Fatal(err)
		}
		pod.Flags["initial-cluster"], pod.Flags["initial-cluster-state"], pod.Flags["unsafe-no-fsync"] = cluster, "new", "true"
		var args []string
		for k, v := range pod.Flags {
			args = append(args, "--"+k+"="+v)
		}
		sort.Strings(args)
		if err := e.Run(ctx, "setsid /usr/local/bin/etcd "+ssh.Command(args...)+" >>/var/log/etcd.log 2>&1 </dev/null & echo $! > /run/etcd.pid", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	stopEtcd := func(n testbed.Node) {
		t.Helper()
		if err := execs[n.IP].Run(ctx, `p=$(cat /run/etcd.pid); kill $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done`, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitHealthy := func() {
		t.Helper()
		for _, n := range []testbed.Node{m0, m1} {
			if err := etcd.WaitHealthy(ctx, execs[n.IP]); err != nil {
				log, _ := ssh.Output(ctx, execs[n.IP], "tail -n 20 /var/log/etcd.log")
				t.Fatalf("%v\n%s", err, log)
			}
		}
	}
	etcdctl := func(n testbed.Node, args ...string) string {
		t.Helper()
		out, err := ssh.Output(ctx, execs[n.IP], etcd.Rootfs+"/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "+
			"--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key "+ssh.Command(args...))
		if err != nil {
			t.Fatalf("etcdctl %v on %s: %v", args, n.IP, err)
		}
		return string(out)
	}
	startEtcd(m0)
	startEtcd(m1)
	waitHealthy()
	etcdctl(m0, "put", "/registry/before", "backed up")
	if err := bed.Crash(down); err != nil {
		t.Fatal(err)
	}

	// Backup: the master that is down first, then the first that answers.
	opts := Options{Root: root, AcceptNewHostKeys: true}
	rec := &events{}
	good := filepath.Join(out, "bk.hoist-backup")
	b := &Backup{Cluster: parse("bk", down, m0, m1), File: good, Options: opts}
	b.Reporter = rec
	m, err := b.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.has(down.IP, "connect", progress.StateFailed) || !rec.has(m0.IP, stepSnapshot, progress.StateDone) || !rec.has(m0.IP, "", progress.StateNodeDone) {
		t.Errorf("events: %+v", rec.all)
	}
	if m.Cluster != "bk" || m.Master != m0.IP || m.NodeName != "master-0" || m.KubernetesVersion != "v1.37.2" || m.ImageDigest != digest ||
		m.Image != "acme/platform:v1" || m.EtcdImage != "registry.k8s.io/etcd:3.7.3-0" || m.Snapshot.Size < 4096 {
		t.Errorf("manifest: %+v", m)
	}
	if fi, err := os.Stat(good); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the backup file: %v %v, want mode 600", fi, err)
	}
	var snapshot bytes.Buffer
	f, err := os.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	contents, err := backupfile.Read(good, f, &snapshot)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pki/ca.crt", "pki/ca.key", "pki/etcd/ca.key", "pki/etcd/server.crt", "pki/apiserver-etcd-client.key", "admin.conf"} {
		if len(contents.Files[name]) == 0 {
			t.Errorf("the backup lacks %s: %v", name, slicesOfKeys(contents.Files))
		}
	}
	if ls, _ := ssh.Output(ctx, execs[m0.IP], "ls -A "+etcd.State); len(ls) > 0 {
		t.Errorf("the snapshot stays on the master: %s", ls)
	}
	// A master whose etcd is down is unhealthy; with no master left, the
	// backup fails, naming each, and leaves no file.
	stopEtcd(m1)
	failed := filepath.Join(out, "failed.hoist-backup")
	_, err = (&Backup{Cluster: parse("bk", down, m1), File: failed, Options: opts}).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "no master could be backed up") || !strings.Contains(err.Error(), down.IP+": connect: ") ||
		!strings.Contains(err.Error(), m1.IP+": "+stepEtcdHealth+": ") {
		t.Errorf("a backup without a healthy master: %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Errorf("after a failed backup, %s holds %v: want the good backup alone", out, entries)
	}
	startEtcd(m1)
	waitHealthy()
	etcdctl(m0, "put", "/registry/after", "lost by the restore")
	etcdctl(m0, "del", "/registry/before")

	// Restore refuses what does not fit, before anything changes.
	rewrite := func(name string, edit func(*backupfile.Manifest, map[string][]byte)) string {
		t.Helper()
		mm := contents.Manifest
		files := map[string][]byte{}
		for k, v := range contents.Files {
			files[k] = v
		}
		edit(&mm, files)
		file := filepath.Join(out, name)
		var buf bytes.Buffer
		if err := backupfile.Write(file, &buf, &mm, bytes.NewReader(snapshot.Bytes()), files); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	damaged := filepath.Join(out, "damaged.hoist-backup")
	data, _ := os.ReadFile(good)
	at := bytes.Index(data, snapshot.Bytes()[:256])
	if at < 0 {
		t.Fatal("the snapshot is not in the backup file as it is")
	}
	data[at+100] ^= 1
	os.WriteFile(damaged, data, 0o600)
	var me *MismatchError
	var be *backupfile.Error
	for _, tc := range []struct {
		name         string
		cluster      clusterfile.Cluster
		from         string
		allowVersion bool
		check        func(error) bool
	}{
		{"a master down", parse("bk", m0, m1, down), good, false, func(err error) bool {
			return strings.Contains(err.Error(), down.IP+":22: unreachable") && strings.Contains(err.Error(), "restore needs every master")
		}},
		{"a damaged file", two, damaged, false, func(err error) bool {
			return errors.As(err, &be) && be.File == damaged && be.Member == backupfile.SnapshotName
		}},
		{"another cluster's name", parse("other", m0, m1), good, false, func(err error) bool {
			return errors.As(err, &me) && me.What == "cluster" && strings.Contains(err.Error(), "a backup of cluster bk, not other")
		}},
		{"another cluster's CA", two, rewrite("ca.hoist-backup", func(_ *backupfile.Manifest, f map[string][]byte) { f["pki/ca.crt"] = []byte("another CA") }), false, func(err error) bool {
			return errors.As(err, &me) && me.What == "cluster" && strings.Contains(err.Error(), "not the one of master "+m0.IP)
		}},
		{"another minor version", two, rewrite("v136.hoist-backup", func(m *backupfile.Manifest, _ map[string][]byte) { m.KubernetesVersion = "v1.36.4" }), false, func(err error) bool {
			return errors.As(err, &me) && me.What == "version" && strings.Contains(err.Error(), "a backup of Kubernetes v1.36.4, but master "+m0.IP+" runs a control plane of Kubernetes v1.37.2")
		}},
		{"another minor version, allowed", two, filepath.Join(out, "v136.hoist-backup"), true, func(err error) bool { return err == nil }},
		{"another patch version", two, rewrite("v139.hoist-backup", func(m *backupfile.Manifest, _ map[string][]byte) { m.KubernetesVersion = "v1.37.9" }), false, func(err error) bool { return err == nil }},
	} {
		rs := &Restore{Cluster: tc.cluster, From: tc.from, AllowOtherVersion: tc.allowVersion, Options: opts}
		_, err := rs.Check(ctx)
		rs.Close()
		if !tc.check(err) {
			t.Errorf("restore check, %s: %v", tc.name, err)
		} else {
			t.Logf("restore check, %s: %v", tc.name, err)
		}
	}
	// An image without etcdutl (made before hoist restore) is refused
	// before anything stops.
	etcdutl := etcd.Rootfs + "/bin/etcdutl"
	if err := execs[m1.IP].Run(ctx, "mv "+etcdutl+" /root/", nil, nil); err != nil {
		t.Fatal(err)
	}
	rs := &Restore{Cluster: two, From: good, Options: opts}
	if _, err := rs.Check(ctx); err == nil || !strings.Contains(err.Error(), m1.IP+":22: exit status 1: no '"+etcdutl+"': the cluster's image has no etcdutl") {
		t.Errorf("restore check, a master without etcdutl: %v", err)
	}
	rs.Close()
	if err := execs[m1.IP].Run(ctx, "mv /root/etcdutl "+etcdutl, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []testbed.Node{m0, m1} {
		if got := etcdctl(n, "get", "/registry/after", "--print-value-only"); got != "lost by the restore\n" {
			t.Errorf("%s after the refusals: %q", n.IP, got)
		}
		if out, _ := ssh.Output(ctx, execs[n.IP], "ls "+kubeadm.ManifestsDir+"; ls -d "+kubeadm.RestoreHeldDir+" 2>&1"); !strings.Contains(string(out), "etcd.yaml") ||
			!strings.Contains(string(out), "No such file") {
			t.Errorf("%s: the refusals moved manifests: %s", n.IP, out)
		}
	}

	// Restore on both members, the kubelet's part played here: stopped,
	// restored (twice: a restore run again after a failure), started.
	rs = &Restore{Cluster: two, From: good, Options: opts}
	defer rs.Close()
	if _, err := rs.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if got := restoreCluster(rs.masters); got != cluster {
		t.Errorf("the restored cluster: %s, want %s", got, cluster)
	}
	stopEtcd(m0)
	stopEtcd(m1)
	for i, stamp := range []string{"20261201T000000Z", "20261201T000100Z"} {
		for _, rm := range rs.masters {
			f, err := os.Open(rs.snapshot)
			if err != nil {
				t.Fatal(err)
			}
			err = etcd.Upload(ctx, rm.exec, f, rs.backup.Manifest.Snapshot.Size)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := etcd.RestoreMember(ctx, rm.exec, rm.master, cluster, fmt.Sprintf("token-%d", i), stamp); err != nil {
				t.Fatal(err)
			}
		}
	}
	startEtcd(m0)
	startEtcd(m1)
	waitHealthy()
	for _, n := range []testbed.Node{m0, m1} {
		if got := etcdctl(n, "get", "/registry/before", "--print-value-only"); got != "backed up\n" {
			t.Errorf("%s: /registry/before = %q after the restore, want the backup's", n.IP, got)
		}
		if got := etcdctl(n, "get", "/registry/after", "--print-value-only"); got != "" {
			t.Errorf("%s: /registry/after = %q after the restore, want none", n.IP, got)
		}
		var get struct{ Header struct{ Revision int64 } }
		if err := json.Unmarshal([]byte(etcdctl(n, "get", "/registry/before", "-w", "json")), &get); err != nil || get.Header.Revision < 1e9 {
			t.Errorf("%s: revision %d after the restore (%v): want it bumped past 1e9, for the watchers", n.IP, get.Header.Revision, err)
		}
		ls, _ := ssh.Output(ctx, execs[n.IP], "ls -A /var/lib/etcd "+etcd.State)
		if want := "/var/lib/etcd:\nmember\nmember.before-restore-20261201T000000Z\nmember.before-restore-20261201T000100Z\n\n" + etcd.State + ":\n"; string(ls) != want {
			t.Errorf("%s: /var/lib/etcd and the state directory hold:\n%s\nwant (the old data aside, the snapshot gone):\n%s", n.IP, ls, want)
		}
	}
	if members := etcdctl(m0, "member", "list"); strings.Count(members, "started") != 2 || !strings.Contains(members, "master-1, https://"+m1.IP+":2380") {
		t.Errorf("members after the restore:\n%s", members)
	}

	// Start puts back the manifests a stopped control plane holds.
	e := execs[m0.IP]
	if err := e.Run(ctx, "mkdir -p "+kubeadm.RestoreHeldDir+" && mv "+kubeadm.ManifestsDir+"/etcd.yaml "+kubeadm.ManifestsDir+"/kube-apiserver.yaml "+kubeadm.RestoreHeldDir, nil, nil); err != nil {
		t.Fatal(err)
	}
	if mm, err := etcd.ReadMaster(ctx, e, m0.IP); err != nil || !mm.Held || mm.Name != "master-0" {
		t.Errorf("a master whose manifests are held: %+v %v", mm, err)
	}
	if _, err := (&Backup{Cluster: parse("bk", m0), File: failed, Options: opts}).Run(ctx); err == nil || !strings.Contains(err.Error(), "run hoist restore again") {
		t.Errorf("a backup of a master a restore left stopped: %v", err)
	}
	if err := etcd.Start(ctx, e); err != nil {
		t.Fatal(err)
	}
	if out, _ := ssh.Output(ctx, e, "ls "+kubeadm.ManifestsDir+"; ls -d "+kubeadm.RestoreHeldDir+" 2>&1"); !strings.Contains(string(out), "etcd.yaml\nkube-apiserver.yaml\n") || !strings.Contains(string(out), "No such file") {
		t.Errorf("after Start: %s", out)
	}
}

func slicesOfKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

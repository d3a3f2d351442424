package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/apply/backupfile"
)

// TestBackupRestoreRefusals: what hoist backup and restore refuse before
// reaching any master (a closed port on loopback stands for a master that
// is down): flags, a backup file that is damaged or of another cluster.
// test/e2e proves both on a real cluster, apply/backup_test.go on real
// etcd members.
func TestBackupRestoreRefusals(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "Clusterfile")
	os.WriteFile(cf, []byte(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: prod}
spec:
  image: acme/platform:v1
  ssh: {user: root, port: 1, password: not-used}
  hosts:
  - ips: [127.0.0.1]
    roles: [master]
`), 0o600)
	snapshot := []byte("an etcd snapshot")
	sum := sha256.Sum256(snapshot)
	writeBackup := func(name, cluster string) string {
		m := backupfile.Manifest{Cluster: cluster, Image: "acme/platform:v1", KubernetesVersion: "v1.37.2", Time: time.Now(), Master: "10.0.0.2",
			Snapshot: backupfile.File{Size: int64(len(snapshot)), SHA256: hex.EncodeToString(sum[:])}}
		var buf bytes.Buffer
		if err := backupfile.Write(name, &buf, &m, bytes.NewReader(snapshot), map[string][]byte{"pki/ca.crt": []byte("ca")}); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name)
		os.WriteFile(file, buf.Bytes(), 0o600)
		return file
	}
	other := writeBackup("other.hoist-backup", "staging")
	damaged := filepath.Join(dir, "damaged.hoist-backup")
	data, _ := os.ReadFile(writeBackup("prod.hoist-backup", "prod"))
	os.WriteFile(damaged, bytes.Replace(data, snapshot, []byte("an etcd snapshoT"), 1), 0o600)
	out := filepath.Join(dir, "out.hoist-backup")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "-f", cf}, "--from names the backup file"},
		{[]string{"restore", "-f", cf, "--from", other, "--format", "yaml"}, `--format "yaml": want text or json`},
		{[]string{"backup", "-f", cf, "--format", "yaml"}, `--format "yaml": want text or json`},
		{[]string{"restore", "-f", cf, "--from", filepath.Join(dir, "none")}, "no such file"},
		{[]string{"restore", "-f", cf, "--from", damaged}, "backup " + damaged + ": member etcd/snapshot.db: sha256"},
		{[]string{"restore", "-f", cf, "--from", other}, "a backup of cluster staging, not prod (--allow-other-cluster restores it all the same)"},
		// Allowed, it goes on to the master, which is down.
		{[]string{"restore", "-f", cf, "--from", other, "--allow-other-cluster", "--force"}, "127.0.0.1:1: unreachable"},
		{[]string{"backup", "-f", cf, "-o", out}, "cluster prod: no master could be backed up:\n  127.0.0.1: connect: 127.0.0.1:1: unreachable"},
	} {
		_, _, err := hoist(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hoist %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed backup left %s: %v", out, err)
	}
}

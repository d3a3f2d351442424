package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/apply"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

func randomSecret(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// assertNowhereUnder fails for each file under root that holds one of the
// secrets, and when root holds no file at all (a walk of nothing proves
// nothing).
func assertNowhereUnder(t *testing.T, root string, secrets ...string) {
	t.Helper()
	files := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("a secret is in %s", p)
			}
		}
		return nil
	})
	if files == 0 {
		t.Errorf("no file under %s", root)
	}
}

// keep keeps a Clusterfile in root's state as apply and run do.
func keep(t *testing.T, root, text string) *clusterfile.Clusterfile {
	t.Helper()
	cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := apply.SaveClusterfile(root, cf); err != nil {
		t.Fatal(err)
	}
	return cf
}

// TestDeleteAndStatusFromKeptClusterfile: status and delete find a
// cluster by name in the state, and delete refuses, before it asks or
// touches anything, to go on without the password a host needs, which is
// not kept.
func TestDeleteAndStatusFromKeptClusterfile(t *testing.T) {
	root := fixture.Root(t)
	password := randomSecret("pw-")
	keep(t, root, fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: kept}
spec:
  image: demo/kept:v1
  ssh: {password: %s}
  hosts:
  - {ips: [10.0.0.2], roles: [master]}
  - {ips: [10.0.0.3], roles: [node], ssh: {privateKey: /keys/worker}}
`, password))
	// A host applied before and since dropped from the Clusterfile: it is
	// reached with the defaults, so it needs the password too.
	j, err := apply.OpenJournal(filepath.Join(root, "clusters", "kept", "journal.json"), "kept")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SetHost("10.0.0.7", apply.HostRecord{Roles: []string{"node"}, User: "root", Port: 22, Steps: []string{"install-hoist"}}); err != nil {
		t.Fatal(err)
	}
	assertNowhereUnder(t, root, password)

	out, stderr, err := hoistAt(t, root, "", "status", "--name", "kept", "--format", "{{range .}}{{.Node}} {{.Status}};{{end}}")
	if want := "10.0.0.2 not applied;10.0.0.3 not applied;10.0.0.7 to remove;\n"; err != nil || out != want {
		t.Errorf("status --name kept: %q %v %s, want %q", out, err, stderr, want)
	}
	if all, _, err := hoistAt(t, root, "", "status"); err != nil || strings.Count(all, "kept ") != 3 || !strings.Contains(all, "to remove") {
		t.Errorf("status:\n%s%v", all, err)
	}

	file := filepath.Join(root, "clusters", "kept", "Clusterfile")
	need := func(hosts string) string {
		return "cluster kept: delete needs the SSH password (for " + hosts + "), which hoist does not keep in " + file + ": give it on standard input (--passwd-stdin), or the whole Clusterfile with -f"
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"--force"}, need("10.0.0.2, 10.0.0.7")},
		{"", []string{"--force", "--nodes", "10.0.0.7"}, need("10.0.0.7")},
		// A passphrase does not stand for a password.
		{password + "\n", []string{"--force", "--pk-passwd-stdin"}, need("10.0.0.2, 10.0.0.7")},
		// What needs no password goes on to the question, refused here.
		{"", []string{"--nodes", "10.0.0.3"}, "refusing to remove without confirmation: stdin is not a terminal (use --force)"},
		{password + "\n", []string{"--passwd-stdin"}, "refusing to remove without confirmation: stdin is not a terminal (use --force)"},
		{"", []string{"--passwd-stdin"}, "--passwd-stdin: no password on standard input"},
	} {
		args := append([]string{"delete", "--name", "kept"}, tc.args...)
		_, _, err := hoistAt(t, root, tc.stdin, args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v\nwant %s", args, err, tc.want)
		}
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("a refused delete removed the kept Clusterfile: %v", err)
	}

	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: kept}\nspec:\n  image: demo/x:v1\n  hosts: [{ips: [10.0.0.2], roles: [master]}]\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "--name", "../x"}, "cluster name: \"../x\" is not a DNS-1123 label"},
		{[]string{"delete", "--name", "nope"}, "cluster nope: no Clusterfile kept in " + filepath.Join(root, "clusters", "nope", "Clusterfile") + " (not applied from here, or by a hoist that kept none): "},
		{[]string{"delete", "--name", "kept", "-f", cf}, "--name names one cluster applied from here: give it, -f or --all"},
		{[]string{"delete", "--name", "kept", "--all"}, "--name names one cluster applied from here: give it, -f or --all"},
		{[]string{"delete", "--all", "--nodes", "10.0.0.2"}, "--all deletes whole clusters: --nodes goes without it"},
		{[]string{"delete", "-f", cf, "--passwd-stdin"}, "a Clusterfile given with -f carries its own credentials"},
		{[]string{"delete", "--name", "kept", "--force", "-e", "NO_VALUE"}, `-e "NO_VALUE": want KEY=VALUE`},
		// Without -f, --name or --all, ./Clusterfile, as before; its
		// absence says where else a cluster can come from.
		{[]string{"delete"}, "open Clusterfile: no such file or directory (name one with -f, or a cluster applied from here with --name, or use --all)"},
		{[]string{"status", "--name", "nope"}, "cluster nope: not applied from here (no state in " + filepath.Join(root, "clusters", "nope") + ")"},
		{[]string{"status", "--name", "kept", "-f", cf}, "-f and --name both name a cluster: give one"},
	} {
		_, _, err := hoistAt(t, root, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v\nwant %s", tc.args, err, tc.want)
		}
	}
}

// TestDeleteAllAsksOnce: --all asks one question that names every
// cluster and its nodes; an answer other than yes removes nothing.
func TestDeleteAllAsksOnce(t *testing.T) {
	root := fixture.Root(t)
	if _, stderr, err := hoistAt(t, root, "", "delete", "--all"); err != nil || stderr != "nothing to delete: no cluster was applied from here ("+filepath.Join(root, "clusters")+")\n" {
		t.Errorf("delete --all of nothing: %v %q", err, stderr)
	}
	for _, c := range []struct{ name, hosts string }{{"alpha", "[{ips: [10.0.0.2], roles: [master]}, {ips: [10.0.0.3], roles: [node]}]"}, {"beta", "[{ips: [10.0.0.9], roles: [master]}]"}} {
		keep(t, root, "apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: "+c.name+"}\nspec:\n  image: demo/x:v1\n  hosts: "+c.hosts+"\n")
	}
	if _, _, err := hoistAt(t, root, "", "delete", "--all"); err == nil || !strings.Contains(err.Error(), "not a terminal (use --force)") {
		t.Errorf("delete --all without a terminal: %v", err)
	}
	_, stderr, err := hoistOnTerminal(t, root, "n\n", "delete", "-a")
	if err == nil || err.Error() != "nothing removed: not confirmed" ||
		!strings.Contains(stderr, "Delete 2 clusters: cluster alpha from 2 node(s) (10.0.0.2, 10.0.0.3); cluster beta from 1 node(s) (10.0.0.9)? [y/N]") {
		t.Errorf("delete -a answered no: %v\n%s", err, stderr)
	}
	for _, name := range []string{"alpha", "beta"} {
		if _, err := os.Stat(filepath.Join(root, "clusters", name, "Clusterfile")); err != nil {
			t.Errorf("a refused delete -a removed %s's state: %v", name, err)
		}
	}
	// sealer's "delete -a -f Clusterfile": the whole cluster of the file.
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: gamma}\nspec:\n  image: demo/x:v1\n  hosts: [{ips: [10.0.0.5], roles: [master]}]\n"), 0o644)
	if _, stderr, err := hoistOnTerminal(t, root, "n\n", "delete", "-a", "-f", cf); err == nil || !strings.Contains(stderr, "Delete cluster gamma from 1 node(s) (10.0.0.5)? [y/N]") {
		t.Errorf("delete -a -f answered no: %v\n%s", err, stderr)
	}
}

// encryptedKey writes a copy of the private key in file, encrypted with
// passphrase.
func encryptedKey(t *testing.T, file, passphrase string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := key.(*ed25519.PrivateKey); ok {
		key = *k
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "id_encrypted")
	if err := os.WriteFile(out, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunKeepsClusterfile: run and apply keep their Clusterfile without
// its secrets (a password on the command line, a key's passphrase, an env
// value); status and delete, partial and --all, then work from it alone,
// with the passphrase given again.
func TestRunKeepsClusterfile(t *testing.T) {
	needRoot(t)
	root := fixture.Root(t)
	t.Setenv("HOIST_NODE_BINARY", fixture.HoistBinary(t))
	dir := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY etc etc\n", "etc/motd": "hi\n"})
	if out, stderr, err := hoistAt(t, root, "", "build", "-q", "-t", "demo/kept:v1", dir); err != nil {
		t.Fatalf("build: %v\n%s%s", err, out, stderr)
	}
	bed, key := testbed.ForTest(t, 2)
	m, w := bed.Nodes[0], bed.Nodes[1]
	password, passphrase, envSecret := randomSecret("pw-"), randomSecret("pp-"), randomSecret("env-")
	encrypted := encryptedKey(t, key, passphrase)
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, stderr, err := hoistAt(t, root, stdin, args...)
		if err != nil {
			t.Fatalf("hoist %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}

	// The key is what reaches the nodes: the password beside it is never
	// used, and kept nowhere either.
	run(passphrase+"\n", "run", "demo/kept:v1", "-m", m.IP, "-n", w.IP, "--pk", encrypted, "--pk-passwd-stdin", "-p", password, "-e", "TOKEN="+envSecret, "--accept-new-host-keys")
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: other}
spec:
  image: demo/kept:v1
  ssh: {privateKey: %s}
  env: {TOKEN: %s}
  hosts:
  - {ips: [%s], roles: [master]}
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: clean}
spec: {type: SHELL, phase: pre-clean-host, data: 'echo "$TOKEN" > /root/other-clean.log'}
`, key, envSecret, m.IP)), 0o644)
	run("", "apply", "--Clusterfile", cf)

	for _, name := range []string{"default", "other"} {
		data, err := os.ReadFile(filepath.Join(root, "clusters", name, "Clusterfile"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := clusterfile.ParseClusterfile(name, data); err != nil {
			t.Errorf("the kept Clusterfile of %s does not parse: %v\n%s", name, err, data)
		}
	}
	assertNowhereUnder(t, root, password, passphrase, envSecret)

	var rows []apply.NodeStatus
	if err := json.Unmarshal([]byte(run("", "status", "--format", "json")), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("status: %v %+v", err, rows)
	}
	for _, r := range rows {
		if r.Status != "ready" {
			t.Errorf("status: %+v", r)
		}
	}
	if out := run("", "status", "--name", "default"); strings.Count(out, " ready ") != 2 || strings.Contains(out, "other") {
		t.Errorf("status --name default:\n%s", out)
	}

	// The passphrase is not kept: without it, delete refuses before it
	// touches a node.
	_, _, err := hoistAt(t, root, "", "delete", "--name", "default", "--force")
	if err == nil || !strings.Contains(err.Error(), "cluster default: delete needs the private key's passphrase (for "+m.IP+", "+w.IP+")") || !strings.Contains(err.Error(), "(--pk-passwd-stdin)") {
		t.Errorf("delete without the passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.Upper, "var/lib/hoist/default/rootfs/etc/motd")); err != nil {
		t.Fatalf("a refused delete touched %s: %v", w.IP, err)
	}

	// A worker goes: it leaves the kept Clusterfile too.
	run(passphrase+"\n", "delete", "--name", "default", "--nodes", w.IP, "--force", "--pk-passwd-stdin")
	if _, err := os.Stat(filepath.Join(w.Upper, "var/lib/hoist/default")); !os.IsNotExist(err) {
		t.Errorf("%s not cleaned: %v", w.IP, err)
	}
	kept, err := apply.KeptClusterfile(root, "default")
	if err != nil || len(kept.Cluster.Nodes) != 1 || kept.Cluster.Nodes[0].IP.String() != m.IP {
		t.Errorf("the kept Clusterfile after %s left: %v %+v", w.IP, err, kept)
	}

	// Every cluster, the env value that the kept Clusterfile lacks given
	// back to the clean hook.
	if _, _, err := hoistAt(t, root, passphrase+"\n", "delete", "--all", "--pk-passwd-stdin"); err == nil || !strings.Contains(err.Error(), "not a terminal (use --force)") {
		t.Errorf("delete --all without a terminal: %v", err)
	}
	run(passphrase+"\n", "delete", "--all", "--force", "--pk-passwd-stdin", "-e", "TOKEN=given")
	for _, name := range []string{"default", "other"} {
		if _, err := os.Stat(filepath.Join(m.Upper, "var/lib/hoist", name)); !os.IsNotExist(err) {
			t.Errorf("%s of %s not cleaned: %v", m.IP, name, err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(m.Upper, "root/other-clean.log")); string(data) != "given\n" {
		t.Errorf("the clean hook saw TOKEN=%q, want the value of -e", data)
	}
	if names, err := apply.Clusters(root); err != nil || len(names) != 0 {
		t.Errorf("clusters left after delete --all: %v %v", names, err)
	}
}

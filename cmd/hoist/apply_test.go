package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	sshx "github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

// hoistStream runs the command line in process, its output going to out
// as it is written.
func hoistStream(root string, out io.Writer, args ...string) (string, error) {
	cmd := newRootCommand()
	var stderr bytes.Buffer
	cmd.SetOut(out)
	cmd.SetErr(&stderr)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(append([]string{"--root", root}, args...))
	err := cmd.Execute()
	return stderr.String(), err
}

// eventLog collects the JSON lines of an apply, and calls on for each.
type eventLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	events []progress.Event
	on     func(progress.Event)
}

func (l *eventLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadBytes('\n')
		if err != nil {
			l.buf.Write(line) // an incomplete line waits for its end
			return len(p), nil
		}
		var e progress.Event
		if json.Unmarshal(line, &e) == nil {
			l.events = append(l.events, e)
			if l.on != nil {
				l.on(e)
			}
		}
	}
}

// started lists node/step of the steps that ran (not skipped).
func (l *eventLog) started() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.State == progress.StateStart {
			out = append(out, e.Node+"/"+e.Step)
		}
	}
	return out
}

const imagePlugins = `apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: 10-all}
spec:
  type: SHELL
  phase: pre-init-host
  data: echo "pre-init-host 10-all $(cat etc/hello.conf)" >> /root/hooks.log
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: 05-masters}
spec: {type: SHELL, phase: post-init-host, scope: [master], data: echo post-init-host 05-masters >> /root/hooks.log}
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: 30-all}
spec: {type: SHELL, phase: post-init-host, data: echo post-init-host 30-all >> /root/hooks.log}
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: 40-clean}
spec: {type: SHELL, phase: pre-clean-host, data: echo pre-clean-host $HOIST_NODE >> /root/clean.log}
`

func clusterfileYAML(key string, master string, workers ...string) string {
	return fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: demo}
spec:
  image: demo/cluster:v1
  ssh: {user: root, privateKey: %s}
  env: {GREETING: hi}
  hosts:
  - ips: [%s]
    roles: [master]
  - ips: [%s]
    roles: [node]
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: 20-workers}
spec:
  type: SHELL
  phase: post-init-host
  scope: [node]
  data: echo "post-init-host 20-workers $HOIST_NODE $GREETING" >> /root/hooks.log
`, key, master, strings.Join(workers, ", "))
}

type journalFile struct {
	Nodes map[string]map[string]struct {
		Key  string    `json:"key"`
		Done time.Time `json:"done"`
	} `json:"nodes"`
}

func readJournal(t *testing.T, root string) journalFile {
	t.Helper()
	var j journalFile
	data, err := os.ReadFile(filepath.Join(root, "clusters", "demo", "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestApplyEndToEnd builds a cluster image with files, plugins and two
// bundled images, and applies it to 1 master and 2 nodes of a real test
// bed, through a node that dies during distribution, a resume, a no-op
// apply, a scale-down and a delete with a node down.
func TestApplyEndToEnd(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
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

	// The image: files, plugins, two bundled images, and 48 MB that take
	// long enough to send for a node to die meanwhile.
	fixture.StandIns(t, root, "docker.io/library/busybox:1.36", "quay.io/acme/app:v2")
	dir := fixture.Context(t, map[string]string{
		"Kubefile":           "FROM scratch\nCOPY . .\nIMAGE docker.io/library/busybox:1.36 quay.io/acme/app:v2\n",
		"etc/hello.conf":     "hello\n",
		"plugins/hooks.yaml": imagePlugins,
	})
	blob := make([]byte, 48<<20)
	rand.Read(blob)
	os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644)
	run("build", "-q", "-t", "demo/cluster:v1", dir)
	var bundled []struct{ Ref, Digest string }
	if err := json.Unmarshal([]byte(run("inspect", "--images", "--format", "json", "demo/cluster:v1")), &bundled); err != nil || len(bundled) != 2 {
		t.Fatalf("bundled images: %v %v", bundled, err)
	}

	bed, key := testbed.ForTest(t, 3)
	m, w1, w2 := bed.Nodes[0], bed.Nodes[1], bed.Nodes[2]
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte(clusterfileYAML(key, m.IP, w1.IP, w2.IP)), 0o644)

	// Without --accept-new-host-keys, unknown hosts are refused.
	if _, stderr, err := hoistAt(t, root, "", "apply", "-f", cf); err == nil || !strings.Contains(err.Error(), "3 of 3 nodes failed") {
		t.Fatalf("apply to unknown hosts: %v %s", err, stderr)
	}
	if status := run("status", "-f", cf); !strings.Contains(status, "host key unknown") {
		t.Errorf("status does not show the refusal:\n%s", status)
	}

	// The plan, before anything is done.
	var plan struct {
		Nodes []struct {
			Node  string
			Steps []struct {
				Name string
				Done bool
			}
		}
	}
	if err := json.Unmarshal([]byte(run("apply", "-f", cf, "--dry-run", "--format", "json")), &plan); err != nil || len(plan.Nodes) != 3 {
		t.Fatalf("dry run: %v %+v", err, plan)
	}
	var names []string
	for _, s := range plan.Nodes[0].Steps {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "install-hoist,rootfs,hook:pre-init-host,registry,mirrors,hook:post-init-host" {
		t.Errorf("master plan: %s", got)
	}

	// First apply: w2 dies while its rootfs streams.
	var crash sync.Once
	log1 := &eventLog{}
	log1.on = func(e progress.Event) {
		if e.Node == w2.IP && e.Step == "rootfs" && e.State == progress.StateProgress {
			crash.Do(func() { bed.Crash(w2) })
		}
	}
	stderr, err := hoistStream(root, log1, "apply", "-f", cf, "--format", "json", "--accept-new-host-keys")
	if err == nil || !strings.Contains(err.Error(), "1 of 3 nodes failed: "+w2.IP) {
		t.Fatalf("apply with a node dying: %v\n%s", err, stderr)
	}
	j1 := readJournal(t, root)
	if _, ok := j1.Nodes[w2.IP]["install-hoist"]; !ok {
		t.Errorf("w2's install-hoist is not recorded: %v", j1.Nodes[w2.IP])
	}
	if _, ok := j1.Nodes[w2.IP]["rootfs"]; ok {
		t.Errorf("w2's rootfs is recorded though it died during it")
	}
	if len(j1.Nodes[m.IP]) != 6 || len(j1.Nodes[w1.IP]) != 5 {
		t.Errorf("the others did not finish: %v", j1.Nodes)
	}

	// w2 comes back: apply again does only what is missing.
	if err := bed.Restart(ctx, w2); err != nil {
		t.Fatal(err)
	}
	log2 := &eventLog{}
	if stderr, err := hoistStream(root, log2, "apply", "-f", cf, "--format", "json"); err != nil {
		t.Fatalf("apply after restart: %v\n%s", err, stderr)
	}
	want := []string{w2.IP + "/rootfs", w2.IP + "/hook:pre-init-host", w2.IP + "/mirrors", w2.IP + "/hook:post-init-host"}
	if got := log2.started(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("resume ran %v, want %v", got, want)
	}
	j2 := readJournal(t, root)
	for node, steps := range j1.Nodes {
		for step, s := range steps {
			if !j2.Nodes[node][step].Done.Equal(s.Done) {
				t.Errorf("%s %s was done again", node, step)
			}
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(w2.Upper, "var/lib/hoist/demo/rootfs.new-*")); len(leftovers) != 0 {
		t.Errorf("half-unpacked trees left: %v", leftovers)
	}

	// A third apply does nothing.
	log3 := &eventLog{}
	if stderr, err := hoistStream(root, log3, "apply", "-f", cf, "--format", "json"); err != nil || len(log3.started()) != 0 {
		t.Errorf("a second apply of the same Clusterfile ran %v (%v %s)", log3.started(), err, stderr)
	}
	// The journal has a copy on the first master.
	var onMaster journalFile
	if data, err := os.ReadFile(filepath.Join(m.Upper, "var/lib/hoist/demo/state/journal.json")); err != nil || json.Unmarshal(data, &onMaster) != nil || len(onMaster.Nodes) != 3 {
		t.Errorf("journal on the master: %v %v", err, onMaster)
	}
	status := run("status", "-f", cf)
	if strings.Count(status, " ready ") != 3 {
		t.Errorf("status:\n%s", status)
	}

	// Files: the rootfs everywhere, registry/ on the master only.
	for _, n := range bed.Nodes {
		rootfs := filepath.Join(n.Upper, "var/lib/hoist/demo/rootfs")
		if data, err := os.ReadFile(filepath.Join(rootfs, "etc/hello.conf")); string(data) != "hello\n" {
			t.Errorf("%s: etc/hello.conf: %q %v", n.IP, data, err)
		}
		_, err := os.Stat(filepath.Join(rootfs, "registry/docker/registry/v2/repositories/docker.io"))
		if (n.IP == m.IP) != (err == nil) {
			t.Errorf("%s: registry/: %v", n.IP, err)
		}
	}
	// Hooks: by phase, then name, in scope.
	hooks := map[string]string{
		m.IP:  "pre-init-host 10-all hello\npost-init-host 05-masters\npost-init-host 30-all\n",
		w1.IP: "pre-init-host 10-all hello\npost-init-host 20-workers " + w1.IP + " hi\npost-init-host 30-all\n",
	}
	for _, n := range bed.Nodes[:2] {
		if data, _ := os.ReadFile(filepath.Join(n.Upper, "root/hooks.log")); string(data) != hooks[n.IP] {
			t.Errorf("%s: hooks ran:\n%s\nwant:\n%s", n.IP, data, hooks[n.IP])
		}
	}

	// The registry listens on the master's cluster address only.
	if out, err := exec.Command("ip", "netns", "exec", m.NetNS, "ss", "-Hltn", "sport = :5000").CombinedOutput(); err != nil ||
		strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || len(strings.Fields(string(out))) < 4 || strings.Fields(string(out))[3] != m.IP+":5000" {
		t.Errorf("the registry's listening sockets on %s: %v %q, want %s:5000 only", m.IP, err, out, m.IP)
	}

	// Pull every bundled image from w1 as containerd would: the hosts.toml
	// it holds for the image's registry, /etc/hosts for the domain, and the
	// cluster CA.
	for _, img := range bundled {
		ref, err := name.ParseReference(img.Ref)
		if err != nil {
			t.Fatal(err)
		}
		host := ref.Context().RegistryStr()
		if host == name.DefaultRegistry {
			host = "docker.io"
		}
		for _, byDigest := range []bool{false, true} {
			got := pullThroughMirror(t, w1.Upper, host, ref.Context().RepositoryStr(), ref.Identifier(), img.Digest, byDigest)
			if got != img.Digest {
				t.Errorf("%s through the mirror (by digest %v): %s, want %s", img.Ref, byDigest, got, img.Digest)
			}
		}
	}

	// The registry node restarts (no systemd: its registry is gone): apply
	// again starts the registry, and only that; pulls work again.
	bed.Crash(m)
	if err := bed.Restart(ctx, m); err != nil {
		t.Fatal(err)
	}
	restarted := &eventLog{}
	if stderr, err := hoistStream(root, restarted, "apply", "-f", cf, "--format", "json"); err != nil {
		t.Fatalf("apply after the registry node restarted: %v\n%s", err, stderr)
	}
	if got := strings.Join(restarted.started(), " "); got != m.IP+"/registry" {
		t.Errorf("apply after the registry node restarted ran %q, want its registry step only", got)
	}
	{
		img := bundled[0]
		ref, _ := name.ParseReference(img.Ref)
		host := ref.Context().RegistryStr()
		if host == name.DefaultRegistry {
			host = "docker.io"
		}
		if got := pullThroughMirror(t, w1.Upper, host, ref.Context().RepositoryStr(), ref.Identifier(), img.Digest, true); got != img.Digest {
			t.Errorf("%s after the registry node restarted: %s, want %s", img.Ref, got, img.Digest)
		}
	}

	// Scale down: w1 leaves the Clusterfile. Without --prune it is left as
	// it is, and apply says so.
	os.WriteFile(cf, []byte(clusterfileYAML(key, m.IP, w2.IP)), 0o644)
	out, stderr, err := hoistAt(t, root, "", "apply", "-f", cf)
	if err != nil {
		t.Fatalf("apply without w1: %v\n%s", err, stderr)
	}
	if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(w1.IP)+` +left as it is: no longer in the Clusterfile$`).MatchString(out) || !strings.Contains(stderr, w1.IP+" (hoist apply --prune removes them)") {
		t.Errorf("apply without w1 does not say it left w1 alone:\n%s%s", out, stderr)
	}
	w1Dir := filepath.Join(w1.Upper, "var/lib/hoist/demo/rootfs")
	if _, err := os.Stat(w1Dir); err != nil {
		t.Fatalf("apply without --prune removed w1: %v", err)
	}
	if status := run("status", "-f", cf); !strings.Contains(status, w1.IP) || !strings.Contains(status, "to remove") {
		t.Errorf("status does not show w1 to remove:\n%s", status)
	}
	// The dry run of --prune shows the removal; --prune without a terminal
	// needs --force, and is refused before anything changes.
	if plan := run("apply", "-f", cf, "--dry-run", "--prune"); !strings.Contains(plan, w1.IP+" (no longer listed)\n  clean            to do\n") {
		t.Errorf("dry run with --prune:\n%s", plan)
	}
	if plan := run("apply", "-f", cf, "--dry-run"); !strings.Contains(plan, w1.IP+" (no longer listed)\n  clean            left as it is: apply --prune removes it\n") {
		t.Errorf("dry run without --prune:\n%s", plan)
	}
	if _, _, err := hoistAt(t, root, "", "apply", "-f", cf, "--force"); err == nil || !strings.Contains(err.Error(), "--force goes with --prune") {
		t.Errorf("apply --force without --prune: %v", err)
	}
	if _, _, err := hoistAt(t, root, "", "apply", "-f", cf, "--max-unavailable", "0"); err == nil || !strings.Contains(err.Error(), "--max-unavailable 0: want at least 1") {
		t.Errorf("apply --max-unavailable 0: %v", err)
	}
	if _, _, err := hoistAt(t, root, "", "apply", "-f", cf, "--prune"); err == nil || !strings.Contains(err.Error(), "not a terminal (use --prune --force)") {
		t.Errorf("apply --prune without a terminal: %v", err)
	}
	if _, err := os.Stat(w1Dir); err != nil {
		t.Fatalf("a refused --prune removed w1: %v", err)
	}
	// On a terminal, apply --prune asks: no keeps w1, yes removes it.
	if _, stderr, err := hoistOnTerminal(t, root, "n\n", "apply", "-f", cf, "--prune"); err == nil || !strings.Contains(err.Error(), "nothing removed: not confirmed") ||
		!strings.Contains(stderr, "Remove 1 host(s) no longer in the Clusterfile from cluster demo (drained and cleaned): "+w1.IP+"? [y/N]") {
		t.Errorf("apply --prune answered no: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(w1Dir); err != nil {
		t.Fatalf("apply --prune answered no removed w1: %v", err)
	}
	if _, stderr, err := hoistOnTerminal(t, root, "y\n", "apply", "-f", cf, "--prune"); err != nil {
		t.Fatalf("apply --prune answered yes: %v\n%s", err, stderr)
	}
	assertCleaned(t, w1)
	if data, _ := os.ReadFile(filepath.Join(w1.Upper, "root/clean.log")); string(data) != "pre-clean-host "+w1.IP+"\n" {
		t.Errorf("w1 clean hook: %q", data)
	}
	if j := readJournal(t, root); j.Nodes[w1.IP] != nil {
		t.Errorf("w1 still in the journal")
	}

	// Scale up: w1 comes back; only it is worked on.
	os.WriteFile(cf, []byte(clusterfileYAML(key, m.IP, w1.IP, w2.IP)), 0o644)
	log4 := &eventLog{}
	if stderr, err := hoistStream(root, log4, "apply", "-f", cf, "--format", "json"); err != nil {
		t.Fatalf("apply with w1 back: %v\n%s", err, stderr)
	}
	for _, step := range log4.started() {
		if !strings.HasPrefix(step, w1.IP+"/") {
			t.Errorf("adding w1 ran %s", step)
		}
	}
	if len(log4.started()) != 5 {
		t.Errorf("adding w1 ran %v, want its 5 steps", log4.started())
	}

	// Delete: refused without a terminal, then forced with w2 down.
	if _, _, err := hoistAt(t, root, "", "delete", "-f", cf); err == nil || !strings.Contains(err.Error(), "not a terminal (use --force)") {
		t.Errorf("delete without a terminal: %v", err)
	}
	bed.Crash(w2)
	if out, stderr, err := hoistAt(t, root, "", "delete", "-f", cf, "--force"); err != nil {
		t.Fatalf("delete --force: %v\n%s%s", err, out, stderr)
	}
	assertCleaned(t, m)
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(m.IP, "5000"), time.Second); err == nil {
		c.Close()
		t.Errorf("the registry still serves after delete")
	}
	assertCleaned(t, w1)
	if _, err := os.Stat(filepath.Join(root, "clusters", "demo")); !os.IsNotExist(err) {
		t.Errorf("cluster state kept after delete: %v", err)
	}
	if status := run("status"); strings.Contains(status, "demo") {
		t.Errorf("status after delete:\n%s", status)
	}
}

// hoistOnTerminal runs the command line in process with a terminal as its
// standard input, on which answer is typed.
func hoistOnTerminal(t *testing.T, root, answer string, args ...string) (string, string, error) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if _, err := ptmx.WriteString(answer); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetIn(tty)
	cmd.SetArgs(append([]string{"--root", root}, args...))
	err = cmd.Execute()
	return stdout.String(), stderr.String(), err
}

func assertCleaned(t *testing.T, n testbed.Node) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(n.Upper, "var/lib/hoist/demo")); !os.IsNotExist(err) {
		t.Errorf("%s: data directory kept: %v", n.IP, err)
	}
	if hosts, _ := os.ReadFile(filepath.Join(n.Upper, "etc/hosts")); strings.Contains(string(hosts), "hoist:demo") {
		t.Errorf("%s: hosts entry kept:\n%s", n.IP, hosts)
	}
	if entries, _ := os.ReadDir(filepath.Join(n.Upper, "etc/containerd/certs.d")); len(entries) != 0 {
		t.Errorf("%s: mirror files kept: %v", n.IP, entries)
	}
}

// pullThroughMirror fetches an image's manifest the way containerd does on
// the node whose filesystem is at upper, and returns its digest.
func pullThroughMirror(t *testing.T, upper, host, repo, tag, digest string, byDigest bool) string {
	t.Helper()
	var conf struct {
		Server string `toml:"server"`
		Host   map[string]struct {
			Capabilities []string `toml:"capabilities"`
			CA           string   `toml:"ca"`
		} `toml:"host"`
	}
	file := filepath.Join(upper, "etc/containerd/certs.d", host, "hosts.toml")
	if _, err := toml.DecodeFile(file, &conf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(conf.Host) != 1 {
		t.Fatalf("%s: want one mirror, have %v", file, conf.Host)
	}
	var mirror, caFile string
	for h, c := range conf.Host {
		mirror, caFile = strings.TrimPrefix(h, "https://"), c.CA
	}
	ca, err := os.ReadFile(filepath.Join(upper, caFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	domain, port, _ := net.SplitHostPort(mirror)
	hosts, _ := os.ReadFile(filepath.Join(upper, "etc/hosts"))
	ip := ""
	for _, l := range strings.Split(string(hosts), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == domain {
			ip = f[0]
		}
	}
	if ip == "" {
		t.Fatalf("no /etc/hosts entry for %s:\n%s", domain, hosts)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == mirror {
				addr = net.JoinHostPort(ip, port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	ident := ":" + tag
	if byDigest {
		ident = "@" + digest
	}
	ref, err := name.ParseReference(mirror + "/" + repo + ident)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithTransport(nsTransport{host: host, next: tr}))
	if err != nil {
		t.Fatalf("pull %s through %s: %v", repo+ident, mirror, err)
	}
	return desc.Digest.String()
}

// nsTransport adds ?ns=<host> to each request, as containerd does when it
// asks a mirror.
type nsTransport struct {
	host string
	next http.RoundTripper
}

func (n nsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Set("ns", n.host)
	r.URL.RawQuery = q.Encode()
	return n.next.RoundTrip(r)
}

// TestApplyAsSudoUser: a user other than root works through sudo -n; one
// without sudo rights fails with sudo's own words, not a hang.
func TestApplyAsSudoUser(t *testing.T) {
	ctx := context.Background()
	bed, key := testbed.ForTest(t, 1)
	node := bed.Nodes[0]
	root := fixture.Root(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	admin, err := sshx.Dial(ctx, sshx.Config{Host: node.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: known, AcceptNew: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, user := range []string{"deploy", "nosudo"} {
		script := fmt.Sprintf("useradd -m -p '*' -s /bin/sh %[1]s && mkdir -p /home/%[1]s/.ssh && cp /root/.ssh/authorized_keys /home/%[1]s/.ssh/ && chown -R %[1]s /home/%[1]s/.ssh", user)
		if err := admin.Run(ctx, script, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Run(ctx, "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy", nil, nil); err != nil {
		t.Fatal(err)
	}

	dir := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY etc etc\n", "etc/motd": "hi\n"})
	if out, stderr, err := hoistAt(t, root, "", "build", "-q", "-t", "demo/sudo:v1", dir); err != nil {
		t.Fatalf("build: %v\n%s%s", err, out, stderr)
	}
	t.Setenv("HOIST_NODE_BINARY", fixture.HoistBinary(t))
	apply := func(user string) error {
		cf := filepath.Join(t.TempDir(), "Clusterfile")
		os.WriteFile(cf, []byte(fmt.Sprintf("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: s-%s}\nspec:\n  image: demo/sudo:v1\n  ssh: {user: %s, privateKey: %s}\n  hosts:\n  - {ips: [%s], roles: [master]}\n", user, user, key, node.IP)), 0o644)
		_, _, err := hoistAt(t, root, "", "apply", "-f", cf, "--accept-new-host-keys")
		return err
	}
	if err := apply("deploy"); err != nil {
		status, _, _ := hoistAt(t, root, "", "status", "--format", "json")
		t.Fatalf("apply as deploy: %v\n%s\n%s", err, status, bed.Log(node))
	}
	motd := filepath.Join(node.Upper, "var/lib/hoist/s-deploy/rootfs/etc/motd")
	if fi, err := os.Stat(motd); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("%s: %v (want it written by root through sudo)", motd, err)
	}
	if status, _, _ := hoistAt(t, root, "", "status"); !strings.Contains(status, "s-deploy") || !strings.Contains(status, "ready") {
		t.Errorf("status:\n%s", status)
	}
	err = apply("nosudo")
	if err == nil {
		t.Fatal("apply as a user without sudo rights succeeded")
	}
	if status, _, _ := hoistAt(t, root, "", "status"); !strings.Contains(status, "sudo") {
		t.Errorf("the failure does not say sudo:\n%s", status)
	}
}

// TestRunPasswordStdin: the SSH password of hoist run can come from
// standard input instead of the command line, where other users see it.
func TestRunPasswordStdin(t *testing.T) {
	root := fixture.Root(t)
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"s3cret\n", []string{"-p", "x", "--passwd-stdin"}, "--passwd and --passwd-stdin cannot be given together"},
		{"", []string{"--passwd-stdin"}, "--passwd-stdin: no password on standard input"},
		{"\n", []string{"--passwd-stdin"}, "--passwd-stdin: no password on standard input"},
		// Read, the password lets the command go on to the image.
		{"s3cret\n", []string{"--passwd-stdin"}, "acme/absent:v1"},
		// The key's passphrase, the same way.
		{"s3cret\n", []string{"--pk-passwd", "x", "--pk-passwd-stdin"}, "--pk-passwd and --pk-passwd-stdin cannot be given together"},
		{"s3cret\n", []string{"--passwd-stdin", "--pk-passwd-stdin"}, "cannot both read standard input"},
		{"", []string{"--pk", "/k", "--pk-passwd-stdin"}, "--pk-passwd-stdin: no password on standard input"},
		{"s3cret\n", []string{"--pk-passwd-stdin"}, "ssh flags: passphrase given without privateKey"},
		{"s3cret\n", []string{"--pk", "/k", "--pk-passwd-stdin"}, "acme/absent:v1"},
	} {
		args := append([]string{"run", "acme/absent:v1", "--masters", "10.0.0.2"}, c.args...)
		_, _, err := hoistAt(t, root, c.stdin, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q with %q on stdin: %v, want %q", args, c.stdin, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	for in, want := range map[string]string{"s3cret": "s3cret", "s3cret\r\nnext\n": "s3cret", " two words \n": " two words "} {
		if got, err := readPassword(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("readPassword(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestDeleteAsksOnATerminal: delete asks on a terminal, and an answer
// other than yes removes nothing.
func TestDeleteAsksOnATerminal(t *testing.T) {
	root := fixture.Root(t)
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: asked}\nspec:\n  image: demo/x:v1\n  hosts: [{ips: [10.0.0.2], roles: [master]}]\n"), 0o644)
	for _, answer := range []string{"n\n", "\n", "maybe\n"} {
		_, stderr, err := hoistOnTerminal(t, root, answer, "delete", "-f", cf)
		if err == nil || !strings.Contains(err.Error(), "nothing removed: not confirmed") || !strings.Contains(stderr, "Delete cluster asked from 1 node(s) (10.0.0.2)? [y/N]") {
			t.Errorf("delete answered %q: %v\n%s", answer, err, stderr)
		}
	}
}

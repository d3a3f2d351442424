package apply

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/test/testbed"
)

// nodeKubeadm is the base image's kubeadm and its Kubernetes version, made
// once and cached by version outside the checkout by
// images/kubernetes/binaries.sh (as the end-to-end test does). Making it
// needs root, as the test bed does.
func nodeKubeadm(t *testing.T) (string, string) {
	t.Helper()
	script := filepath.Join("..", "images", "kubernetes", "binaries.sh")
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "KUBERNETES_VERSION="); ok && version == "" {
			version = v
		}
	}
	return filepath.Join(nodeBinDir(t), "kubeadm"), version
}

// events records what a renew or a backup reports.
type events struct {
	mu  sync.Mutex
	all []progress.Event
}

func (e *events) Report(ev progress.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) Close() {}

func (e *events) find(node, step, state string) (progress.Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Node == node && ev.Step == step && ev.State == state {
			return ev, true
		}
	}
	return progress.Event{}, false
}

func (e *events) has(node, step, state string) bool {
	_, ok := e.find(node, step, state)
	return ok
}

// TestCerts: masters of a real test bed (sshd) with the real kubeadm and
// a PKI it made, as kubeadm init leaves one (without the static pods: no
// kubelet here; the end-to-end test restarts a real control plane). check
// reads every master's certificates, names an unreachable master and what
// expires; renew renews the files on every master, stops at the master
// that fails, naming it, and a renew run again continues there, putting
// back first a manifest an interrupted restart left out.
func TestCerts(t *testing.T) {
	kubeadmBin, version := nodeKubeadm(t)
	bed, key := testbed.ForTest(t, 3)
	ctx := context.Background()
	root := t.TempDir()
	var ips []string
	for _, n := range bed.Nodes {
		ips = append(ips, n.IP)
	}
	parse := func(ips ...string) clusterfile.Cluster {
		t.Helper()
		cf, err := clusterfile.ParseClusterfile("Clusterfile", fmt.Appendf(nil, `apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: certs}
spec:
  image: acme/platform:v1
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
`, key, strings.Join(ips, ", ")))
		if err != nil {
			t.Fatal(err)
		}
		return cf.Cluster
	}
	three, two := parse(ips...), parse(ips[:2]...)
	bin, err := os.Open(kubeadmBin)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	execs := map[string]ssh.Executor{}
	for i, n := range bed.Nodes[:2] {
		e, err := ssh.Dial(ctx, ssh.Config{Host: n.IP, Port: 22, User: "root", PrivateKey: key, KnownHosts: layout.Local{Root: root}.KnownHosts(), AcceptNew: true})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		execs[n.IP] = e
		bin.Seek(0, 0)
		script := fmt.Sprintf(`set -e
cat > /usr/bin/kubeadm && chmod 755 /usr/bin/kubeadm
kubeadm init phase certs all --kubernetes-version %[1]s --apiserver-advertise-address %[2]s >&2
kubeadm init phase kubeconfig all --kubernetes-version %[1]s --apiserver-advertise-address %[2]s >&2
`, version, n.IP)
		if i == 1 {
			// As on a master that joined: kubeadm init alone writes it.
			script += "rm /etc/kubernetes/" + kubeadm.SuperAdminConf + "\n"
		}
		if err := e.Run(ctx, script, bin, nil); err != nil {
			t.Fatal(err)
		}
	}
	made := time.Now()
	// The third master's machine is down: sshd refuses.
	if err := bed.Crash(bed.Nodes[2]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ips[2], "22"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections 10s after its machine crashed", ips[2])
		}
	}
	opts := Options{Root: root, AcceptNewHostKeys: true}
	check := func(c clusterfile.Cluster, after time.Duration) *CertsReport {
		t.Helper()
		certs := &Certs{Cluster: c, Options: opts, Now: func() time.Time { return time.Now().Add(after) }}
		r, err := certs.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	expiries := func(r *CertsReport) map[string]time.Time {
		out := map[string]time.Time{}
		for _, m := range r.Masters {
			for _, c := range m.Certificates {
				out[m.Host+" "+c.Name] = c.Expires
			}
			for _, c := range m.CertificateAuthorities {
				out[m.Host+" ca "+c.Name] = c.Expires
			}
		}
		return out
	}

	// check
	r := check(three, 0)
	if len(r.Masters) != 3 {
		t.Fatalf("%d masters, want 3", len(r.Masters))
	}
	for i, m := range r.Masters[:2] {
		if m.Host != ips[i] || m.Error != "" || len(m.Certificates) != 11 || len(m.CertificateAuthorities) != 3 {
			t.Fatalf("master %s: %+v", ips[i], m)
		}
		for _, c := range m.Certificates {
			if c.Name == kubeadm.SuperAdminConf && i == 1 {
				if !c.Missing {
					t.Errorf("%s on the second master: %+v, want missing", c.Name, c)
				}
				continue
			}
			year := int64(made.AddDate(1, 0, 0).Sub(made) / time.Second)
			if c.Missing || c.ResidualSeconds < year-120 || c.ResidualSeconds > year+60 {
				t.Errorf("%s %s: %+v, want a year left", m.Host, c.Name, c)
			}
		}
	}
	if m := r.Masters[2]; m.Host != ips[2] || !strings.Contains(m.Error, "unreachable") || len(m.Certificates) > 0 {
		t.Errorf("the master that is down: %+v", m)
	}
	problems := r.Problems(30 * 24 * time.Hour)
	if len(problems) != 1 || problems[0].Host != ips[2] || problems[0].Certificate != "" || !strings.HasPrefix(problems[0].Message, "not checked: ") {
		t.Errorf("problems: %v, want the unreachable master's only", problems)
	}
	if problems := r.Problems(400 * 24 * time.Hour); len(problems) != 1+11+10 {
		t.Errorf("within 400 days: %d problems, want every certificate but the missing super-admin.conf, and the master that is down: %v", len(problems), problems)
	}
	// 350 days on: every certificate expires within 30 days, the
	// authorities do not.
	r = check(two, 350*24*time.Hour)
	problems = r.Problems(30 * 24 * time.Hour)
	if len(problems) != 21 {
		t.Errorf("350 days on: %d problems, want 21: %v", len(problems), problems)
	}
	for _, p := range problems {
		if !strings.Contains(p.Message, "certificate "+p.Certificate+" expires in 1") || strings.Contains(p.Message, "authority") {
			t.Errorf("350 days on: %s", p)
		}
	}
	// Two years on: expired.
	r = check(two, 2*365*24*time.Hour)
	problems = r.Problems(30 * 24 * time.Hour)
	if len(problems) != 21 || !strings.Contains(problems[0].Message, "certificate admin.conf expired on ") {
		t.Errorf("two years on: %v", problems)
	}
	// A certificate that is gone.
	second := execs[ips[1]]
	if err := second.Run(ctx, "mv /etc/kubernetes/pki/apiserver.crt /root/", nil, nil); err != nil {
		t.Fatal(err)
	}
	problems = check(two, 0).Problems(30 * 24 * time.Hour)
	if len(problems) != 1 || problems[0].String() != ips[1]+": certificate apiserver is missing" {
		t.Errorf("apiserver.crt removed: %v", problems)
	}
	if err := second.Run(ctx, "mv /root/apiserver.crt /etc/kubernetes/pki/", nil, nil); err != nil {
		t.Fatal(err)
	}

	// renew: the files of the first two masters, then the third fails
	// (down): the renew stops there.
	before := expiries(check(two, 0))
	time.Sleep(time.Until(made.Add(1100 * time.Millisecond))) // a later second for every new expiry
	rec := &events{}
	certs := &Certs{Cluster: three, Options: opts}
	certs.Reporter = rec
	err = certs.Renew(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), ips[2]+": "+StepCertsRenew+": ") || !strings.Contains(err.Error(), "unreachable") ||
		!strings.Contains(err.Error(), "hoist certs renew continues from there") {
		t.Fatalf("renew with a master down: %v", err)
	}
	t.Logf("renew with a master down: %v", err)
	if _, ok := rec.find(ips[2], StepCertsRenew, progress.StateFailed); !ok {
		t.Errorf("no failure reported for %s: %+v", ips[2], rec.all)
	}
	renewed := expiries(check(two, 0))
	for k, was := range before {
		if strings.Contains(k, " ca ") {
			if !renewed[k].Equal(was) {
				t.Errorf("authority %s: expiry %s, was %s: authorities are not renewed", k, renewed[k], was)
			}
			continue
		}
		if k == ips[1]+" "+kubeadm.SuperAdminConf {
			continue // missing
		}
		if !renewed[k].After(was) {
			t.Errorf("%s: expiry %s, was %s: not renewed", k, renewed[k], was)
		}
	}
	plan, err := (&Certs{Cluster: three, Options: opts}).RenewPlan()
	if err != nil {
		t.Fatal(err)
	}
	if plan.Continues.IsZero() || len(plan.Steps) != 6 || plan.Steps[0].Done.IsZero() || plan.Steps[1].Done.IsZero() || !plan.Steps[2].Done.IsZero() ||
		plan.Steps[3].Step != StepRestart || !plan.Steps[3].Done.IsZero() {
		t.Errorf("the plan of the next renew: %+v", plan)
	}

	// A restart interrupted on the first master left its scheduler's
	// manifest out of the kubelet's directory. The third master leaves
	// the Clusterfile; the renew run again continues: no file renewed
	// again, the manifest put back, then the first master's restart
	// fails (no container runtime here), naming it, its manifest back in
	// place.
	first := execs[ips[0]]
	held := nodeDir(two).State() + "/held-manifests"
	if err := first.Run(ctx, "mkdir -p "+held+" "+kubeadm.ManifestsDir+" && echo 'kind: Pod' > "+held+"/kube-scheduler.yaml", nil, nil); err != nil {
		t.Fatal(err)
	}
	rec = &events{}
	certs = &Certs{Cluster: two, Options: opts}
	certs.Reporter = rec
	err = certs.Renew(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), ips[0]+": restart kube-scheduler: ") || !strings.Contains(err.Error(), "crictl") ||
		!strings.Contains(err.Error(), "its manifest is back in "+kubeadm.ManifestsDir) {
		t.Fatalf("renew continued on a master without a container runtime: %v", err)
	}
	t.Logf("renew continued on a master without a container runtime: %v", err)
	for _, ip := range ips[:2] {
		if ev, ok := rec.find(ip, StepCertsRenew, progress.StateSkipped); !ok || !strings.Contains(ev.Message, "by the renew begun") {
			t.Errorf("%s: the files renewed by the unfinished renew were not skipped: %+v", ip, rec.all)
		}
	}
	if ev, ok := rec.find(ips[0], "", progress.StateWarning); !ok || !strings.Contains(ev.Message, "kube-scheduler.yaml") {
		t.Errorf("%s: putting the held manifest back was not reported: %+v", ips[0], rec.all)
	}
	for _, pod := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, ok := rec.find(ips[0], StepRestart+" "+pod, progress.StateSkipped); !ok {
			t.Errorf("%s: restart %s without a manifest was not skipped: %+v", ips[0], pod, rec.all)
		}
	}
	if again := expiries(check(two, 0)); fmt.Sprint(again) != fmt.Sprint(renewed) {
		t.Errorf("the files were renewed again:\n%v\n%v", again, renewed)
	}
	if out, err := ssh.Output(ctx, first, "ls "+kubeadm.ManifestsDir+"; ls "+held); err != nil || string(out) != "kube-scheduler.yaml\n" {
		t.Errorf("after the failed restart, the manifests: %q %v, want kube-scheduler.yaml back in %s and none held", out, err, kubeadm.ManifestsDir)
	}
	// A manifest both held and in place is for a person to choose.
	if err := first.Run(ctx, "echo 'kind: Pod' > "+held+"/kube-scheduler.yaml", nil, nil); err != nil {
		t.Fatal(err)
	}
	err = (&Certs{Cluster: two, Options: opts}).Renew(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), ips[0]+": "+StepRestart+": ") || !strings.Contains(err.Error(), "both "+kubeadm.ManifestsDir+"/kube-scheduler.yaml and "+held+"/kube-scheduler.yaml exist: remove the one not wanted") {
		t.Errorf("a manifest held and in place: %v", err)
	}

	// A record of the renew that is not hoist's stops it, naming the file.
	file := renewStateFile(root, "certs")
	os.WriteFile(file, []byte(`{"started": "yesterday"}`), 0o600)
	if err := (&Certs{Cluster: two, Options: opts}).Renew(ctx); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("a damaged record: %v", err)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "expired",
		0:                               "0s",
		59 * time.Second:                "59s",
		90 * time.Minute:                "1h",
		364*24*time.Hour + 23*time.Hour: "364d",
		366 * 24 * time.Hour:            "1y",
		9*365*24*time.Hour + 1:          "9y",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("%s: %s, want %s", d, got, want)
		}
	}
}

var badRenewStates = map[string]struct{ data, want string }{
	"empty":            {"", "EOF"},
	"not json":         {"started", "invalid character"},
	"no start":         {`{"masters": {}}`, "no start time"},
	"bad time":         {`{"started": "yesterday"}`, "cannot parse"},
	"unknown field":    {`{"started": "2026-12-01T02:00:00Z", "done": true}`, `unknown field "done"`},
	"two documents":    {`{"started": "2026-12-01T02:00:00Z"} {}`, "more than one JSON document"},
	"a name":           {`{"started": "2026-12-01T02:00:00Z", "masters": {"master-1": {}}}`, `"master-1" is not a master's address`},
	"restarted before": {`{"started": "2026-12-01T02:00:00Z", "masters": {"10.0.0.2": {"restarted": "2026-12-01T02:00:00Z"}}}`, "restarted, but not renewed"},
}

func TestParseRenewState(t *testing.T) {
	st, err := parseRenewState([]byte(`{"started": "2026-12-01T02:00:00Z", "masters": {"10.0.0.2": {"renewed": "2026-12-01T02:00:10Z"}}}`))
	if err != nil || st.Masters["10.0.0.2"].Renewed.IsZero() || !st.Masters["10.0.0.2"].Restarted.IsZero() {
		t.Errorf("got %+v, %v", st, err)
	}
	for name, c := range badRenewStates {
		if _, err := parseRenewState([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	if st, err := readRenewState(filepath.Join(t.TempDir(), "none.json")); st != nil || err != nil {
		t.Errorf("no record: %+v, %v", st, err)
	}
}

// FuzzParseRenewState: the record is read back from a file anyone with
// root here may edit. What is accepted has a start and masters by
// address, and is written back as it was read.
func FuzzParseRenewState(f *testing.F) {
	f.Add([]byte(`{"started": "2026-12-01T02:00:00Z", "masters": {"10.0.0.2": {"renewed": "2026-12-01T02:00:10Z", "restarted": "2026-12-01T02:01:00Z"}, "fd00::1": {}}}`))
	for _, c := range badRenewStates {
		f.Add([]byte(c.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseRenewState(data)
		if err != nil {
			return
		}
		if st.Started.IsZero() || st.Masters == nil {
			t.Fatalf("accepted %+v", st)
		}
		file := filepath.Join(t.TempDir(), "certs-renew.json")
		if err := writeRenewState(file, st); err != nil {
			t.Fatal(err)
		}
		again, err := readRenewState(file)
		if err != nil {
			t.Fatalf("written, not read back: %v", err)
		}
		a, _ := os.ReadFile(file)
		if err := writeRenewState(file, again); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(file)
		if !bytes.Equal(a, b) {
			t.Fatalf("read back differently:\n%s\n%s", a, b)
		}
	})
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hoistdev/hoist/test/testbed"
)

// certsReport is the part of `hoist certs check -o json` the test reads.
type certsReport struct {
	Masters []struct {
		Host         string
		Error        string
		Certificates []struct {
			Name            string
			Expires         time.Time
			Missing         bool
			ResidualSeconds int64
		}
		CertificateAuthorities []struct {
			Name    string
			Expires time.Time
		}
	}
	Problems []struct{ Host, Message string }
}

// kubeadmCertificates are the certificates kubeadm makes on every master
// (super-admin.conf on the one that ran kubeadm init only).
var kubeadmCertificates = []string{"admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
	"controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf"}

// certs proves hoist certs on a running cluster whose masters are given,
// the first being the one that ran kubeadm init: check lists every kubeadm
// certificate of every master, a year ahead, and fails when asked to warn
// a longer time ahead; renew renews them all (each expires later than
// before) and restarts the control plane master by master; then the API
// server answers with the kubeconfig hoist gives, and every node that was
// Ready is Ready again.
func (e *env) certs(clusterfile, kubeconfig string, masters []testbed.Node) {
	t := e.t
	t.Helper()
	wasReady := e.readyNodes(kubeconfig)
	check := func() map[string]time.Time {
		t.Helper()
		var r certsReport
		if err := json.Unmarshal([]byte(e.h("certs", "check", "-f", clusterfile, "-o", "json")), &r); err != nil {
			t.Fatalf("hoist certs check -o json: %v", err)
		}
		if len(r.Masters) != len(masters) || len(r.Problems) != 0 {
			t.Fatalf("hoist certs check: %d masters, problems %v; want %d and none", len(r.Masters), r.Problems, len(masters))
		}
		expiries := map[string]time.Time{}
		for i, m := range r.Masters {
			if m.Host != masters[i].IP || m.Error != "" {
				t.Fatalf("master %d: %s (%s), want %s", i+1, m.Host, m.Error, masters[i].IP)
			}
			var names []string
			for _, c := range m.Certificates {
				if c.Missing {
					if c.Name != "super-admin.conf" || i == 0 {
						t.Errorf("%s: certificate %s missing", m.Host, c.Name)
					}
					continue
				}
				names = append(names, c.Name)
				expiries[m.Host+" "+c.Name] = c.Expires
				// kubeadm's certificates last a year.
				if left := time.Duration(c.ResidualSeconds) * time.Second; left < 364*24*time.Hour || left > 366*24*time.Hour {
					t.Errorf("%s: certificate %s expires %s, in %s: want about a year", m.Host, c.Name, c.Expires, left)
				}
			}
			for _, want := range kubeadmCertificates {
				if !slices.Contains(names, want) {
					t.Errorf("%s: no certificate %s in %v", m.Host, want, names)
				}
			}
			if i == 0 && !slices.Contains(names, "super-admin.conf") {
				t.Errorf("%s, which ran kubeadm init: no super-admin.conf in %v", m.Host, names)
			}
			if len(m.CertificateAuthorities) != 3 {
				t.Errorf("%s: authorities %+v, want ca, etcd-ca, front-proxy-ca", m.Host, m.CertificateAuthorities)
			}
		}
		return expiries
	}
	before := check()
	// A cron job asking 400 days ahead is told: exit status 1, each
	// certificate named on stderr.
	out, err := exec.Command(e.hoist, "--root", e.root, "certs", "check", "-f", clusterfile, "--warn-within", "400d").CombinedOutput()
	if err == nil || !strings.Contains(string(out), masters[0].IP+": certificate apiserver expires in 36") || !strings.Contains(string(out), "within 400d") {
		t.Errorf("hoist certs check --warn-within 400d: %v\n%s", err, out)
	}
	if out := e.h("certs", "renew", "-f", clusterfile, "--dry-run"); strings.Count(out, "to do") != 2*len(masters) || strings.Contains(out, "continues") {
		t.Errorf("hoist certs renew --dry-run:\n%s", out)
	}

	start := time.Now()
	out, err = exec.Command(e.hoist, "--root", e.root, "certs", "renew", "-f", clusterfile).CombinedOutput()
	t.Logf("hoist certs renew (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("hoist certs renew: %v", err)
	}
	after := check()
	for k, was := range before {
		if !after[k].After(was) {
			t.Errorf("%s: expires %s after renew, %s before", k, after[k], was)
		}
	}
	if _, err := os.Stat(filepath.Join(e.root, "clusters", "e2e", "certs-renew.json")); err == nil {
		t.Errorf("a finished renew left its record: the next one would continue it")
	}

	t.Logf("hoist certs check after the renew:\n%s", e.h("certs", "check", "-f", clusterfile))

	renewed := filepath.Join(e.dir, "admin-renewed.conf")
	if err := os.WriteFile(renewed, []byte(e.h("kubeconfig", "-f", clusterfile)), 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		ready := e.readyNodes(renewed)
		lost := []string{}
		for ip, was := range wasReady {
			if was && !ready[ip] {
				lost = append(lost, ip)
			}
		}
		if len(lost) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after hoist certs renew, not Ready for 3 minutes: %v (nodes %v)", lost, ready)
		}
	}
	// Every master's control plane runs containers started by the renew,
	// which read the renewed certificates (the mirror pods' status
	// follows the kubelet's by a few seconds).
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		var pods struct {
			Items []struct {
				Metadata struct{ Name string }
				Spec     struct{ NodeName string }
				Status   struct {
					ContainerStatuses []struct {
						State struct {
							Running *struct{ StartedAt time.Time }
						}
					}
				}
			}
		}
		e.kube(renewed, &pods, "get", "pods", "-n", "kube-system", "-l", "tier=control-plane")
		var old []string
		restarted := 0
		for _, p := range pods.Items {
			if !slices.ContainsFunc(masters, func(m testbed.Node) bool { return m.Name == p.Spec.NodeName }) {
				continue
			}
			for _, c := range p.Status.ContainerStatuses {
				if c.State.Running == nil || c.State.Running.StartedAt.Before(start.Truncate(time.Second)) {
					old = append(old, p.Metadata.Name)
				} else {
					restarted++
				}
			}
		}
		if len(old) == 0 && restarted == 4*len(masters) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after hoist certs renew: %d control-plane containers started by it, want %d; not restarted: %v", restarted, 4*len(masters), old)
		}
	}
	t.Logf("certificates renewed on %d masters, every node Ready again, in %s", len(masters), time.Since(start).Round(time.Second))
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certsClusterfile is a cluster whose masters are at addrs (loopback: SSH
// is used, not the local shortcut), reached on port.
func certsClusterfile(t *testing.T, port int, addrs ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "Clusterfile")
	data := fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: certs}
spec:
  image: acme/platform:v1
  ssh: {user: root, password: not-used, port: %d}
  hosts:
  - ips: [%s]
    roles: [master]
`, port, strings.Join(addrs, ", "))
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// closedPort is a port of this machine nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestCertsCheckUnreachable: a master that cannot be reached is in the
// output, as such, with a line on stderr, and fails the check; the
// others are still asked (a cron job learns about all of them at once).
func TestCertsCheckUnreachable(t *testing.T) {
	file := certsClusterfile(t, closedPort(t), "127.0.0.1", "127.0.0.2")
	out, stderr, err := hoist(t, "certs", "check", "-f", file, "-o", "json")
	if err == nil || err.Error() != "cluster certs: 2 of 2 masters not checked" {
		t.Errorf("err = %v", err)
	}
	var report struct {
		Cluster    string
		WarnWithin string
		Masters    []struct{ Host, Error string }
		Problems   []struct{ Host, Certificate, Message string }
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if report.Cluster != "certs" || report.WarnWithin != "30d" || len(report.Masters) != 2 || len(report.Problems) != 2 {
		t.Fatalf("report: %+v", report)
	}
	for i, host := range []string{"127.0.0.1", "127.0.0.2"} {
		if m := report.Masters[i]; m.Host != host || !strings.Contains(m.Error, "unreachable") {
			t.Errorf("master %s: %+v", host, m)
		}
		if p := report.Problems[i]; p.Host != host || p.Certificate != "" || !strings.HasPrefix(p.Message, "not checked: ") {
			t.Errorf("problem of %s: %+v", host, p)
		}
		if !strings.Contains(stderr, host+": not checked: "+host+":") {
			t.Errorf("stderr does not name %s:\n%s", host, stderr)
		}
	}
	if strings.Contains(stderr, "not-used") || strings.Contains(out, "not-used") {
		t.Error("the SSH password is in the output")
	}
	// The table: kubeadm's two, headed, even when empty.
	out, _, err = hoist(t, "certs", "check", "-f", file)
	if err == nil || !strings.HasPrefix(out, "HOST   CERTIFICATE   EXPIRES") || !strings.Contains(out, "\nHOST   CERTIFICATE AUTHORITY   EXPIRES") {
		t.Errorf("table: %v\n%s", err, out)
	}
}

func TestCertsFlags(t *testing.T) {
	file := certsClusterfile(t, closedPort(t), "127.0.0.1")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "-o", "yaml"}, `--format "yaml": want table or json`},
		{[]string{"check", "--format", "json", "-o", "json"}, `--format and --output (-o) are one flag: give one`},
		{[]string{"check", "--warn-within", "1 month"}, `"1 month": want days (30d) or a duration (12h)`},
		{[]string{"check", "--warn-within", "-3d"}, `"-3d": want a number of days`},
		{[]string{"renew", "--format", "table"}, `--format "table": want text or json`},
		{[]string{"check", "-f", filepath.Join(t.TempDir(), "none")}, "no such file"},
	} {
		args := append([]string{"certs"}, c.args...)
		if !strings.Contains(strings.Join(c.args, " "), "-f ") {
			args = append(args, "-f", file)
		}
		if _, _, err := hoist(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestCertsRenewDryRun: the plan, from the Clusterfile alone: nothing is
// reached (the masters are not there), nothing written.
func TestCertsRenewDryRun(t *testing.T) {
	file := certsClusterfile(t, closedPort(t), "127.0.0.1", "127.0.0.2")
	out, _, err := hoist(t, "certs", "renew", "-f", file, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "HOST ") ||
		!strings.HasPrefix(lines[1], "127.0.0.1  certs-renew  to do  kubeadm certs renew all") ||
		!strings.HasPrefix(lines[2], "127.0.0.2  certs-renew  to do") ||
		!strings.HasPrefix(lines[3], "127.0.0.1  restart      to do  restart etcd, kube-apiserver, kube-controller-manager, kube-scheduler") {
		t.Errorf("plan:\n%s", out)
	}
	out, _, err = hoist(t, "certs", "renew", "-f", file, "--dry-run", "-o", "json")
	var plan struct {
		Cluster string
		Steps   []struct{ Host, Step, What string }
	}
	if err != nil || json.Unmarshal([]byte(out), &plan) != nil || plan.Cluster != "certs" || len(plan.Steps) != 4 || strings.Contains(out, "continues") {
		t.Errorf("plan in JSON: %v\n%s", err, out)
	}
}

func TestParseDays(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "0d": 0, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute,
	} {
		if got, err := parseDays(s); err != nil || got != want {
			t.Errorf("%s: %s, %v; want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"", "d", "30", "-1h", "-3d", "1.5d", "30 d", "99999999999d", "36501d", "1w"} {
		if got, err := parseDays(s); err == nil {
			t.Errorf("%q accepted as %s", s, got)
		}
	}
	if s := days(30 * 24 * time.Hour).String(); s != "30d" {
		t.Errorf("30 days print as %s", s)
	}
	if s := days(36 * time.Hour).String(); s != "36h0m0s" {
		t.Errorf("36 hours print as %s", s)
	}
}

// FuzzParseDays: --warn-within comes from the user; what is accepted is a
// time not negative, and prints as something accepted again as the same.
func FuzzParseDays(f *testing.F) {
	for _, s := range []string{"30d", "12h", "0d", "-3d", "1.5d", "99999999999d", "1h30m", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDays(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q: %s", s, d)
		}
		again, err := parseDays(days(d).String())
		if err != nil || again != d {
			t.Fatalf("%q: %s prints as %s, read back as %s (%v)", s, d, days(d), again, err)
		}
	})
}

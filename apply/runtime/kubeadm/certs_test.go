package kubeadm

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kubeadmCheckOutput is what kubeadm 1.37.2's `certs check-expiration -o
// json` printed on a master that did not run kubeadm init (no
// super-admin.conf).
const kubeadmCheckOutput = `{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3","certificates":[` +
	`{"name":"admin.conf","expirationDate":"2027-12-01T02:00:20Z","residualTime":31535714,"externallyManaged":false,"caName":"ca","missing":false},` +
	`{"name":"apiserver","expirationDate":"2027-12-01T02:00:19Z","residualTime":31535713,"externallyManaged":false,"caName":"ca","missing":false},` +
	`{"name":"apiserver-etcd-client","expirationDate":"2027-12-01T02:00:19Z","residualTime":31535713,"externallyManaged":false,"caName":"etcd-ca","missing":false},` +
	`{"name":"etcd-server","expirationDate":"2027-12-01T02:00:19Z","residualTime":31535713,"externallyManaged":true,"caName":"etcd-ca","missing":false},` +
	`{"name":"super-admin.conf","expirationDate":null,"residualTime":0,"externallyManaged":false,"missing":true}],` +
	`"certificateAuthorities":[{"name":"ca","expirationDate":"2036-11-28T02:00:19Z","residualTime":315359713,"externallyManaged":false,"missing":false},` +
	`{"name":"etcd-ca","expirationDate":"2036-11-28T03:00:19+01:00","residualTime":315359713,"externallyManaged":false,"missing":false}]}`

func TestParseExpiration(t *testing.T) {
	e, err := ParseExpiration("10.0.0.2", []byte(kubeadmCheckOutput))
	if err != nil {
		t.Fatal(err)
	}
	want := []Certificate{
		{Name: "admin.conf", Expires: time.Date(2027, 12, 1, 2, 0, 20, 0, time.UTC), CA: "ca"},
		{Name: "apiserver", Expires: time.Date(2027, 12, 1, 2, 0, 19, 0, time.UTC), CA: "ca"},
		{Name: "apiserver-etcd-client", Expires: time.Date(2027, 12, 1, 2, 0, 19, 0, time.UTC), CA: "etcd-ca"},
		{Name: "etcd-server", Expires: time.Date(2027, 12, 1, 2, 0, 19, 0, time.UTC), CA: "etcd-ca", ExternallyManaged: true},
		{Name: "super-admin.conf", Missing: true},
	}
	if !slices.Equal(e.Certificates, want) {
		t.Errorf("certificates:\n got %+v\nwant %+v", e.Certificates, want)
	}
	// Dates are kept in UTC whatever the offset kubeadm wrote.
	wantCAs := []Certificate{
		{Name: "ca", Expires: time.Date(2036, 11, 28, 2, 0, 19, 0, time.UTC)},
		{Name: "etcd-ca", Expires: time.Date(2036, 11, 28, 2, 0, 19, 0, time.UTC)},
	}
	if !slices.Equal(e.CertificateAuthorities, wantCAs) {
		t.Errorf("authorities:\n got %+v\nwant %+v", e.CertificateAuthorities, wantCAs)
	}
}

// TestParseExpirationOfKubeadm: what the base image's kubeadm prints for
// a PKI it made, read back: every certificate of a master a year ahead,
// the authorities ten years ahead; and the API server's endpoint from the
// manifest it writes.
func TestParseExpirationOfKubeadm(t *testing.T) {
	kubeadm, version := kubeadmBinary(t)
	root := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(kubeadm, append(args, "--rootfs", root)...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("kubeadm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	made := time.Now()
	run("init", "phase", "certs", "all", "--kubernetes-version", version)
	run("init", "phase", "kubeconfig", "all", "--kubernetes-version", version, "--apiserver-advertise-address", "10.9.8.7")
	run("init", "phase", "control-plane", "apiserver", "--kubernetes-version", version, "--apiserver-advertise-address", "10.9.8.7")
	// As on a master that joined: kubeadm writes super-admin.conf on the
	// one that ran init only.
	if err := os.Remove(filepath.Join(root, "etc/kubernetes", SuperAdminConf)); err != nil {
		t.Fatal(err)
	}
	e, err := ParseExpiration("10.9.8.7", run("certs", "check-expiration", "-o", "json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range e.Certificates {
		names = append(names, c.Name)
		if c.Name == SuperAdminConf {
			if !c.Missing || !c.Expires.IsZero() {
				t.Errorf("%s: %+v, want missing", c.Name, c)
			}
			continue
		}
		if c.Missing || c.CA == "" || c.ExternallyManaged {
			t.Errorf("%s: %+v", c.Name, c)
		}
		if year := made.AddDate(1, 0, 0); c.Expires.Before(year.Add(-time.Minute)) || c.Expires.After(year.Add(time.Minute)) {
			t.Errorf("%s expires %s, want a year after %s", c.Name, c.Expires, made)
		}
	}
	wantNames := []string{"admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
		"etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf", SuperAdminConf}
	if !slices.Equal(names, wantNames) {
		t.Errorf("certificates %v, want %v", names, wantNames)
	}
	var cas []string
	for _, c := range e.CertificateAuthorities {
		cas = append(cas, c.Name)
		if c.Missing || c.CA != "" || c.Expires.Before(made.AddDate(9, 11, 0)) {
			t.Errorf("authority %s: %+v, want ten years ahead", c.Name, c)
		}
	}
	if want := []string{"ca", "etcd-ca", "front-proxy-ca"}; !slices.Equal(cas, want) {
		t.Errorf("authorities %v, want %v", cas, want)
	}
	manifest, err := os.ReadFile(filepath.Join(root, ManifestsDir, "kube-apiserver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if ep, err := APIServerEndpoint(manifest); err != nil || ep != "10.9.8.7:6443" {
		t.Errorf("the API server's endpoint: %q, %v; want 10.9.8.7:6443", ep, err)
	}
}

// badExpirations are outputs of a node that are not kubeadm's answer, and
// what the error says of each.
var badExpirations = map[string]struct{ data, want string }{
	"empty":           {"", "no output"},
	"blank":           {" \n", "no output"},
	"text output":     {"CERTIFICATE                EXPIRES                  RESIDUAL TIME\nadmin.conf  Dec 01, 2027 02:00 UTC  364d\n", "not the JSON document"},
	"a warning first": {"W1201 02:00:00.000 warning\n" + kubeadmCheckOutput, "not the JSON document"},
	"null":            {"null", `kind "", apiVersion ""`},
	"a list":          {"[]", "not the JSON document"},
	"truncated":       {kubeadmCheckOutput[:200], "not the JSON document"},
	"two documents":   {kubeadmCheckOutput + kubeadmCheckOutput, "more than one JSON document"},
	"trailing text":   {kubeadmCheckOutput + "\nok\n", "more than one JSON document"},
	"other kind":      {strings.Replace(kubeadmCheckOutput, "CertificateExpirationInfo", "Pod", 1), `kind "Pod"`},
	"other version":   {strings.Replace(kubeadmCheckOutput, "v1alpha3", "v1alpha2", 1), `apiVersion "output.kubeadm.k8s.io/v1alpha2"`},
	"unknown field":   {strings.Replace(kubeadmCheckOutput, `"missing":true`, `"missing":true,"renewed":true`, 1), `unknown field "renewed"`},
	"no certificates": {`{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3","certificates":[],"certificateAuthorities":[{"name":"ca","expirationDate":"2036-11-28T02:00:19Z","missing":false}]}`, "certificates: none listed"},
	"no authorities":  {`{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3","certificates":[{"name":"apiserver","expirationDate":"2027-12-01T02:00:19Z","caName":"ca"}]}`, "certificateAuthorities: none listed"},
	"terminal escape": {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, `"name":"apiserver\u001b[2J"`, 1), `name "apiserver\x1b[2J" is not a certificate's name`},
	"raw newline":     {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, "\"name\":\"api\nserver\"", 1), "not the JSON document"},
	"escaped newline": {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, `"name":"api\nserver"`, 1), `name "api\nserver" is not a certificate's name`},
	"backslash":       {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, `"name":"api\\server"`, 1), `name "api\\server" is not a certificate's name`},
	"empty name":      {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, `"name":""`, 1), `entry 2: name "" is not`},
	"long name":       {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, `"name":"`+strings.Repeat("a", 70)+`"`, 1), "is not a certificate's name"},
	"bad CA name":     {strings.Replace(kubeadmCheckOutput, `"caName":"etcd-ca"`, `"caName":"etcd ca"`, 1), `caName "etcd ca" is not`},
	"twice":           {strings.Replace(kubeadmCheckOutput, `"name":"apiserver"`, `"name":"admin.conf"`, 1), "admin.conf is listed twice"},
	"no date":         {strings.Replace(kubeadmCheckOutput, `"expirationDate":"2027-12-01T02:00:20Z",`, ``, 1), "admin.conf: no expiration date"},
	"null date":       {strings.Replace(kubeadmCheckOutput, `"expirationDate":"2027-12-01T02:00:20Z"`, `"expirationDate":null`, 1), "admin.conf: no expiration date"},
	"bad date":        {strings.Replace(kubeadmCheckOutput, `2027-12-01T02:00:20Z`, `Dec 01, 2027`, 1), "admin.conf: expiration date"},
	"date a number":   {strings.Replace(kubeadmCheckOutput, `"2027-12-01T02:00:20Z"`, `1827000000`, 1), "not the JSON document"},
	"year zero":       {strings.Replace(kubeadmCheckOutput, `2027-12-01T02:00:20Z`, `0000-01-01T00:00:00Z`, 1), "before any certificate"},
	"missing, dated":  {strings.Replace(kubeadmCheckOutput, `"expirationDate":null,"residualTime":0,"externallyManaged":false,"missing":true`, `"expirationDate":"2027-12-01T02:00:19Z","missing":true`, 1), "super-admin.conf: missing, with an expiration date"},
	"signed CA":       {strings.Replace(kubeadmCheckOutput, `{"name":"ca","expirationDate":"2036-11-28T02:00:19Z",`, `{"name":"ca","caName":"root","expirationDate":"2036-11-28T02:00:19Z",`, 1), "ca: an authority with a signing authority"},
	"residual float":  {strings.Replace(kubeadmCheckOutput, `31535714`, `3.5`, 1), "not the JSON document"},
	"too large":       {kubeadmCheckOutput + strings.Repeat(" ", maxExpirationSize), "more than kubeadm writes"},
}

func TestParseExpirationRefuses(t *testing.T) {
	for name, c := range badExpirations {
		t.Run(name, func(t *testing.T) {
			_, err := ParseExpiration("10.0.0.2", []byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "10.0.0.2: kubeadm certs check-expiration: ") {
				t.Errorf("err = %v, want one naming 10.0.0.2 and saying %q", err, c.want)
			}
		})
	}
}

// FuzzParseExpiration: a node's output is not trusted. Whatever it is,
// ParseExpiration does not panic, its errors name the host, and what it
// accepts holds only names a terminal prints as they are, each once, with
// a date exactly when the certificate is there.
func FuzzParseExpiration(f *testing.F) {
	f.Add([]byte(kubeadmCheckOutput))
	for _, c := range badExpirations {
		if len(c.data) < 10000 {
			f.Add([]byte(c.data))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseExpiration("10.0.0.2", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "10.0.0.2: ") {
				t.Fatalf("an error that does not name the host: %v", err)
			}
			return
		}
		for _, list := range [][]Certificate{e.Certificates, e.CertificateAuthorities} {
			if len(list) == 0 {
				t.Fatal("an empty list accepted")
			}
			seen := map[string]bool{}
			for _, c := range list {
				if !certName.MatchString(c.Name) || seen[c.Name] || (c.CA != "" && !certName.MatchString(c.CA)) {
					t.Fatalf("accepted %q (CA %q) twice or as a name", c.Name, c.CA)
				}
				seen[c.Name] = true
				if c.Missing != c.Expires.IsZero() || (!c.Missing && c.Expires.Location() != time.UTC) {
					t.Fatalf("%s: missing %v, expires %v", c.Name, c.Missing, c.Expires)
				}
			}
		}
		for _, c := range e.CertificateAuthorities {
			if c.CA != "" {
				t.Fatalf("authority %s signed by %s", c.Name, c.CA)
			}
		}
	})
}

const apiServerManifest = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.250.0.11:6443
  labels:
    component: kube-apiserver
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command: [kube-apiserver, --advertise-address=10.250.0.11]
`

func TestAPIServerEndpoint(t *testing.T) {
	for manifest, want := range map[string]string{
		apiServerManifest: "10.250.0.11:6443",
		strings.Replace(apiServerManifest, "10.250.0.11:6443", "'[fd00::1]:443'", 1): "[fd00::1]:443",
	} {
		if got, err := APIServerEndpoint([]byte(manifest)); err != nil || got != want {
			t.Errorf("got %q, %v; want %s", got, err, want)
		}
	}
}

var badManifests = map[string]struct{ data, want string }{
	"empty":          {"", "no annotation"},
	"not yaml":       {"metadata: [", "not a static pod manifest"},
	"no annotation":  {strings.Replace(apiServerManifest, "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint", "example.com/endpoint", 1), "no annotation"},
	"no port":        {strings.Replace(apiServerManifest, "10.250.0.11:6443", "10.250.0.11", 1), "missing port"},
	"a name":         {strings.Replace(apiServerManifest, "10.250.0.11:6443", "api.example.com:6443", 1), `"api.example.com" is not an IP address`},
	"shell":          {strings.Replace(apiServerManifest, "10.250.0.11:6443", "'$(reboot):6443'", 1), `"$(reboot)" is not an IP address`},
	"zone":           {strings.Replace(apiServerManifest, "10.250.0.11:6443", "'[fe80::1%eth0]:6443'", 1), "is not an IP address"},
	"port zero":      {strings.Replace(apiServerManifest, ":6443", ":0", 1), `"0" is not a port`},
	"port too large": {strings.Replace(apiServerManifest, ":6443", ":65536", 1), `"65536" is not a port`},
	"port a name":    {strings.Replace(apiServerManifest, ":6443", ":https", 1), `"https" is not a port`},
	"annotations a list": {strings.Replace(apiServerManifest, "  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.250.0.11:6443",
		"  annotations: [a]", 1), "not a static pod manifest"},
}

func TestAPIServerEndpointRefuses(t *testing.T) {
	for name, c := range badManifests {
		t.Run(name, func(t *testing.T) {
			if ep, err := APIServerEndpoint([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, %v; want an error saying %q", ep, err, c.want)
			}
		})
	}
}

// FuzzAPIServerEndpoint: a master's manifest is the node's; what is read
// from it goes into a command line, so it is an address and a port, or an
// error.
func FuzzAPIServerEndpoint(f *testing.F) {
	f.Add([]byte(apiServerManifest))
	for _, c := range badManifests {
		f.Add([]byte(c.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ep, err := APIServerEndpoint(data)
		if err != nil {
			return
		}
		ap, perr := netip.ParseAddrPort(ep)
		if perr != nil || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.String() != ep {
			t.Fatalf("accepted %q: %v", ep, perr)
		}
	})
}

func TestContainerIDs(t *testing.T) {
	ids, err := ContainerIDs([]byte("3f2a9c\n\n0123456789abcdef\n"))
	if err != nil || !slices.Equal(ids, []string{"3f2a9c", "0123456789abcdef"}) {
		t.Errorf("got %v, %v", ids, err)
	}
	if ids, err := ContainerIDs(nil); err != nil || len(ids) != 0 {
		t.Errorf("no output: %v, %v", ids, err)
	}
	for _, bad := range []string{"CONTAINER ID\n", "3f2a9c 1h ago\n", "3F2A\n", strings.Repeat("a", 129)} {
		if _, err := ContainerIDs([]byte(bad)); err == nil || !strings.Contains(err.Error(), "is not a container ID") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// FuzzContainerIDs: what crictl prints is the node's; what is accepted is
// a list of hexadecimal IDs.
func FuzzContainerIDs(f *testing.F) {
	for _, seed := range []string{"", "3f2a9c\n", "a\nb\n\n", "CONTAINER ID\n", "3f2a9c 1h ago\n", "\x1b[2J\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := ContainerIDs(data)
		if err != nil {
			return
		}
		for _, id := range ids {
			if id == "" || strings.Trim(id, "0123456789abcdef") != "" {
				t.Fatalf("accepted %q", id)
			}
		}
	})
}

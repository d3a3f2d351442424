package kubeadm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/apply/ssh"
)

// The certificates of a kubeadm control plane: what `kubeadm certs
// check-expiration -o json` says of a master, parsed strictly (a node's
// output is not trusted: it is printed on the user's terminal and decides
// an exit status), and the node-side half of a renewal: `kubeadm certs
// renew all`, the static pods restarted as kubeadm's documentation says,
// and the checks that tell a master is back.

// Files and directories of a kubeadm master.
const (
	ManifestsDir = "/etc/kubernetes/manifests"
	etcdPKI      = "/etc/kubernetes/pki/etcd"
)

// SuperAdminConf is the one certificate kubeadm writes only on the master
// that ran kubeadm init: missing on the others is their normal state.
const SuperAdminConf = "super-admin.conf"

// The document `kubeadm certs check-expiration -o json` prints.
const (
	expirationKind       = "CertificateExpirationInfo"
	expirationAPIVersion = "output.kubeadm.k8s.io/v1alpha3"
	// maxExpirationSize is far above what kubeadm prints (about 3 KB):
	// anything larger is not kubeadm's answer.
	maxExpirationSize = 1 << 20
)

// CheckExpirationCommand asks kubeadm for the expiry of the master's
// certificates. stdin is closed so that nothing can wait on it.
const CheckExpirationCommand = "kubeadm certs check-expiration -o json </dev/null"

// RenewAllCommand renews every certificate kubeadm manages on a master,
// whatever its expiry; its report goes to stderr, where errors quote it.
const RenewAllCommand = "kubeadm certs renew all </dev/null >&2"

// Certificate is one certificate, or certificate authority, of a master.
type Certificate struct {
	Name string `json:"name"`
	// Expires is zero for a missing certificate.
	Expires time.Time `json:"expires,omitzero"`
	// CA names the authority that signed it; empty for an authority.
	CA                string `json:"certificateAuthority,omitempty"`
	ExternallyManaged bool   `json:"externallyManaged"`
	Missing           bool   `json:"missing"`
}

// Expiration is what kubeadm reports of one master's certificates.
type Expiration struct {
	Certificates           []Certificate `json:"certificates"`
	CertificateAuthorities []Certificate `json:"certificateAuthorities"`
}

// CheckExpiration asks the master's kubeadm for the expiry of its
// certificates; errors name the host.
func CheckExpiration(ctx context.Context, e ssh.Executor, host string) (*Expiration, error) {
	out, err := ssh.Output(ctx, e, CheckExpirationCommand)
	if err != nil {
		return nil, fmt.Errorf("%s: kubeadm certs check-expiration: %w", host, err)
	}
	return ParseExpiration(host, out)
}

// rawCertificate is kubeadm's output type (outputapiv1alpha3.Certificate).
type rawCertificate struct {
	Name              string  `json:"name"`
	ExpirationDate    *string `json:"expirationDate"`
	ResidualTime      int64   `json:"residualTime"`
	ExternallyManaged bool    `json:"externallyManaged"`
	CAName            string  `json:"caName"`
	Missing           bool    `json:"missing"`
}

type rawExpiration struct {
	Kind                   string           `json:"kind"`
	APIVersion             string           `json:"apiVersion"`
	Certificates           []rawCertificate `json:"certificates"`
	CertificateAuthorities []rawCertificate `json:"certificateAuthorities"`
}

// certName is what kubeadm calls its certificates and authorities
// (apiserver-etcd-client, admin.conf, front-proxy-ca): a name with
// anything else (a terminal escape, a newline) is not kubeadm's.
var certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ParseExpiration reads the output of `kubeadm certs check-expiration -o
// json` on host: exactly one document of kind CertificateExpirationInfo
// (output.kubeadm.k8s.io/v1alpha3), no field kubeadm does not write, every
// name plausible and given once, a date for every certificate that is
// there and none for one that is missing. Errors name the host.
func ParseExpiration(host string, data []byte) (*Expiration, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: kubeadm certs check-expiration: "+format, append([]any{host}, args...)...)
	}
	if len(data) > maxExpirationSize {
		return nil, fail("%d bytes of output, more than kubeadm writes", len(data))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fail("no output")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw rawExpiration
	if err := dec.Decode(&raw); err != nil {
		return nil, fail("not the JSON document that `kubeadm certs check-expiration -o json` prints: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail("more than one JSON document")
	}
	if raw.Kind != expirationKind || raw.APIVersion != expirationAPIVersion {
		return nil, fail("kind %q, apiVersion %q: want %s, %s", raw.Kind, raw.APIVersion, expirationKind, expirationAPIVersion)
	}
	certs, err := parseCertificates(raw.Certificates, false)
	if err != nil {
		return nil, fail("certificates: %v", err)
	}
	cas, err := parseCertificates(raw.CertificateAuthorities, true)
	if err != nil {
		return nil, fail("certificateAuthorities: %v", err)
	}
	return &Expiration{Certificates: certs, CertificateAuthorities: cas}, nil
}

func parseCertificates(raw []rawCertificate, authorities bool) ([]Certificate, error) {
	if len(raw) == 0 {
		return nil, errors.New("none listed")
	}
	seen := map[string]bool{}
	out := make([]Certificate, 0, len(raw))
	for i, r := range raw {
		if !certName.MatchString(r.Name) {
			return nil, fmt.Errorf("entry %d: name %s is not a certificate's name", i+1, strconv.QuoteToASCII(truncate(r.Name, 80)))
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%s is listed twice", r.Name)
		}
		seen[r.Name] = true
		c := Certificate{Name: r.Name, ExternallyManaged: r.ExternallyManaged, Missing: r.Missing}
		if r.CAName != "" {
			if authorities {
				return nil, fmt.Errorf("%s: an authority with a signing authority (%s)", r.Name, strconv.QuoteToASCII(truncate(r.CAName, 80)))
			}
			if !certName.MatchString(r.CAName) {
				return nil, fmt.Errorf("%s: caName %s is not an authority's name", r.Name, strconv.QuoteToASCII(truncate(r.CAName, 80)))
			}
			c.CA = r.CAName
		}
		switch {
		case r.Missing && r.ExpirationDate != nil:
			return nil, fmt.Errorf("%s: missing, with an expiration date", r.Name)
		case r.Missing:
		case r.ExpirationDate == nil:
			return nil, fmt.Errorf("%s: no expiration date", r.Name)
		default:
			t, err := time.Parse(time.RFC3339, *r.ExpirationDate)
			if err != nil {
				return nil, fmt.Errorf("%s: expiration date: %v", r.Name, err)
			}
			if t.Year() < 1970 {
				return nil, fmt.Errorf("%s: expiration date %s: before any certificate", r.Name, *r.ExpirationDate)
			}
			c.Expires = t.UTC()
		}
		out = append(out, c)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ControlPlanePods are kubeadm's static pods, in the order a renewal
// restarts them: etcd first, so that the API server comes back on an etcd
// that already serves the new certificates.
var ControlPlanePods = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// StaticPods restarts the static pods of one master the way kubeadm's
// documentation says (certificate renewal): a pod's manifest leaves
// ManifestsDir until the kubelet has stopped its container, then comes
// back, and the kubelet starts it again, reading the renewed certificates.
type StaticPods struct {
	Exec ssh.Executor
	Host string
	// Held is the node's directory a manifest waits in while its pod is
	// stopped: outside ManifestsDir, where the kubelet would see it.
	Held string
	// Timeout bounds each wait: a container gone, back, a master ready.
	Timeout time.Duration
	// Poll is the time between two looks; 0 is a second.
	Poll time.Duration
}

func (s *StaticPods) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 5 * time.Minute
}

// RestoreHeldScript puts back the manifests a restart left in held (hoist
// was stopped between taking one out and putting it back), and names them
// on stdout. A manifest in both places is left for a person to choose.
func RestoreHeldScript(held string) string {
	return fmt.Sprintf(`held=%s m=%s
[ -d "$held" ] || exit 0
for f in "$held"/*.yaml; do
  [ -e "$f" ] || continue
  n=${f##*/}
  if [ -e "$m/$n" ]; then
    echo "both $m/$n and $f exist: remove the one not wanted, then renew again" >&2
    exit 1
  fi
  mv "$f" "$m/$n"
  echo "$n"
done
`, ssh.Quote(held), ssh.Quote(ManifestsDir))
}

// RestoreHeld puts back what an interrupted restart held, and returns the
// manifests it put back.
func (s *StaticPods) RestoreHeld(ctx context.Context) ([]string, error) {
	out, err := ssh.Output(ctx, s.Exec, RestoreHeldScript(s.Held))
	if err != nil {
		return nil, fmt.Errorf("%s: putting back the manifests held in %s: %w", s.Host, s.Held, err)
	}
	return strings.Fields(string(out)), nil
}

// Has tells whether the master runs the static pod: it has its manifest
// (a master of an external etcd has none for etcd).
func (s *StaticPods) Has(ctx context.Context, pod string) (bool, error) {
	out, err := ssh.Output(ctx, s.Exec, fmt.Sprintf("[ -e %s ] || echo absent", ssh.Quote(path.Join(ManifestsDir, pod+".yaml"))))
	if err != nil {
		return false, fmt.Errorf("%s: %w", s.Host, err)
	}
	return strings.TrimSpace(string(out)) != "absent", nil
}

// Restart restarts one static pod; false when the master has no manifest
// for it.
func (s *StaticPods) Restart(ctx context.Context, pod string) (bool, error) {
	manifest := path.Join(ManifestsDir, pod+".yaml")
	held := path.Join(s.Held, pod+".yaml")
	out, err := ssh.Output(ctx, s.Exec, fmt.Sprintf("if [ -e %[1]s ]; then mkdir -p %[2]s && mv %[1]s %[3]s; else echo absent; fi",
		ssh.Quote(manifest), ssh.Quote(s.Held), ssh.Quote(held)))
	if err != nil {
		return false, fmt.Errorf("%s: moving %s out: %w", s.Host, manifest, err)
	}
	if strings.TrimSpace(string(out)) == "absent" {
		return false, nil
	}
	putBack := func() error {
		// Even when the renew is cancelled (Ctrl-C): the pod must not
		// stay down for want of its manifest.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return s.Exec.Run(ctx, fmt.Sprintf("mv %s %s", ssh.Quote(held), ssh.Quote(manifest)), nil, nil)
	}
	err = s.until(ctx, pod+"'s container gone after its manifest left "+ManifestsDir, func() (bool, error) {
		ids, err := s.running(ctx, pod)
		return len(ids) == 0, err
	})
	if err != nil {
		if perr := putBack(); perr != nil {
			return true, fmt.Errorf("%w; putting its manifest back failed too (%v): it is in %s, hoist certs renew puts it back", err, perr, held)
		}
		return true, fmt.Errorf("%w (its manifest is back in %s)", err, ManifestsDir)
	}
	if err := putBack(); err != nil {
		return true, fmt.Errorf("%s: putting %s back: %w (it is in %s; hoist certs renew puts it back)", s.Host, manifest, err, held)
	}
	return true, s.until(ctx, pod+"'s container running again", func() (bool, error) {
		ids, err := s.running(ctx, pod)
		return len(ids) > 0, err
	})
}

// running lists the IDs of the pod's running containers, asked of the
// node's container runtime (crictl).
func (s *StaticPods) running(ctx context.Context, pod string) ([]string, error) {
	out, err := ssh.Output(ctx, s.Exec, "crictl ps -q --state running --label io.kubernetes.pod.namespace=kube-system --name "+
		ssh.Quote("^"+regexp.QuoteMeta(pod)+"$")+" </dev/null")
	if err != nil {
		return nil, fatal{fmt.Errorf("crictl ps: %w", err)}
	}
	return ContainerIDs(out)
}

// ContainerIDs reads the output of `crictl ps -q`: one hexadecimal
// container ID a line.
func ContainerIDs(out []byte) ([]string, error) {
	var ids []string
	for line := range strings.Lines(string(out)) {
		id := strings.TrimSpace(line)
		if id == "" {
			continue
		}
		if len(id) > 128 || strings.Trim(id, "0123456789abcdef") != "" {
			return nil, fatal{fmt.Errorf("crictl ps -q: %s is not a container ID", strconv.QuoteToASCII(truncate(id, 80)))}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// fatal is an error that ends a wait at once: asking again would not
// change the answer.
type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

// until polls cond until it holds, Timeout at most. A failed command
// counts as "not yet", except a fatal error or a connection that is gone.
func (s *StaticPods) until(ctx context.Context, what string, cond func() (bool, error)) error {
	poll := s.Poll
	if poll <= 0 {
		poll = time.Second
	}
	deadline := time.Now().Add(s.timeout())
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		var f fatal
		var exit *ssh.ExitError
		if errors.As(err, &f) || (err != nil && !errors.As(err, &exit)) {
			return fmt.Errorf("%s: waiting for %s: %w", s.Host, what, err)
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: no %s after %s", s.Host, what, s.timeout())
			if err != nil {
				msg += ": " + err.Error()
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s: %w", s.Host, what, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// WaitReady waits until the master's own API server answers /readyz, and
// its etcd too when it runs one.
func (s *StaticPods) WaitReady(ctx context.Context) error {
	if err := s.WaitAPIServer(ctx); err != nil {
		return err
	}
	return s.WaitEtcd(ctx)
}

// WaitAPIServer waits until the master's own API server answers /readyz
// with admin.conf's (renewed) certificate, asked at the address in its
// manifest rather than the cluster's endpoint, which may be another
// master. kubectl is the HTTP client: it is on every node the image set
// up, where curl may not be.
func (s *StaticPods) WaitAPIServer(ctx context.Context) error {
	manifest := path.Join(ManifestsDir, "kube-apiserver.yaml")
	data, err := ssh.Output(ctx, s.Exec, "cat "+ssh.Quote(manifest))
	if err != nil {
		return fmt.Errorf("%s: %s: %w", s.Host, manifest, err)
	}
	endpoint, err := APIServerEndpoint(data)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", s.Host, manifest, err)
	}
	readyz := fmt.Sprintf("kubectl --kubeconfig %s --server %s get --raw /readyz --request-timeout 10s </dev/null",
		AdminConf, ssh.Quote("https://"+endpoint))
	return s.until(ctx, "kube-apiserver /readyz at "+endpoint, func() (bool, error) {
		return true, s.Exec.Run(ctx, readyz, nil, nil)
	})
}

// WaitEtcd waits until the master's etcd answers /readyz (it is then a
// member of a cluster with a quorum) on its client port, through kubeadm's
// health-check client certificate: the renewed server and client
// certificates both at work. A master without an etcd manifest (an
// external etcd) has none to wait for.
func (s *StaticPods) WaitEtcd(ctx context.Context) error {
	if has, err := s.Has(ctx, "etcd"); err != nil || !has {
		return err
	}
	readyz := fmt.Sprintf("kubectl --kubeconfig /dev/null --server https://127.0.0.1:2379 --certificate-authority %[1]s/ca.crt "+
		"--client-certificate %[1]s/healthcheck-client.crt --client-key %[1]s/healthcheck-client.key get --raw /readyz --request-timeout 10s </dev/null", etcdPKI)
	return s.until(ctx, "etcd /readyz", func() (bool, error) {
		return true, s.Exec.Run(ctx, readyz, nil, nil)
	})
}

// apiServerEndpointAnnotation is where kubeadm writes, in the API server's
// manifest, the address and port it advertises.
const apiServerEndpointAnnotation = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"

// APIServerEndpoint reads the address:port a master's API server
// advertises from its static pod manifest (kubeadm's annotation).
func APIServerEndpoint(manifest []byte) (string, error) {
	if len(manifest) > maxExpirationSize {
		return "", fmt.Errorf("%d bytes, too large for a static pod manifest", len(manifest))
	}
	var m struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(manifest, &m); err != nil {
		return "", fmt.Errorf("not a static pod manifest: %w", err)
	}
	ep, ok := m.Metadata.Annotations[apiServerEndpointAnnotation]
	if !ok {
		return "", fmt.Errorf("no annotation %s (not written by kubeadm?)", apiServerEndpointAnnotation)
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", fmt.Errorf("annotation %s: %s: %v", apiServerEndpointAnnotation, strconv.QuoteToASCII(truncate(ep, 80)), err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return "", fmt.Errorf("annotation %s: %s is not an IP address", apiServerEndpointAnnotation, strconv.QuoteToASCII(truncate(host, 80)))
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("annotation %s: %s is not a port", apiServerEndpointAnnotation, strconv.QuoteToASCII(truncate(port, 80)))
	}
	return netip.AddrPortFrom(addr, uint16(p)).String(), nil
}

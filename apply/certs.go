package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.podman.io/storage/pkg/ioutils"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
)

// Certs checks and renews the kubeadm certificates of a cluster hoist
// brought up, on the masters of its Clusterfile.
type Certs struct {
	Cluster clusterfile.Cluster
	Options
	// Now is the clock expiry is judged by; nil is time.Now.
	Now func() time.Time
	// Timeout bounds each wait of a renew: a container gone, back, a
	// master ready. 0 is 5 minutes.
	Timeout time.Duration
}

func (c *Certs) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// checkTimeout bounds kubeadm's answer on one master: it asks the cluster
// for its configuration first, which a master whose network hangs would
// not answer.
const checkTimeout = 2 * time.Minute

// CertsReport is what the masters' kubeadm said of their certificates.
type CertsReport struct {
	Cluster string        `json:"cluster"`
	Checked time.Time     `json:"checked"`
	Masters []MasterCerts `json:"masters"`
}

// MasterCerts is one master's certificates, or why they are not known.
type MasterCerts struct {
	Host                   string       `json:"host"`
	Certificates           []CertExpiry `json:"certificates,omitempty"`
	CertificateAuthorities []CertExpiry `json:"certificateAuthorities,omitempty"`
	// Error: the master could not be asked (unreachable, no kubeadm),
	// or its answer was not kubeadm's.
	Error string `json:"error,omitempty"`
}

// CertExpiry is a certificate and the time it had left at the check.
type CertExpiry struct {
	kubeadm.Certificate
	// ResidualSeconds is negative once expired, 0 for a missing one.
	ResidualSeconds int64 `json:"residualSeconds"`
}

// Check asks every master's kubeadm for the expiry of its certificates,
// all masters at once. A master that cannot be asked has its Error: it
// does not stop the others.
func (c *Certs) Check(ctx context.Context) (*CertsReport, error) {
	masters := c.Cluster.Masters()
	if len(masters) == 0 {
		return nil, fmt.Errorf("cluster %s has no master", c.Cluster.Name)
	}
	r := &runner{c: c.Cluster, opts: c.Options}
	defer r.close()
	report := &CertsReport{Cluster: c.Cluster.Name, Checked: c.now().UTC().Truncate(time.Second), Masters: make([]MasterCerts, len(masters))}
	jobs := c.Jobs
	if jobs < 1 {
		jobs = len(masters)
	}
	var order []int
	for i := range masters {
		order = append(order, i)
	}
	ssh.ForEach(ctx, order, jobs, func(ctx context.Context, i int) error {
		m := masters[i]
		host := m.IP.String()
		report.Masters[i] = MasterCerts{Host: host}
		e, err := r.dial(ctx, m)
		if err != nil {
			report.Masters[i].Error = err.Error()
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		exp, err := kubeadm.CheckExpiration(ctx, e, host)
		if err != nil {
			report.Masters[i].Error = err.Error()
			return nil
		}
		report.Masters[i].Certificates = withResidual(exp.Certificates, report.Checked)
		report.Masters[i].CertificateAuthorities = withResidual(exp.CertificateAuthorities, report.Checked)
		return nil
	})
	return report, nil
}

func withResidual(certs []kubeadm.Certificate, now time.Time) []CertExpiry {
	out := make([]CertExpiry, len(certs))
	for i, c := range certs {
		out[i] = CertExpiry{Certificate: c}
		if !c.Missing {
			out[i].ResidualSeconds = int64(c.Expires.Sub(now) / time.Second)
		}
	}
	return out
}

// CertProblem is what a check found wrong: a certificate missing,
// expired or expiring soon, or a master not checked.
type CertProblem struct {
	Host string `json:"host"`
	// Certificate is empty for a master that could not be checked.
	Certificate string `json:"certificate,omitempty"`
	Message     string `json:"message"`
}

func (p CertProblem) String() string { return p.Host + ": " + p.Message }

// Problems lists, master by master, what makes the check fail: a master
// not checked, a certificate or authority missing, expired, or expiring
// within the given time. super-admin.conf missing is not one: kubeadm
// writes it on the master that ran kubeadm init only.
func (r *CertsReport) Problems(within time.Duration) []CertProblem {
	var out []CertProblem
	for _, m := range r.Masters {
		if m.Error != "" {
			out = append(out, CertProblem{Host: m.Host, Message: "not checked: " + strings.TrimPrefix(m.Error, m.Host+": ")})
			continue
		}
		check := func(c CertExpiry, kind, note string) {
			var msg string
			switch {
			case c.Missing && c.Name == kubeadm.SuperAdminConf && kind == "certificate":
				return
			case c.Missing:
				msg = fmt.Sprintf("%s %s is missing", kind, c.Name)
			case c.ResidualSeconds < 0:
				msg = fmt.Sprintf("%s %s expired on %s", kind, c.Name, c.Expires.Format(time.RFC3339))
			case time.Duration(c.ResidualSeconds)*time.Second < within:
				msg = fmt.Sprintf("%s %s expires in %s, on %s", kind, c.Name, ShortDuration(time.Duration(c.ResidualSeconds)*time.Second), c.Expires.Format(time.RFC3339))
			default:
				return
			}
			out = append(out, CertProblem{Host: m.Host, Certificate: c.Name, Message: msg + note})
		}
		for _, c := range m.Certificates {
			check(c, "certificate", "")
		}
		for _, c := range m.CertificateAuthorities {
			check(c, "certificate authority", " (kubeadm certs renew does not renew authorities)")
		}
	}
	return out
}

// ShortDuration is a time left as kubeadm shows it: its largest unit,
// rounded down (364d, 9y, 5h).
func ShortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "expired"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int64(d/time.Hour))
	case d < 365*24*time.Hour:
		return fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
	}
	return fmt.Sprintf("%dy", int64(d/(365*24*time.Hour)))
}

// The steps of a renew, as its progress and plan name them.
const (
	StepCertsRenew = "certs-renew" // kubeadm certs renew all
	StepRestart    = "restart"     // the static pods, then the master's readiness
)

// RenewPlan is what a renew does, master by master: what an unfinished
// renew did already is Done, and this one continues it.
type RenewPlan struct {
	Cluster string `json:"cluster"`
	// Continues is when the unfinished renew this one continues began.
	Continues time.Time   `json:"continues,omitzero"`
	Steps     []RenewStep `json:"steps"`
}

// RenewStep is one step on one master.
type RenewStep struct {
	Host string `json:"host"`
	Step string `json:"step"`
	What string `json:"what"`
	// Done is when the unfinished renew did it; zero for a step to do.
	Done time.Time `json:"done,omitzero"`
}

// Renew renews the certificates in two passes over the masters, one
// master at a time in each: first `kubeadm certs renew all` on every
// master, then on each master its static pods restarted one by one
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler: each
// manifest out of the kubelet's directory until its container is gone,
// then back), and the master's API server and etcd ready again before the
// next master's turn.
//
// Files first, on every master: the certificates of a cluster were made
// together and expire together, and once expired the masters' etcd
// members no longer accept each other; a master restarted with renewed
// certificates could not become ready while the others still present
// expired ones. New files on a running master change nothing until its
// components restart, except for those that read their certificates at
// each connection (etcd, the API server's serving certificate), which is
// what lets a restarted master reach the others.
//
// A master that fails stops the renew there. What each master finished
// is recorded (certs-renew.json in the cluster's state here): a renew run
// again continues the unfinished one, and puts back first any manifest an
// interrupted restart left out.
func (c *Certs) Renew(ctx context.Context) error {
	masters := c.Cluster.Masters()
	if len(masters) == 0 {
		return fmt.Errorf("cluster %s has no master", c.Cluster.Name)
	}
	unlock, err := lock(c.Root, c.Cluster.Name)
	if err != nil {
		return err
	}
	defer unlock()
	file := renewStateFile(c.Root, c.Cluster.Name)
	st, err := readRenewState(file)
	if err != nil {
		return err
	}
	if st == nil {
		st = &renewState{Started: c.now().UTC(), Masters: map[string]renewedMaster{}}
	}
	r := &runner{c: c.Cluster, opts: c.Options}
	defer r.close()
	held := path.Join(nodeDir(c.Cluster).State(), "held-manifests")
	rep := c.Reporter
	skip := func(ip, step string, done time.Time) {
		progress.Send(rep, progress.Event{Node: ip, Step: step, State: progress.StateSkipped,
			Message: "done " + done.Format(time.RFC3339) + " by the renew begun " + st.Started.Format(time.RFC3339)})
	}
	// run is one step on one master; its failure stops the renew.
	run := func(ip, step string, fn func() error) error {
		end := progress.Start(rep, ip, step)
		err := fn()
		end(err)
		if err != nil {
			progress.Send(rep, progress.Event{Node: ip, Step: step, State: progress.StateNodeFailed, Error: err.Error()})
			return fmt.Errorf("%w (hoist certs renew continues from there)", &NodeError{Node: ip, Step: step, Err: err})
		}
		return nil
	}
	// pods reaches a master, and first puts back what an interrupted
	// restart left out of its kubelet's directory.
	pods := func(m clusterfile.Node) (*kubeadm.StaticPods, error) {
		e, err := r.dial(ctx, m)
		if err != nil {
			return nil, err
		}
		p := &kubeadm.StaticPods{Exec: e, Host: m.IP.String(), Held: held, Timeout: c.Timeout}
		back, err := p.RestoreHeld(ctx)
		if len(back) > 0 {
			progress.Send(rep, progress.Event{Node: p.Host, State: progress.StateWarning,
				Message: fmt.Sprintf("put back in %s, left out by an interrupted renew: %s", kubeadm.ManifestsDir, strings.Join(back, ", "))})
		}
		return p, err
	}
	record := func(ip string, set func(*renewedMaster)) error {
		m := st.Masters[ip]
		set(&m)
		st.Masters[ip] = m
		return writeRenewState(file, st)
	}

	for _, m := range masters {
		ip := m.IP.String()
		if done := st.Masters[ip].Renewed; !done.IsZero() {
			skip(ip, StepCertsRenew, done)
			continue
		}
		if err := run(ip, StepCertsRenew, func() error {
			p, err := pods(m)
			if err != nil {
				return err
			}
			if err := p.Exec.Run(ctx, kubeadm.RenewAllCommand, nil, nil); err != nil {
				return fmt.Errorf("kubeadm certs renew all: %w", err)
			}
			return record(ip, func(r *renewedMaster) { r.Renewed = c.now().UTC() })
		}); err != nil {
			return err
		}
	}
	for _, m := range masters {
		ip := m.IP.String()
		if done := st.Masters[ip].Restarted; !done.IsZero() {
			skip(ip, StepRestart, done)
			continue
		}
		p, err := pods(m)
		if err != nil {
			return run(ip, StepRestart, func() error { return err })
		}
		for _, pod := range kubeadm.ControlPlanePods {
			step := StepRestart + " " + pod
			has, err := p.Has(ctx, pod)
			if err != nil {
				return run(ip, step, func() error { return err })
			}
			if !has {
				progress.Send(rep, progress.Event{Node: ip, Step: step, State: progress.StateSkipped, Message: "no manifest in " + kubeadm.ManifestsDir})
				continue
			}
			if err := run(ip, step, func() error {
				if _, err := p.Restart(ctx, pod); err != nil {
					return err
				}
				// The next component starts on one that serves.
				switch pod {
				case "etcd":
					return p.WaitEtcd(ctx)
				case "kube-apiserver":
					return p.WaitAPIServer(ctx)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if err := run(ip, "ready", func() error {
			if err := p.WaitReady(ctx); err != nil {
				return err
			}
			return record(ip, func(r *renewedMaster) { r.Restarted = c.now().UTC() })
		}); err != nil {
			return err
		}
		progress.Send(rep, progress.Event{Node: ip, State: progress.StateNodeDone})
	}
	// Finished: the next renew is a new one.
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RenewPlan is what Renew would do, from the Clusterfile and the record of
// an unfinished renew: no master is asked anything.
func (c *Certs) RenewPlan() (*RenewPlan, error) {
	masters := c.Cluster.Masters()
	if len(masters) == 0 {
		return nil, fmt.Errorf("cluster %s has no master", c.Cluster.Name)
	}
	st, err := readRenewState(renewStateFile(c.Root, c.Cluster.Name))
	if err != nil {
		return nil, err
	}
	plan := &RenewPlan{Cluster: c.Cluster.Name}
	if st != nil {
		plan.Continues = st.Started
	} else {
		st = &renewState{}
	}
	for _, m := range masters {
		ip := m.IP.String()
		plan.Steps = append(plan.Steps, RenewStep{Host: ip, Step: StepCertsRenew, What: "kubeadm certs renew all", Done: st.Masters[ip].Renewed})
	}
	restart := fmt.Sprintf("restart %s, one at a time (manifest out of %s until its container is gone, then back); then wait for kube-apiserver and etcd /readyz",
		strings.Join(kubeadm.ControlPlanePods, ", "), kubeadm.ManifestsDir)
	for _, m := range masters {
		ip := m.IP.String()
		plan.Steps = append(plan.Steps, RenewStep{Host: ip, Step: StepRestart, What: restart, Done: st.Masters[ip].Restarted})
	}
	return plan, nil
}

// renewState records what an unfinished renew did on each master.
type renewState struct {
	Started time.Time                `json:"started"`
	Masters map[string]renewedMaster `json:"masters"`
}

type renewedMaster struct {
	Renewed   time.Time `json:"renewed,omitzero"`
	Restarted time.Time `json:"restarted,omitzero"`
}

func renewStateFile(root, cluster string) string {
	return filepath.Join(layout.Local{Root: root}.Cluster(cluster).Dir, "certs-renew.json")
}

// readRenewState reads the record of an unfinished renew: nil when there
// is none. A record that is not hoist's is an error naming the file: a
// renew that ignored it could restart masters a person meant to skip.
func readRenewState(file string) (*renewState, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := parseRenewState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to renew every master from the start)", file, err)
	}
	return st, nil
}

func parseRenewState(data []byte) (*renewState, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st renewState
	if err := dec.Decode(&st); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON document")
	}
	if st.Started.IsZero() {
		return nil, errors.New("no start time")
	}
	if st.Masters == nil {
		st.Masters = map[string]renewedMaster{}
	}
	for ip, m := range st.Masters {
		if a, err := netip.ParseAddr(ip); err != nil || a.String() != ip {
			return nil, fmt.Errorf("%q is not a master's address", ip)
		}
		if m.Renewed.IsZero() && !m.Restarted.IsZero() {
			return nil, fmt.Errorf("%s: restarted, but not renewed", ip)
		}
	}
	return &st, nil
}

func writeRenewState(file string, st *renewState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return ioutils.AtomicWriteFile(file, data, 0o600)
}

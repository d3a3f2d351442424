package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/apply"
	"github.com/hoistdev/hoist/progress"
)

func newCertsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Check and renew the kubeadm certificates of a cluster hoist brought up",
	}
	cmd.AddCommand(newCertsCheckCommand(g), newCertsRenewCommand(g))
	return cmd
}

// certsFlags are the flags check and renew share.
type certsFlags struct {
	file      string
	output    string
	acceptNew bool
}

func (f *certsFlags) add(cmd *cobra.Command, outputs string) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "Clusterfile", "the Clusterfile")
	fl.StringVar(&f.output, "format", "", "output: "+outputs+" (as hoist's other commands)")
	// kubectl's spelling.
	fl.StringVarP(&f.output, "output", "o", "", "the same as --format")
	fl.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust hosts not yet in hoist's known_hosts")
}

func (f *certsFlags) certs(g *globalOptions) (*apply.Certs, error) {
	cf, err := loadClusterfile(f.file)
	if err != nil {
		return nil, err
	}
	return &apply.Certs{Cluster: cf.Cluster, Options: apply.Options{Root: g.root, AcceptNewHostKeys: f.acceptNew}}, nil
}

func newCertsCheckCommand(g *globalOptions) *cobra.Command {
	var f certsFlags
	within := days(30 * 24 * time.Hour)
	cmd := &cobra.Command{
		Use:   "check -f Clusterfile",
		Short: "Show when the kubeadm certificates of every master expire",
		Long: `Show when the kubeadm certificates of every master of the cluster expire,
as kubeadm certs check-expiration says on each of them, asked over SSH.

The exit status is non-zero, with a line on stderr for each, when a
certificate or authority expires within --warn-within or has expired, is
missing (except super-admin.conf, which kubeadm writes on the master that
ran kubeadm init only), or when a master cannot be checked: fit for a cron
job that alerts. hoist certs renew renews the certificates; authorities are
not renewed.`,
		Example: `  hoist certs check -f Clusterfile
  hoist certs check -f Clusterfile --warn-within 60d -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("format") && cmd.Flags().Changed("output") {
				return errors.New("--format and --output (-o) are one flag: give one")
			}
			if f.output != "" && f.output != "table" && f.output != "json" {
				return fmt.Errorf("--format %q: want table or json", f.output)
			}
			c, err := f.certs(g)
			if err != nil {
				return err
			}
			report, err := c.Check(cmd.Context())
			if err != nil {
				return err
			}
			problems := report.Problems(time.Duration(within))
			out := cmd.OutOrStdout()
			if f.output == "json" {
				if err := writeFormatted(out, "json", struct {
					*apply.CertsReport
					WarnWithin string              `json:"warnWithin"`
					Problems   []apply.CertProblem `json:"problems"`
				}{report, within.String(), append([]apply.CertProblem{}, problems...)}); err != nil {
					return err
				}
			} else if err := printCertsTable(out, report); err != nil {
				return err
			}
			return certsProblems(cmd.ErrOrStderr(), report, problems, within)
		},
	}
	f.add(cmd, "table (default) or json")
	cmd.Flags().Var(&within, "warn-within", "fail when a certificate expires within this time: days (30d) or a duration (12h)")
	return cmd
}

// certsProblems writes each problem on stderr and sums them up in the
// command's error.
func certsProblems(w io.Writer, report *apply.CertsReport, problems []apply.CertProblem, within days) error {
	if len(problems) == 0 {
		return nil
	}
	var unchecked, certs int
	for _, p := range problems {
		fmt.Fprintln(w, p)
		if p.Certificate == "" {
			unchecked++
		} else {
			certs++
		}
	}
	var parts []string
	if certs > 0 {
		parts = append(parts, fmt.Sprintf("%d certificate(s) expired, missing or expiring within %s", certs, within))
	}
	if unchecked > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d masters not checked", unchecked, len(report.Masters)))
	}
	return fmt.Errorf("cluster %s: %s", report.Cluster, strings.Join(parts, "; "))
}

// printCertsTable prints kubeadm's two tables, with the master first.
func printCertsTable(w io.Writer, report *apply.CertsReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED")
	for _, m := range report.Masters {
		for _, c := range m.Certificates {
			expires, residual := expiry(c)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Host, c.Name, expires, residual, c.CA, yesNo(c.ExternallyManaged))
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "HOST\tCERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
	for _, m := range report.Masters {
		for _, c := range m.CertificateAuthorities {
			expires, residual := expiry(c)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Host, c.Name, expires, residual, yesNo(c.ExternallyManaged))
		}
	}
	return tw.Flush()
}

func expiry(c apply.CertExpiry) (expires, residual string) {
	if c.Missing {
		return "missing", "-"
	}
	return c.Expires.Format("Jan 02, 2006 15:04 MST"), apply.ShortDuration(time.Duration(c.ResidualSeconds) * time.Second)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// days is a duration flag that also takes days (30d), which Go's
// durations do not.
type days time.Duration

func (d days) String() string {
	v := time.Duration(d)
	if v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return v.String()
}

func (d *days) Set(s string) error {
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = days(v)
	return nil
}

func (d *days) Type() string { return "duration" }

// parseDays reads a number of days (30d) or a Go duration (720h, 90m),
// not negative.
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil || v > 100*365 {
			return 0, fmt.Errorf("%q: want a number of days, such as 30d", s)
		}
		return time.Duration(v) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want days (30d) or a duration (12h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q: a negative time", s)
	}
	return v, nil
}

func newCertsRenewCommand(g *globalOptions) *cobra.Command {
	var f certsFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "renew -f Clusterfile",
		Short: "Renew the kubeadm certificates of every master, restarting the control plane one master at a time",
		Long: `Renew the kubeadm certificates of every master of the cluster, in two
passes over the masters, one master at a time in each:

  1. kubeadm certs renew all;
  2. the control plane's static pods restarted one by one (etcd,
     kube-apiserver, kube-controller-manager, kube-scheduler: each manifest
     moved out of /etc/kubernetes/manifests until the kubelet has stopped
     its container, then back), then the master's kube-apiserver and etcd
     ready again (/readyz) before the next master's turn.

Files first, on every master, so that a cluster whose certificates expired
(its masters' etcd members refuse each other) can come back. Workloads are
not touched, so renew asks nothing; --dry-run prints what it would do.

A master that fails stops the renew there, naming it. Running renew again
continues where it stopped, and first puts back any manifest an
interrupted restart left out. Certificate authorities are not renewed.`,
		Example: `  hoist certs renew -f Clusterfile --dry-run
  hoist certs renew -f Clusterfile && hoist certs check -f Clusterfile`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("format") && cmd.Flags().Changed("output") {
				return errors.New("--format and --output (-o) are one flag: give one")
			}
			if f.output != "" && f.output != "text" && f.output != "json" {
				return fmt.Errorf("--format %q: want text or json", f.output)
			}
			c, err := f.certs(g)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dryRun {
				plan, err := c.RenewPlan()
				if err != nil {
					return err
				}
				if f.output == "json" {
					return writeFormatted(out, "json", plan)
				}
				printRenewPlan(out, plan)
				return nil
			}
			var hosts []string
			for _, m := range c.Cluster.Masters() {
				hosts = append(hosts, m.IP.String())
			}
			rep, err := progress.New(out, f.output, hosts)
			if err != nil {
				return err
			}
			c.Reporter = rep
			err = c.Renew(cmd.Context())
			rep.Close()
			if err != nil {
				return err
			}
			if f.output != "json" {
				fmt.Fprintf(out, "certificates renewed on %d master(s): hoist certs check -f %s shows them\n", len(hosts), f.file)
			}
			return nil
		},
	}
	f.add(cmd, "text (default; live progress on a terminal) or json (JSON lines)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be done on each master, and do nothing")
	return cmd
}

func printRenewPlan(w io.Writer, plan *apply.RenewPlan) {
	if !plan.Continues.IsZero() {
		fmt.Fprintf(w, "continues the renew of cluster %s begun %s\n", plan.Cluster, plan.Continues.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTEP\tSTATE\tWHAT")
	for _, s := range plan.Steps {
		state := "to do"
		if !s.Done.IsZero() {
			state = "done " + s.Done.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Host, s.Step, state, s.What)
	}
	tw.Flush()
}

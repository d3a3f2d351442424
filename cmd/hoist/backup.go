package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/apply"
	"github.com/hoistdev/hoist/apply/backupfile"
	"github.com/hoistdev/hoist/progress"
)

func newBackupCommand(g *globalOptions) *cobra.Command {
	var file, output, format string
	var acceptNew bool
	cmd := &cobra.Command{
		Use:   "backup -f Clusterfile [-o FILE]",
		Short: "Save an etcd snapshot and the PKI of a cluster hoist brought up to a local file",
		Long: `Save the state of a Kubernetes cluster that hoist brought up to one local
file: an etcd snapshot (etcdctl snapshot save) and the master's
/etc/kubernetes/pki and admin.conf, from the first master of the
Clusterfile that answers and whose etcd is healthy.

The file (default <cluster>-<UTC time>.hoist-backup in the current
directory) holds the cluster's private keys and Secrets: it is written
mode 0600, whole or not at all. Keep it as you keep the keys.
hoist restore puts the snapshot back.

Progress goes to stderr; stdout says what was saved (--format json: the
backup's manifest).`,
		Example: `  hoist backup -f Clusterfile
  hoist backup -f Clusterfile -o /backups/prod.hoist-backup --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := oneSpelling(cmd, "file", "Clusterfile"); err != nil {
				return err
			}
			if format != "" && format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			cf, err := loadClusterfile(file)
			if err != nil {
				return err
			}
			var masters []string
			for _, m := range cf.Cluster.Masters() {
				masters = append(masters, m.IP.String())
			}
			rep, err := progress.New(cmd.ErrOrStderr(), format, masters)
			if err != nil {
				return err
			}
			b := &apply.Backup{Cluster: cf.Cluster, File: output,
				Options: apply.Options{Root: g.root, AcceptNewHostKeys: acceptNew, Reporter: rep}}
			m, err := b.Run(cmd.Context())
			rep.Close()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				return writeFormatted(out, "json", struct {
					File string `json:"file"`
					*backupfile.Manifest
				}{b.File, m})
			}
			_, err = fmt.Fprintf(out, "%s: cluster %s, Kubernetes %s, etcd snapshot of %s from master %s (%s)\n",
				b.File, m.Cluster, m.KubernetesVersion, humanSize(m.Snapshot.Size), m.Master, m.Time.Format("2006-01-02 15:04:05 MST"))
			return err
		},
	}
	f := cmd.Flags()
	addFileFlag(cmd, &file, "Clusterfile", "the Clusterfile of the cluster")
	f.StringVarP(&output, "output", "o", "", "the backup file (default <cluster>-<UTC time>"+apply.BackupExt+" in the current directory)")
	f.StringVar(&format, "format", "", "output: text (default) or json (progress as JSON lines on stderr, the manifest on stdout)")
	f.BoolVar(&acceptNew, "accept-new-host-keys", false, "trust hosts not yet in hoist's known_hosts")
	return cmd
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var file, from, format string
	var acceptNew, force, otherCluster, otherVersion bool
	cmd := &cobra.Command{
		Use:   "restore -f Clusterfile --from FILE",
		Short: "Restore the control plane of a cluster hoist brought up from a backup",
		Long: `Restore the etcd of a Kubernetes cluster that hoist brought up from a file
hoist backup made: everything written to the cluster since the backup is
lost. On every master of the Clusterfile (all must answer): the control
plane's static pods are stopped (their manifests move to
/etc/kubernetes/hoist-restore), the snapshot is restored (etcdutl, from
the cluster's image) as that master's member of a new etcd cluster of
every master, the old data kept beside it as
member.before-restore-<time>, and the control plane is started again;
then hoist waits for every etcd to be healthy and every API server ready.

The backup is checked first, whole, and refused when it is of another
cluster (another name or another cluster CA: --allow-other-cluster) or of
another Kubernetes minor version than the masters run and their image has
(--allow-other-version). A failed minor upgrade is rolled back by applying
the previous image, then restoring a backup taken before the upgrade.

It asks for confirmation on a terminal and refuses without one; --force
does not ask. A restore that stopped half-way is run again.`,
		Example: `  hoist restore -f Clusterfile --from prod-20261201T020304Z.hoist-backup
  hoist restore -f Clusterfile --from prod.hoist-backup --force --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := oneSpelling(cmd, "file", "Clusterfile"); err != nil {
				return err
			}
			if format != "" && format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			if from == "" {
				return errors.New("--from names the backup file to restore")
			}
			cf, err := loadClusterfile(file)
			if err != nil {
				return err
			}
			rs := &apply.Restore{Cluster: cf.Cluster, From: from, AllowOtherCluster: otherCluster, AllowOtherVersion: otherVersion,
				Options: apply.Options{Root: g.root, AcceptNewHostKeys: acceptNew}}
			defer rs.Close()
			m, err := rs.Check(cmd.Context())
			var mismatch *apply.MismatchError
			if errors.As(err, &mismatch) {
				return fmt.Errorf("%w (--allow-other-%s restores it all the same)", err, mismatch.What)
			}
			if err != nil {
				return err
			}
			masters := rs.Masters()
			if !force {
				question := fmt.Sprintf("Restore cluster %s from %s (Kubernetes %s, taken %s on %s)? Its control plane stops on %d master(s) (%s), and what was written to it since is lost.",
					cf.Cluster.Name, from, m.KubernetesVersion, m.Time.Format("2006-01-02 15:04:05 MST"), m.Master, len(masters), strings.Join(masters, ", "))
				if err := confirm(cmd, question, "--force"); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			rep, err := progress.New(out, format, masters)
			if err != nil {
				return err
			}
			rs.Reporter = rep
			err = rs.Run(cmd.Context())
			rep.Close()
			if err != nil {
				return err
			}
			if format != "json" {
				fmt.Fprintf(out, "cluster %s restored from %s (taken %s on %s) on %s\n",
					cf.Cluster.Name, from, m.Time.Format("2006-01-02 15:04:05 MST"), m.Master, strings.Join(masters, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	addFileFlag(cmd, &file, "Clusterfile", "the Clusterfile of the cluster")
	f.StringVar(&from, "from", "", "the backup file (made by hoist backup)")
	f.BoolVar(&force, "force", false, "do not ask for confirmation")
	f.BoolVar(&otherCluster, "allow-other-cluster", false, "restore a backup of another cluster (another name or cluster CA)")
	f.BoolVar(&otherVersion, "allow-other-version", false, "restore a backup of another Kubernetes minor version than the masters run")
	f.StringVar(&format, "format", "", "output: text (default; live progress on a terminal) or json (JSON lines)")
	f.BoolVar(&acceptNew, "accept-new-host-keys", false, "trust hosts not yet in hoist's known_hosts")
	return cmd
}

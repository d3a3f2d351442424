package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
)

// UpgradeRow is the row of apply's progress that reports what an upgrade
// of Kubernetes does before the nodes' steps.
const UpgradeRow = "upgrade"

// backupsDir is where apply keeps the etcd snapshot it takes before an
// upgrade of the cluster's Kubernetes: in the cluster's state under root.
func backupsDir(root, cluster string) string {
	return filepath.Join(layout.Local{Root: root}.Cluster(cluster).Dir, "backups")
}

// upgradeBackupName is the snapshot taken before upgrading cluster to
// version, at t.
func upgradeBackupName(cluster, version string, t time.Time) string {
	return cluster + "-before-" + version + "-" + t.UTC().Format("20060102T150405Z") + BackupExt
}

// beforeUpgrade does, before any node step of an upgrade, what kubeadm's
// upgrade guide asks first: every node of the Clusterfile answers (an
// upgrade must not leave one behind), every etcd member is healthy, and a
// backup of the cluster (etcd snapshot and PKI, as hoist backup takes it)
// is on this machine. A backup taken for this version by an apply that
// stopped half-way is kept: its cluster is the one from before the
// upgrade.
func (r *runner) beforeUpgrade(ctx context.Context) error {
	up := r.in.Upgrade
	var errs []string
	reached := ssh.ForEach(ctx, r.c.Nodes, r.opts.Jobs, func(ctx context.Context, n clusterfile.Node) error {
		_, err := r.dial(ctx, n)
		return err
	})
	for i, err := range reached {
		if err != nil {
			errs = append(errs, r.c.Nodes[i].IP.String()+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("upgrading Kubernetes %s -> %s needs every node, and these do not answer (nothing was changed):\n  %s", up.From, up.To, strings.Join(errs, "\n  "))
	}
	master, ip, err := r.master(ctx)
	if err != nil {
		return err
	}
	if err := etcdOf(r.c).ClusterHealthy(ctx, master); err != nil {
		return fmt.Errorf("upgrading Kubernetes %s -> %s needs every etcd member healthy, as %s's etcdctl endpoint health --cluster says they are not (nothing was changed): %w", up.From, up.To, ip, err)
	}
	dir := backupsDir(r.opts.Root, r.c.Name)
	kept, _ := filepath.Glob(filepath.Join(dir, r.c.Name+"-before-"+up.To+"-*"+BackupExt))
	if len(kept) > 0 {
		r.report(progress.Event{Node: UpgradeRow, Step: "backup " + kept[len(kept)-1], State: progress.StateSkipped})
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	file := filepath.Join(dir, upgradeBackupName(r.c.Name, up.To, time.Now()))
	end := progress.Start(r.opts.Reporter, UpgradeRow, "backup "+file)
	opts := r.opts
	opts.Reporter = nil
	_, err = (&Backup{Cluster: r.c, Options: opts, File: file}).Run(ctx)
	end(err)
	if err != nil {
		return fmt.Errorf("the backup before upgrading Kubernetes %s -> %s (nothing was changed): %w", up.From, up.To, err)
	}
	return nil
}

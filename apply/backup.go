package apply

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hoistdev/hoist/apply/backupfile"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/progress"
)

// hoist backup and hoist restore, for the kubeadm clusters hoist brings
// up: they work on etcd and the control plane's static pods, which only
// the kubeadm runtime has, so they use it directly rather than through
// step.Runtime.

// BackupExt ends the names of backup files.
const BackupExt = ".hoist-backup"

// DefaultBackupName is the file a backup of cluster taken at t goes to,
// in the current directory, unless another is given.
func DefaultBackupName(cluster string, t time.Time) string {
	return cluster + "-" + t.UTC().Format("20060102T150405Z") + BackupExt
}

// Steps of backup and restore, as progress reports them per master.
const (
	stepEtcdHealth = "etcd-health"
	stepSnapshot   = "snapshot"
	stepPKI        = "pki"
	stepUpload     = "upload"
	stepStop       = "stop"
	stepRestore    = "restore"
	stepStart      = "start"
	stepAPIReady   = "api-ready"
)

func etcdOf(c clusterfile.Cluster) *kubeadm.Etcd {
	dir := nodeDir(c)
	return &kubeadm.Etcd{Rootfs: dir.Rootfs(), State: dir.State()}
}

// Backup is hoist backup: an etcd snapshot and the PKI of a cluster hoist
// brought up, from the first of its masters that is reachable and whose
// etcd is healthy, in one local file.
type Backup struct {
	Cluster clusterfile.Cluster
	Options
	// File is where the backup goes: DefaultBackupName when empty. It is
	// written beside and renamed into place, mode 0600: it holds the
	// cluster's private keys and Secrets.
	File string
}

// Run takes the backup; it returns the backup's manifest.
func (b *Backup) Run(ctx context.Context) (*backupfile.Manifest, error) {
	c := b.Cluster
	masters := c.Masters()
	if len(masters) == 0 {
		return nil, fmt.Errorf("cluster %s has no master", c.Name)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if b.File == "" {
		b.File = DefaultBackupName(c.Name, now)
	}
	r := &runner{c: c, opts: b.Options}
	defer r.close()
	if err := r.tmp("backup-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmpDir)
	var failed []string
	for _, n := range masters {
		m, err := b.fromMaster(ctx, r, n, now)
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		failed = append(failed, err.Error())
	}
	return nil, fmt.Errorf("cluster %s: no master could be backed up:\n  %s", c.Name, strings.Join(failed, "\n  "))
}

// fromMaster backs the cluster up from one master: its etcd must be
// healthy (a member of a quorum: its snapshot is the cluster's latest
// state). The snapshot is kept in the run's directory under --root while
// it arrives: the manifest, which comes first in the file, needs its
// size and sha256.
func (b *Backup) fromMaster(ctx context.Context, r *runner, n clusterfile.Node, now time.Time) (*backupfile.Manifest, error) {
	ip := n.IP.String()
	etcd := etcdOf(b.Cluster)
	var e ssh.Executor
	var master *kubeadm.Master
	var files map[string][]byte
	snapshot := filepath.Join(r.tmpDir, "snapshot-"+ip+".db")
	defer os.Remove(snapshot)
	var size int64
	var sum string
	err := masterSteps(b.Reporter, ip,
		backupStep{"connect", func() (err error) { e, err = r.dial(ctx, n); return err }},
		backupStep{stepEtcdHealth, func() (err error) {
			if master, err = etcd.ReadMaster(ctx, e, ip); err != nil {
				return err
			}
			if master.Held {
				return fmt.Errorf("its control plane is stopped by a restore that did not finish (its manifests are in %s): run hoist restore again", kubeadm.RestoreHeldDir)
			}
			return etcd.Healthy(ctx, e)
		}},
		backupStep{stepSnapshot, func() error {
			f, err := os.OpenFile(snapshot, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			h := sha256.New()
			cw := &countingWriter{w: io.MultiWriter(f, h), report: func(bytes int64) {
				r.report(progress.Event{Node: ip, Step: stepSnapshot, State: progress.StateProgress, Bytes: bytes})
			}}
			bw := bufio.NewWriterSize(cw, 1<<20)
			err = etcd.Snapshot(ctx, e, bw)
			if err == nil {
				err = bw.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			size, sum = cw.n, hex.EncodeToString(h.Sum(nil))
			if err == nil && size == 0 {
				err = errors.New("etcdctl saved an empty snapshot")
			}
			return err
		}},
		backupStep{stepPKI, func() (err error) { files, err = etcd.PKI(ctx, e); return err }},
	)
	if err != nil {
		return nil, err
	}
	m := &backupfile.Manifest{
		Cluster: b.Cluster.Name, Image: b.Cluster.Image, ImageDigest: master.ImageDigest,
		KubernetesVersion: master.KubernetesVersion, EtcdImage: master.EtcdImage,
		Time: now, Master: ip, NodeName: master.Name,
		Snapshot: backupfile.File{Size: size, SHA256: sum},
	}
	if err := writeBackup(b.File, m, snapshot, files); err != nil {
		return nil, err
	}
	return m, nil
}

// backupStep is one reported step of a backup on a master.
type backupStep struct {
	name string
	run  func() error
}

// masterSteps runs steps in order on a master, each reported, and stops at
// the first that fails: its error is a NodeError naming the master and
// the step.
func masterSteps(rep progress.Reporter, node string, steps ...backupStep) error {
	start := time.Now()
	for _, s := range steps {
		end := progress.Start(rep, node, s.name)
		err := s.run()
		end(err)
		if err != nil {
			progress.Send(rep, progress.Event{Node: node, Step: s.name, State: progress.StateNodeFailed, Error: err.Error(), Elapsed: time.Since(start).Seconds()})
			return &NodeError{Node: node, Step: s.name, Err: err}
		}
	}
	progress.Send(rep, progress.Event{Node: node, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	return nil
}

// writeBackup writes the backup file whole or not at all: into a
// temporary file beside it (mode 0600), synced, then renamed over it.
func writeBackup(file string, m *backupfile.Manifest, snapshot string, files map[string][]byte) (err error) {
	snap, err := os.Open(snapshot)
	if err != nil {
		return err
	}
	defer snap.Close()
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup %s: %w", file, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := backupfile.Write(file, bw, m, bufio.NewReaderSize(snap, 1<<20), files); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("backup %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("backup %s: %w", file, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// countingWriter counts what goes through it, and reports it at most every
// 4 MiB.
type countingWriter struct {
	w        io.Writer
	n        int64
	reported int64
	report   func(bytes int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.report != nil && c.n-c.reported >= 4<<20 {
		c.reported = c.n
		c.report(c.n)
	}
	return n, err
}

// MismatchError is a backup that does not fit the cluster it would be
// restored on: of another cluster (What "cluster") or of another
// Kubernetes minor version (What "version").
type MismatchError struct {
	File, What, Detail string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("backup %s: %s", e.File, e.Detail)
}

// Restore is hoist restore: the etcd snapshot of a backup restored on
// every master of the cluster, as one new etcd cluster of them all,
// between the control plane stopped and started again. Check first (it
// takes the cluster's lock and changes nothing), then Run; Close releases
// the lock. A restore that failed half-way is run again whole.
type Restore struct {
	Cluster clusterfile.Cluster
	Options
	// From is the backup file.
	From string
	// AllowOtherCluster restores a backup of another cluster (another
	// name, or another cluster CA); AllowOtherVersion one of another
	// Kubernetes minor version than the masters run and their image has.
	AllowOtherCluster, AllowOtherVersion bool
	// Now is the clock of the names of the old data kept aside; nil is
	// time.Now.
	Now func() time.Time
	// Timeout bounds each wait on a master (containers stopped, etcd
	// healthy, API server ready); 0 is 5 minutes.
	Timeout time.Duration

	backup   *backupfile.Contents
	r        *runner
	snapshot string // the backup's snapshot, read out under --root
	masters  []restoreMaster
	unlock   func()
}

type restoreMaster struct {
	node   clusterfile.Node
	exec   ssh.Executor
	master *kubeadm.Master
}

// Check reads and checks the backup file (every member against its
// manifest), takes the cluster's lock, reaches every master and refuses,
// before anything changes, a backup that does not fit the cluster (a
// MismatchError, unless allowed) or a master that cannot take part.
func (rs *Restore) Check(ctx context.Context) (*backupfile.Manifest, error) {
	c := rs.Cluster
	masters := c.Masters()
	if len(masters) == 0 {
		return nil, fmt.Errorf("cluster %s has no master", c.Name)
	}
	var err error
	if rs.unlock, err = lock(rs.Root, c.Name); err != nil {
		return nil, err
	}
	rs.r = &runner{c: c, opts: rs.Options}
	if err := rs.r.tmp("restore-"); err != nil {
		return nil, err
	}
	rs.snapshot = filepath.Join(rs.r.tmpDir, "snapshot.db")
	if rs.backup, err = readBackup(rs.From, rs.snapshot); err != nil {
		return nil, err
	}
	m := &rs.backup.Manifest
	if m.Cluster != c.Name && !rs.AllowOtherCluster {
		return nil, &MismatchError{File: rs.From, What: "cluster", Detail: fmt.Sprintf("a backup of cluster %s, not %s", m.Cluster, c.Name)}
	}
	ca, ok := rs.backup.Files[backupfile.PKIDir+"ca.crt"]
	if !ok {
		return nil, fmt.Errorf("backup %s: no %sca.crt: the cluster it is of cannot be told", rs.From, backupfile.PKIDir)
	}
	rs.masters = make([]restoreMaster, len(masters))
	etcd := rs.etcd()
	errs := ssh.ForEach(ctx, masters, len(masters), func(ctx context.Context, n clusterfile.Node) error {
		ip := n.IP.String()
		e, err := rs.r.dial(ctx, n)
		if err != nil {
			return fmt.Errorf("%w (restore needs every master of the Clusterfile)", err)
		}
		master, err := etcd.ReadMaster(ctx, e, ip)
		if err == nil {
			// Checked here, not found missing once the control plane is down.
			err = etcd.HasTools(ctx, e, "etcdctl", "etcdutl")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ip, err)
		}
		for i := range masters {
			if masters[i].IP == n.IP {
				rs.masters[i] = restoreMaster{node: n, exec: e, master: master}
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	names, peers := map[string]string{}, map[string]string{}
	for _, rm := range rs.masters {
		mm := rm.master
		if other, dup := names[mm.Name]; dup {
			return nil, fmt.Errorf("masters %s and %s both have the etcd member name %s", other, mm.Host, mm.Name)
		}
		if other, dup := peers[mm.PeerURL]; dup {
			return nil, fmt.Errorf("masters %s and %s both have the etcd peer URL %s", other, mm.Host, mm.PeerURL)
		}
		names[mm.Name], peers[mm.PeerURL] = mm.Host, mm.Host
		if !bytes.Equal(bytes.TrimSpace(mm.CACert), bytes.TrimSpace(ca)) && !rs.AllowOtherCluster {
			return nil, &MismatchError{File: rs.From, What: "cluster", Detail: fmt.Sprintf(
				"its cluster CA (%sca.crt) is not the one of master %s (%s/ca.crt): a backup of another cluster, or of this one before it was made again", backupfile.PKIDir, mm.Host, kubeadm.PKIDir)}
		}
		if rs.AllowOtherVersion {
			continue
		}
		for _, v := range []struct{ version, what string }{
			{mm.KubernetesVersion, "runs a control plane of Kubernetes"},
			{mm.ImageVersion, "has the cluster image of Kubernetes"},
		} {
			if !kubeadm.SameMinor(v.version, m.KubernetesVersion) {
				return nil, &MismatchError{File: rs.From, What: "version", Detail: fmt.Sprintf(
					"a backup of Kubernetes %s, but master %s %s %s: apply an image of Kubernetes %s first", m.KubernetesVersion, mm.Host, v.what, v.version, minorOf(m.KubernetesVersion))}
			}
		}
	}
	return m, nil
}

// minorOf is v1.37 of v1.37.2.
func minorOf(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// Masters are the masters Check reached, in the Clusterfile's order.
func (rs *Restore) Masters() []string {
	var out []string
	for _, m := range rs.masters {
		out = append(out, m.master.Host)
	}
	return out
}

func (rs *Restore) etcd() *kubeadm.Etcd {
	etcd := etcdOf(rs.Cluster)
	etcd.Timeout = rs.Timeout
	return etcd
}

// readBackup reads the backup file, its snapshot into snapshot.
func readBackup(file, snapshot string) (*backupfile.Contents, error) {
	in, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.OpenFile(snapshot, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	c, err := backupfile.Read(file, bufio.NewReaderSize(in, 1<<20), bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Run restores the backup Check read on every master: the snapshot sent
// to each; then, every master finishing a phase before any starts the
// next, the control plane stopped, the snapshot restored as each one's
// member of the new etcd cluster, the control plane started; then it
// waits for every etcd to be healthy and every API server ready. A phase
// that fails on a master stops the restore there: run it again.
func (rs *Restore) Run(ctx context.Context) error {
	if rs.backup == nil {
		return errors.New("restore: Run before Check")
	}
	etcd := rs.etcd()
	now := time.Now
	if rs.Now != nil {
		now = rs.Now
	}
	stamp := now().UTC().Format("20060102T150405Z")
	token, err := restoreToken()
	if err != nil {
		return err
	}
	cluster := restoreCluster(rs.masters)
	size := rs.backup.Manifest.Snapshot.Size
	start := time.Now()
	phases := []struct {
		name string
		run  func(ctx context.Context, m restoreMaster) error
	}{
		{stepUpload, func(ctx context.Context, m restoreMaster) error {
			f, err := os.Open(rs.snapshot)
			if err != nil {
				return err
			}
			defer f.Close()
			host := m.master.Host
			cr := &countingReader{r: bufio.NewReaderSize(f, 1<<20), total: size, progress: func(sent, total int64) {
				rs.r.report(progress.Event{Node: host, Step: stepUpload, State: progress.StateProgress, Bytes: sent, Total: total})
			}}
			return etcd.Upload(ctx, m.exec, cr, size)
		}},
		{stepStop, func(ctx context.Context, m restoreMaster) error { return etcd.Stop(ctx, m.exec) }},
		{stepRestore, func(ctx context.Context, m restoreMaster) error {
			return etcd.RestoreMember(ctx, m.exec, m.master, cluster, token, stamp)
		}},
		{stepStart, func(ctx context.Context, m restoreMaster) error { return etcd.Start(ctx, m.exec) }},
		{stepEtcdHealth, func(ctx context.Context, m restoreMaster) error { return etcd.WaitHealthy(ctx, m.exec) }},
		{stepAPIReady, func(ctx context.Context, m restoreMaster) error { return etcd.WaitAPIServer(ctx, m.exec) }},
	}
	for _, p := range phases {
		errs := ssh.ForEach(ctx, rs.masters, len(rs.masters), func(ctx context.Context, m restoreMaster) error {
			host := m.master.Host
			end := progress.Start(rs.Reporter, host, p.name)
			err := p.run(ctx, m)
			end(err)
			if err != nil {
				rs.r.report(progress.Event{Node: host, Step: p.name, State: progress.StateNodeFailed, Error: err.Error(), Elapsed: time.Since(start).Seconds()})
				return &NodeError{Node: host, Step: p.name, Err: err}
			}
			return nil
		})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("restore of cluster %s stopped at %s (run hoist restore again to finish it): %w", rs.Cluster.Name, p.name, err)
		}
	}
	for _, m := range rs.masters {
		rs.r.report(progress.Event{Node: m.master.Host, State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	}
	return nil
}

// restoreCluster is the --initial-cluster of the restored etcd: every
// master's member, name=peer URL, sorted.
func restoreCluster(masters []restoreMaster) string {
	var members []string
	for _, m := range masters {
		members = append(members, m.master.Name+"="+m.master.PeerURL)
	}
	sort.Strings(members)
	return strings.Join(members, ",")
}

// restoreToken is a new etcd cluster's --initial-cluster-token: a
// restored cluster is a new one, which members of the old one must not
// mistake for theirs.
func restoreToken() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "hoist-restore-" + hex.EncodeToString(b), nil
}

// Close releases the cluster's lock, the connections and the snapshot
// read out of the backup.
func (rs *Restore) Close() {
	if rs.r != nil {
		rs.r.close()
		if rs.r.tmpDir != "" {
			os.RemoveAll(rs.r.tmpDir)
		}
		rs.r = nil
	}
	if rs.unlock != nil {
		rs.unlock()
		rs.unlock = nil
	}
}

package kubeadm

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/apply/ssh"
)

// The node-side half of hoist backup and restore, on a master of a kubeadm
// cluster with stacked etcd (kubeadm's default, and hoist's): the etcd
// snapshot and the PKI read from a master; the snapshot restored on every
// master, as one new etcd cluster of all of them, between the control
// plane's static pods stopped and started again. What a master says (its
// manifests, its tar of the PKI) is parsed strictly: it is not trusted.

// Files and directories of a master that backup and restore use.
const (
	PKIDir = "/etc/kubernetes/pki"
	// RestoreHeldDir keeps the control plane's manifests while a restore
	// has it stopped: out of the kubelet's sight, on the filesystem of
	// ManifestsDir so that a move is a rename. A restore that stopped
	// half-way leaves them there; the next one puts them back.
	RestoreHeldDir = "/etc/kubernetes/hoist-restore"
	// etcdEndpoint is the master's own etcd, where kubeadm makes it listen
	// and where its API server reaches it.
	etcdEndpoint = "https://127.0.0.1:2379"
	// restoreSnapshot is the snapshot a restore sends to a master, in the
	// cluster's state directory there.
	restoreSnapshot = "restore-snapshot.db"
)

// maxManifestSize is far above any static pod manifest kubeadm writes
// (about 4 KB); maxPKIFile and maxPKIFiles bound what a master's PKI tar
// may hold (certificates, keys and kubeconfigs of a few KB each).
const (
	maxManifestSize = 1 << 20
	maxPKIFile      = 1 << 20
	maxPKIFiles     = 1000
)

// Etcd is backup and restore on the masters of one cluster.
type Etcd struct {
	// Rootfs and State are the cluster's directories on every node: the
	// image's bin/etcdctl and bin/etcdutl are used, the snapshot passes
	// through State.
	Rootfs, State string
	// Timeout bounds each wait of a restore (containers gone, etcd
	// healthy, API server ready); 0 is 5 minutes.
	Timeout time.Duration
}

func (k *Etcd) timeout() time.Duration {
	if k.Timeout > 0 {
		return k.Timeout
	}
	return 5 * time.Minute
}

// Master is what backup and restore need to know of a master.
type Master struct {
	Host string // its address
	// Name, PeerURL and DataDir are its etcd member's (--name,
	// --initial-advertise-peer-urls) and data directory on the node.
	Name, PeerURL, DataDir string
	EtcdImage              string
	// KubernetesVersion is its control plane's (the kube-apiserver
	// manifest's image tag); ImageVersion the cluster image's on the node
	// (its bin/kubeadm's).
	KubernetesVersion, ImageVersion string
	// ImageDigest is the digest of the cluster image's tree on the node;
	// "" when it has no readable marker.
	ImageDigest string
	// CACert is the cluster CA (/etc/kubernetes/pki/ca.crt).
	CACert []byte
	// Held: a restore that did not finish holds its manifests in
	// RestoreHeldDir.
	Held bool
}

func (k *Etcd) bin(name string) string { return ssh.Quote(path.Join(k.Rootfs, "bin", name)) }

// etcdctl is the command line of the image's etcdctl against the master's
// own etcd, as its API server's client.
func (k *Etcd) etcdctl() string {
	return k.bin("etcdctl") + " --endpoints=" + etcdEndpoint + " --cacert=" + PKIDir + "/etcd/ca.crt" +
		" --cert=" + PKIDir + "/apiserver-etcd-client.crt --key=" + PKIDir + "/apiserver-etcd-client.key"
}

// needTools fails, naming the binary, when the cluster image on the node
// lacks one: images made before hoist backup have no etcdctl or etcdutl.
func (k *Etcd) needTools(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "[ -x %[1]s ] || { echo \"no %[1]s: the cluster's image has no %[2]s (images made before hoist backup and restore lack it): apply an image that has it first\" >&2; exit 1; }\n",
			k.bin(n), n)
	}
	return b.String()
}

// HasTools fails, naming the binary, when the cluster image on the master
// lacks one of names.
func (k *Etcd) HasTools(ctx context.Context, e ssh.Executor, names ...string) error {
	return e.Run(ctx, k.needTools(names...), nil, nil)
}

// ReadMaster asks a master, at address host, what backup and restore need
// of it.
func (k *Etcd) ReadMaster(ctx context.Context, e ssh.Executor, host string) (*Master, error) {
	m := &Master{Host: host}
	where, err := ssh.Output(ctx, e, fmt.Sprintf("if [ -f %[1]s/etcd.yaml ]; then echo live; elif [ -f %[2]s/etcd.yaml ]; then echo held; else echo none; fi",
		ManifestsDir, RestoreHeldDir))
	if err != nil {
		return nil, err
	}
	dir := ManifestsDir
	switch strings.TrimSpace(string(where)) {
	case "live":
	case "held":
		dir, m.Held = RestoreHeldDir, true
	default:
		return nil, fmt.Errorf("no %s/etcd.yaml: not a master of a kubeadm cluster with its own etcd (an external etcd is not backed up by hoist)", ManifestsDir)
	}
	read := func(file string) ([]byte, error) {
		return ssh.Output(ctx, e, "head -c "+strconv.Itoa(maxManifestSize+1)+" "+ssh.Quote(file))
	}
	file := path.Join(dir, "etcd.yaml")
	data, err := read(file)
	if err != nil {
		return nil, err
	}
	pod, err := ParseStaticPod(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if m.Name, m.PeerURL, m.DataDir, err = pod.EtcdMember(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m.EtcdImage = pod.Image
	file = path.Join(dir, "kube-apiserver.yaml")
	if data, err = read(file); err != nil {
		return nil, err
	}
	if m.KubernetesVersion, err = apiServerVersion(data); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out, err := ssh.Output(ctx, e, k.needTools("kubeadm")+k.bin("kubeadm")+" version -o short </dev/null")
	if err != nil {
		return nil, err
	}
	if m.ImageVersion, err = ParseVersion(string(out)); err != nil {
		return nil, fmt.Errorf("%s version: %w", path.Join(k.Rootfs, "bin/kubeadm"), err)
	}
	if out, err = ssh.Output(ctx, e, "head -c 200 "+ssh.Quote(path.Join(k.Rootfs, ".hoist-digest"))+" 2>/dev/null || true"); err != nil {
		return nil, err
	}
	m.ImageDigest = parseDigestMarker(string(out))
	if m.CACert, err = read(path.Join(PKIDir, "ca.crt")); err != nil {
		return nil, err
	}
	return m, nil
}

// StaticPod is what backup and restore read of a static pod manifest.
type StaticPod struct {
	Image string
	// Flags are the --name=value arguments of its container (command and
	// args), by name.
	Flags map[string]string
	// HostPaths maps the container's mount paths to the host paths of
	// their hostPath volumes.
	HostPaths map[string]string
}

// ParseStaticPod reads a static pod manifest kubeadm wrote: a Pod of one
// container.
func ParseStaticPod(data []byte) (*StaticPod, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("more than %d bytes: not a static pod manifest", maxManifestSize)
	}
	var pod struct {
		Kind string `json:"kind"`
		Spec struct {
			Containers []struct {
				Image        string   `json:"image"`
				Command      []string `json:"command"`
				Args         []string `json:"args"`
				VolumeMounts []struct {
					Name      string `json:"name"`
					MountPath string `json:"mountPath"`
				} `json:"volumeMounts"`
			} `json:"containers"`
			Volumes []struct {
				Name     string `json:"name"`
				HostPath *struct {
					Path string `json:"path"`
				} `json:"hostPath"`
			} `json:"volumes"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return nil, fmt.Errorf("not a static pod manifest: %w", err)
	}
	if pod.Kind != "Pod" || len(pod.Spec.Containers) != 1 {
		return nil, fmt.Errorf("not a static pod manifest of kubeadm's (a Pod of one container): kind %s, %d containers",
			strconv.QuoteToASCII(clip(pod.Kind, 40)), len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	p := &StaticPod{Image: c.Image, Flags: map[string]string{}, HostPaths: map[string]string{}}
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		if name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
			p.Flags[name] = value
		}
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	for _, m := range c.VolumeMounts {
		if hp, ok := hostPaths[m.Name]; ok {
			p.HostPaths[m.MountPath] = hp
		}
	}
	return p, nil
}

// memberName is what an etcd member's name may be here: kubeadm's node
// names (DNS-1123 subdomains), never a character that --initial-cluster
// gives a meaning (',' '=').
var memberName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

// EtcdMember reads an etcd manifest's member: its name, its peer URL and
// its data directory on the host.
func (p *StaticPod) EtcdMember() (name, peerURL, dataDir string, err error) {
	name = p.Flags["name"]
	if !memberName.MatchString(name) {
		return "", "", "", fmt.Errorf("etcd --name %s: not a node name", strconv.QuoteToASCII(clip(name, 80)))
	}
	peerURL = p.Flags["initial-advertise-peer-urls"]
	u, err := url.Parse(peerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		strings.ContainsAny(peerURL, ",= ") {
		return "", "", "", fmt.Errorf("etcd --initial-advertise-peer-urls %s: not one https URL of a host and port", strconv.QuoteToASCII(clip(peerURL, 80)))
	}
	inPod := p.Flags["data-dir"]
	dataDir, ok := p.HostPaths[inPod]
	if !ok {
		return "", "", "", fmt.Errorf("etcd --data-dir %s: not a hostPath volume of the pod", strconv.QuoteToASCII(clip(inPod, 80)))
	}
	if !path.IsAbs(dataDir) || path.Clean(dataDir) != dataDir || dataDir == "/" || strings.ContainsAny(dataDir, "\x00\n") {
		return "", "", "", fmt.Errorf("etcd data directory %s: not an absolute clean path", strconv.QuoteToASCII(clip(dataDir, 80)))
	}
	return name, peerURL, dataDir, nil
}

var version = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$`)

// ParseVersion reads a Kubernetes version as `kubeadm version -o short`
// prints it.
func ParseVersion(out string) (string, error) {
	v := strings.TrimSpace(out)
	if !version.MatchString(v) {
		return "", fmt.Errorf("%s is not a version such as v1.37.2", strconv.QuoteToASCII(clip(v, 80)))
	}
	return v, nil
}

// ImageVersion is the Kubernetes version of a control-plane image, its tag
// (kubeadm tags them with the version).
func ImageVersion(image string) (string, error) {
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || strings.Contains(name, "@") {
		return "", fmt.Errorf("image %s has no version tag", strconv.QuoteToASCII(clip(image, 200)))
	}
	v, err := ParseVersion(tag)
	if err != nil {
		return "", fmt.Errorf("image %s: tag %w", strconv.QuoteToASCII(clip(image, 200)), err)
	}
	return v, nil
}

// SameMinor tells whether two Kubernetes versions are of one minor
// release: data of one is served by the other.
func SameMinor(a, b string) bool {
	minor := func(v string) string {
		parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
		if len(parts) < 2 {
			return v
		}
		return parts[0] + "." + parts[1]
	}
	return minor(a) == minor(b)
}

var digestMarker = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// parseDigestMarker reads the digest a node's tree records (agent.Marker):
// the image's, "+registry" for a tree with the registry; "" when it is not
// one.
func parseDigestMarker(s string) string {
	d := strings.TrimSuffix(strings.TrimSpace(s), "+registry")
	if !digestMarker.MatchString(d) {
		return ""
	}
	return d
}

// Healthy tells whether the master's etcd is healthy: a member of a
// cluster that has a quorum (etcdctl's health check commits a proposal).
func (k *Etcd) Healthy(ctx context.Context, e ssh.Executor) error {
	return e.Run(ctx, k.needTools("etcdctl")+k.etcdctl()+" --command-timeout=10s endpoint health </dev/null >&2", nil, nil)
}

// ClusterHealthy tells whether every member of the master's etcd cluster
// is healthy, asked from that master: what an upgrade needs, as it
// restarts every member in turn.
func (k *Etcd) ClusterHealthy(ctx context.Context, e ssh.Executor) error {
	return e.Run(ctx, k.needTools("etcdctl")+k.etcdctl()+" --command-timeout=10s endpoint health --cluster </dev/null >&2", nil, nil)
}

// Snapshot saves a snapshot of the master's etcd in the state directory
// there, streams it to w, and removes it.
func (k *Etcd) Snapshot(ctx context.Context, e ssh.Executor, w io.Writer) error {
	script := fmt.Sprintf(`set -e
%sumask 077
mkdir -p %[2]s
f=%[2]s/backup-snapshot.$$.db
trap 'rm -f "$f" "$f.part"' EXIT
%[3]s snapshot save "$f" </dev/null >&2
cat "$f"
`, k.needTools("etcdctl"), ssh.Quote(k.State), k.etcdctl())
	return e.Run(ctx, script, nil, w)
}

// PKI reads the master's /etc/kubernetes/pki and admin.conf, by name in a
// backup (pki/..., admin.conf).
func (k *Etcd) PKI(ctx context.Context, e ssh.Executor) (map[string][]byte, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := e.Run(ctx, "cd /etc/kubernetes && tar -cf - pki admin.conf </dev/null", nil, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	files, err := ReadPKI(pr)
	// Whatever ReadPKI left unread, the command must not block on it.
	io.Copy(io.Discard, pr)
	if runErr := <-done; runErr != nil {
		return nil, runErr
	}
	if err != nil {
		return nil, fmt.Errorf("the tar of /etc/kubernetes/pki: %w", err)
	}
	return files, nil
}

// ReadPKI reads the tar a master sends of its /etc/kubernetes/pki and
// admin.conf: regular files (directories are skipped) of a clean name
// under pki/, or admin.conf, each at most maxPKIFile bytes.
func ReadPKI(r io.Reader) (map[string][]byte, error) {
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir {
			continue
		}
		rel, underPKI := strings.CutPrefix(name, "pki/")
		if name != "admin.conf" && (!underPKI || rel == "" || path.Clean(rel) != rel || !filepath.IsLocal(rel) || strings.ContainsAny(name, "\x00\n\\")) {
			return nil, fmt.Errorf("member %s: neither admin.conf nor a file under pki/", strconv.QuoteToASCII(clip(name, 200)))
		}
		if h.Typeflag != tar.TypeReg || sparse(h) {
			return nil, fmt.Errorf("member %s: not a regular file (type %q)", name, h.Typeflag)
		}
		if h.Size > maxPKIFile {
			return nil, fmt.Errorf("member %s: %d bytes, more than the %d of a certificate, key or kubeconfig", name, h.Size, maxPKIFile)
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("member %s: twice", name)
		}
		if len(files) == maxPKIFiles {
			return nil, fmt.Errorf("more than %d files", maxPKIFiles)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", name, err)
		}
		files[name] = data
	}
	if _, ok := files["pki/ca.crt"]; !ok {
		return nil, errors.New("no pki/ca.crt")
	}
	return files, nil
}

// sparse: a PAX sparse file is TypeReg, but its holes read as zeros that
// are nowhere in the stream.
func sparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// Upload sends the snapshot a restore restores to the master's state
// directory (written beside, checked for its size, renamed into place).
func (k *Etcd) Upload(ctx context.Context, e ssh.Executor, snapshot io.Reader, size int64) error {
	script := fmt.Sprintf(`set -e
umask 077
mkdir -p %[1]s
f=%[1]s/%[2]s
cat > "$f.part"
n=$(wc -c < "$f.part")
if [ "$n" -ne %[3]d ]; then rm -f "$f.part"; echo "the snapshot arrived cut short: $n of %[3]d bytes" >&2; exit 1; fi
mv -f "$f.part" "$f"
`, ssh.Quote(k.State), restoreSnapshot, size)
	return e.Run(ctx, script, snapshot, nil)
}

// restorePods are the static pods a restore stops: every one of the
// control plane, so that none works on the old data while etcd changes
// under it, and the controllers start again from the restored state.
var restorePods = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// controlPlaneNames is the crictl --name pattern of restorePods.
func controlPlaneNames() string {
	var names []string
	for _, p := range restorePods {
		names = append(names, regexp.QuoteMeta(p))
	}
	return "^(" + strings.Join(names, "|") + ")$"
}

// Stop stops the master's control plane: its static pods' manifests move
// to RestoreHeldDir (a manifest already there, from a restore that
// stopped half-way, stays), then it waits until the kubelet has stopped
// their containers. etcd's data directory is then free.
func (k *Etcd) Stop(ctx context.Context, e ssh.Executor) error {
	var move strings.Builder
	fmt.Fprintf(&move, "set -e\nmkdir -p %s\n", RestoreHeldDir)
	for _, p := range restorePods {
		fmt.Fprintf(&move, "if [ -f %[1]s/%[3]s.yaml ]; then mv -f %[1]s/%[3]s.yaml %[2]s/%[3]s.yaml; fi\n", ManifestsDir, RestoreHeldDir, p)
	}
	fmt.Fprintf(&move, "[ -f %[1]s/etcd.yaml ] || { echo \"no etcd.yaml in %[2]s or %[1]s\" >&2; exit 1; }\n", RestoreHeldDir, ManifestsDir)
	if err := e.Run(ctx, move.String(), nil, nil); err != nil {
		return fmt.Errorf("moving the control plane's manifests to %s: %w", RestoreHeldDir, err)
	}
	list := "crictl ps -q --state running --namespace '^kube-system$' --name " + ssh.Quote(controlPlaneNames()) + " </dev/null"
	return k.until(ctx, "the control plane's containers to stop", func() error {
		out, err := ssh.Output(ctx, e, list)
		if err != nil {
			return fmt.Errorf("crictl ps: %w", err)
		}
		ids, err := ContainerIDs(out)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			return fmt.Errorf("%d still running (is the kubelet running? hoist apply starts it)", len(ids))
		}
		return nil
	})
}

// RestoreMember restores the snapshot Upload sent into a new data
// directory for the master's member of the new etcd cluster of every
// master (cluster: name=peer URL, comma-separated; the same on each, as is
// token), then swaps it in for its data directory's member/: the old one
// stays beside it as member.before-restore-<stamp>. The snapshot is
// removed once restored. Run again after a failure, it restores again.
func (k *Etcd) RestoreMember(ctx context.Context, e ssh.Executor, m *Master, cluster, token, stamp string) error {
	q := ssh.Quote
	script := fmt.Sprintf(`set -e
%[1]ssnap=%[2]s
data=%[3]s
new="$data/hoist-restore.tmp"
[ -f "$snap" ] || { echo "no $snap to restore" >&2; exit 1; }
rm -rf "$new"
%[4]s snapshot restore "$snap" --name %[5]s --initial-cluster %[6]s --initial-cluster-token %[7]s \
  --initial-advertise-peer-urls %[8]s --data-dir "$new" --bump-revision 1000000000 --mark-compacted </dev/null >&2
if [ -e "$data/member" ]; then mv "$data/member" "$data/member.before-restore-"%[9]s; fi
mv "$new/member" "$data/member"
rm -rf "$new" "$snap"
`, k.needTools("etcdutl"), q(path.Join(k.State, restoreSnapshot)), q(m.DataDir), k.bin("etcdutl"),
		q(m.Name), q(cluster), q(token), q(m.PeerURL), q(stamp))
	if err := e.Run(ctx, script, nil, nil); err != nil {
		return fmt.Errorf("restoring etcd into %s: %w", m.DataDir, err)
	}
	return nil
}

// Start puts the control plane's manifests back: the kubelet starts its
// static pods again.
func (k *Etcd) Start(ctx context.Context, e ssh.Executor) error {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, p := range restorePods {
		fmt.Fprintf(&b, "if [ -f %[2]s/%[3]s.yaml ]; then mv -f %[2]s/%[3]s.yaml %[1]s/%[3]s.yaml; fi\n", ManifestsDir, RestoreHeldDir, p)
	}
	fmt.Fprintf(&b, "rmdir %s 2>/dev/null || true\n", RestoreHeldDir)
	if err := e.Run(ctx, b.String(), nil, nil); err != nil {
		return fmt.Errorf("putting the control plane's manifests back from %s: %w", RestoreHeldDir, err)
	}
	return nil
}

// WaitHealthy waits until the master's etcd is healthy.
func (k *Etcd) WaitHealthy(ctx context.Context, e ssh.Executor) error {
	return k.until(ctx, "etcd to be healthy", func() error { return k.Healthy(ctx, e) })
}

// WaitAPIServer waits until the master's own API server answers /readyz,
// at the address in its manifest (admin.conf names the cluster's
// endpoint, which may be another master).
func (k *Etcd) WaitAPIServer(ctx context.Context, e ssh.Executor) error {
	manifest := path.Join(ManifestsDir, "kube-apiserver.yaml")
	data, err := ssh.Output(ctx, e, "cat "+ssh.Quote(manifest))
	if err != nil {
		return fmt.Errorf("%s: %w", manifest, err)
	}
	endpoint, err := APIServerEndpoint(data)
	if err != nil {
		return fmt.Errorf("%s: %w", manifest, err)
	}
	readyz := fmt.Sprintf("kubectl --kubeconfig %s --server %s get --raw /readyz --request-timeout 10s </dev/null >&2", AdminConf, ssh.Quote("https://"+endpoint))
	return k.until(ctx, "kube-apiserver to answer /readyz at "+endpoint, func() error { return e.Run(ctx, readyz, nil, nil) })
}

// until polls cond every 2 seconds until it holds, timeout() at most; the
// error says what was waited for, and cond's last answer. A connection
// that is gone ends the wait at once.
func (k *Etcd) until(ctx context.Context, what string, cond func() error) error {
	deadline := time.Now().Add(k.timeout())
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var exit *ssh.ExitError
		var se *ssh.Error
		if errors.As(err, &se) && !errors.As(err, &exit) {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %w", k.timeout(), what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

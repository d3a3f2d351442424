// Package kubeadm brings a Kubernetes cluster up on nodes with kubeadm,
// from a cluster image that ships the node binaries, the image's
// scripts/init-node.sh and scripts/clean-node.sh, and its kubeadm defaults
// (etc/kubeadm.yaml). Each function does one step on one node over SSH;
// the order of steps across nodes and the journal are the apply engine's.
// It never reads secrets from command output meant for people: join
// tokens come from `kubeadm token create`, the CA hash from the CA, the
// certificate key is made here.
package kubeadm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hoistdev/hoist/apply/envtemplate"
	"github.com/hoistdev/hoist/apply/ssh"
)

// Files of the image's rootfs this runtime uses.
const (
	DefaultsFile = "etc/kubeadm.yaml"
	InitScript   = "scripts/init-node.sh"
	CleanScript  = "scripts/clean-node.sh"
)

// Files kubeadm writes on nodes.
const (
	AdminConf = "/etc/kubernetes/admin.conf"
	CACert    = "/etc/kubernetes/pki/ca.crt"
	CNIConf   = "/etc/cni/net.d/10-hoist.conflist"
)

// RouteProto marks the routes to other nodes' pods that Network adds, so
// that they can be replaced as a set (`ip route flush proto 77`).
const RouteProto = "77"

// IsKubernetes tells whether an image's rootfs brings up Kubernetes: it
// has etc/kubeadm.yaml, or a template of it.
func IsKubernetes(rootfs string) bool {
	for _, f := range []string{DefaultsFile, DefaultsFile + ".tmpl"} {
		if _, err := os.Stat(filepath.Join(rootfs, f)); err == nil {
			return true
		}
	}
	return false
}

// defaults reads the image's kubeadm defaults: etc/kubeadm.yaml.tmpl
// rendered with the env when the image has one (sealer's images template
// it; the nodes get it rendered over etc/kubeadm.yaml), else the file.
func defaults(rootfs string, env map[string]string) (name string, data []byte, err error) {
	tmpl := DefaultsFile + ".tmpl"
	text, err := os.ReadFile(filepath.Join(rootfs, tmpl))
	if errors.Is(err, fs.ErrNotExist) {
		data, err := os.ReadFile(filepath.Join(rootfs, DefaultsFile))
		return DefaultsFile, data, err
	}
	if err != nil {
		return tmpl, nil, err
	}
	data, err = envtemplate.Render(tmpl, text, env)
	return tmpl, data, err
}

// Runtime is the Kubernetes runtime of one cluster.
type Runtime struct {
	Config *Config
	// Rootfs and State are the cluster's directories on every node; Hoist
	// is hoist's binary there.
	Rootfs, State, Hoist string
	// ReadyTimeout bounds the wait for a node to be Ready.
	ReadyTimeout time.Duration
	// OwnCNI: the image has a CNI app; without one, hoist gives the
	// cluster its pod network.
	OwnCNI bool
}

// Load reads the image's kubeadm defaults (its etc/kubeadm.yaml, or the
// template of it rendered with the image's ENV and the Clusterfile's env
// over it, as the rootfs's templates are) and lays over them, in this
// order, the networks of the image's ENV and of the Clusterfile's env
// (PodCIDR, SvcCIDR: see SetNetworks), then the Clusterfile's kubeadm
// documents.
func Load(rootfs, clusterfile string, imageEnv, env map[string]string, docs []json.RawMessage) (*Config, error) {
	all := maps.Clone(imageEnv)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, env)
	name, data, err := defaults(rootfs, all)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig("image "+name, data)
	if err != nil {
		return nil, err
	}
	if err := c.SetNetworks("image ENV", imageEnv); err != nil {
		return nil, err
	}
	if err := c.SetNetworks(clusterfile+": spec.env", env); err != nil {
		return nil, err
	}
	if err := c.Merge(clusterfile, docs); err != nil {
		return nil, err
	}
	return c, nil
}

func (k *Runtime) kubectl(args string) string {
	return "kubectl --kubeconfig " + AdminConf + " " + args
}

// PrepareNode runs the image's init-node.sh: binaries in place, containerd
// configured for the registry mirrors and started, the kubelet service
// waiting for kubeadm. env is exported to it.
func (k *Runtime) PrepareNode(ctx context.Context, e ssh.Executor, env string) error {
	q := ssh.Quote
	script := fmt.Sprintf("cd %s\n%sexport HOIST=%s HOIST_STATE=%s\nexec 1>&2\nexec sh %s",
		q(k.Rootfs), env, q(k.Hoist), q(k.State), q(InitScript))
	return e.Run(ctx, script, nil, nil)
}

// resetIfStarted undoes what a kubeadm init or join that did not finish
// left behind, so that it can run again.
func (k *Runtime) resetIfStarted() string {
	return fmt.Sprintf(`if [ -e /etc/kubernetes/kubelet.conf ] || [ -e /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
  %[1]s node service stop kubelet --state-dir %[2]s
  kubeadm reset -f >&2
  %[1]s node service start kubelet --state-dir %[2]s -- /usr/bin/kubelet-start
fi
`, ssh.Quote(k.Hoist), ssh.Quote(k.State))
}

// Init runs kubeadm init on the first master.
func (k *Runtime) Init(ctx context.Context, e ssh.Executor, ip string) error {
	key, err := NewCertificateKey()
	if err != nil {
		return err
	}
	cfg, err := k.Config.Init(ip, key)
	if err != nil {
		return err
	}
	return k.runWithConfig(ctx, e, "kubeadm-init.yaml", cfg, func(file string) string {
		return k.resetIfStarted() + "kubeadm init --config " + file + " --upload-certs --skip-token-print >&2"
	})
}

// runWithConfig writes a kubeadm configuration, which holds secrets (a
// certificate key, a join token), to the node's state directory, runs the
// script that command makes of the file's (quoted) path, and removes the
// file whatever the script's outcome.
func (k *Runtime) runWithConfig(ctx context.Context, e ssh.Executor, name string, cfg []byte, command func(file string) string) error {
	file := path.Join(k.State, name)
	if err := ssh.WriteFile(ctx, e, file, cfg); err != nil {
		return err
	}
	q := ssh.Quote(file)
	return e.Run(ctx, command(q)+"; s=$?; rm -f "+q+"; exit $s", nil, nil)
}

// JoinInput is what a node needs to join: secrets, kept in memory.
type JoinInput struct {
	Endpoint, Token, CACertHash, CertificateKey string
}

// NewJoinInput asks a master of the cluster for its endpoint, a fresh
// bootstrap token and the CA's hash; for a master, it also uploads the
// control-plane certificates again under a new key (the uploaded ones
// expire after two hours). The endpoint is the cluster's own (its admin
// kubeconfig's server): a cluster made before hoist named its endpoint
// keeps its first master's address.
func (k *Runtime) NewJoinInput(ctx context.Context, master ssh.Executor, masterIP string, controlPlane bool) (JoinInput, error) {
	var in JoinInput
	admin, err := ssh.Output(ctx, master, "cat "+AdminConf)
	if err != nil {
		return in, err
	}
	if in.Endpoint, err = serverOf(admin); err != nil {
		return in, fmt.Errorf("%s: %w", AdminConf, err)
	}
	out, err := ssh.Output(ctx, master, "kubeadm token create --ttl 30m")
	if err != nil {
		return in, fmt.Errorf("kubeadm token create: %w", err)
	}
	in.Token = strings.TrimSpace(string(out))
	ca, err := ssh.Output(ctx, master, "cat "+CACert)
	if err != nil {
		return in, err
	}
	if in.CACertHash, err = CACertHash(ca); err != nil {
		return in, err
	}
	if !controlPlane {
		return in, nil
	}
	if in.CertificateKey, err = NewCertificateKey(); err != nil {
		return in, err
	}
	cfg, err := k.Config.Init(masterIP, in.CertificateKey)
	if err != nil {
		return in, err
	}
	err = k.runWithConfig(ctx, master, "kubeadm-upload-certs.yaml", cfg, func(file string) string {
		return "kubeadm init phase upload-certs --upload-certs --config " + file + " >/dev/null"
	})
	if err != nil {
		return in, fmt.Errorf("kubeadm init phase upload-certs: %w", err)
	}
	return in, nil
}

// Join runs kubeadm join on a node.
func (k *Runtime) Join(ctx context.Context, e ssh.Executor, ip string, in JoinInput) error {
	cfg, err := k.Config.Join(ip, in.Endpoint, in.Token, in.CACertHash, in.CertificateKey)
	if err != nil {
		return err
	}
	return k.runWithConfig(ctx, e, "kubeadm-join.yaml", cfg, func(file string) string {
		return k.resetIfStarted() + "kubeadm join --config " + file + " >&2"
	})
}

// NodeInfo is what the cluster says of a node.
type NodeInfo struct {
	Name, IP, PodCIDR string
	Ready             bool
	Message           string // the Ready condition's message
	// KubeletVersion is what the node's kubelet says it runs.
	KubeletVersion string
	// Unschedulable: the node is cordoned.
	Unschedulable bool
}

// Nodes lists the cluster's nodes, asked on a master.
func (k *Runtime) Nodes(ctx context.Context, master ssh.Executor) ([]NodeInfo, error) {
	out, err := ssh.Output(ctx, master, k.kubectl("get nodes -o json"))
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				PodCIDR       string
				Unschedulable bool
			}
			Status struct {
				Addresses  []struct{ Type, Address string }
				Conditions []struct{ Type, Status, Message string }
				NodeInfo   struct{ KubeletVersion string }
			}
		}
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w", err)
	}
	var nodes []NodeInfo
	for _, it := range list.Items {
		n := NodeInfo{Name: it.Metadata.Name, PodCIDR: it.Spec.PodCIDR, Unschedulable: it.Spec.Unschedulable, KubeletVersion: it.Status.NodeInfo.KubeletVersion}
		for _, a := range it.Status.Addresses {
			if a.Type == "InternalIP" {
				n.IP = a.Address
			}
		}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				n.Ready, n.Message = c.Status == "True", c.Message
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// find returns the node with this address.
func find(nodes []NodeInfo, ip string) (NodeInfo, bool) {
	i := slices.IndexFunc(nodes, func(n NodeInfo) bool { return n.IP == ip })
	if i < 0 {
		return NodeInfo{}, false
	}
	return nodes[i], true
}

// node is what the cluster says of the node with this address, which must
// be in it.
func (k *Runtime) node(ctx context.Context, master ssh.Executor, ip string) (NodeInfo, error) {
	nodes, err := k.Nodes(ctx, master)
	if err != nil {
		return NodeInfo{}, err
	}
	n, ok := find(nodes, ip)
	if !ok {
		return NodeInfo{}, fmt.Errorf("node %s is not in the cluster", ip)
	}
	return n, nil
}

// WaitRegistered waits until the nodes with these addresses are in the
// cluster with a pod network range, and returns every node known then.
func (k *Runtime) WaitRegistered(ctx context.Context, master ssh.Executor, ips []string) ([]NodeInfo, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		nodes, err := k.Nodes(ctx, master)
		missing := ""
		for _, ip := range ips {
			if n, ok := find(nodes, ip); !ok || n.PodCIDR == "" {
				missing = ip
				break
			}
		}
		if err == nil && missing == "" {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("node %s has not registered with a pod network range (spec.podCIDR) after 2m: is networking.podSubnet set?", missing)
			}
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// Network gives a node hoist's own pod network: a bridge with the node's
// pod range, and a route to every other node's range through that node
// (nodes on one L2 network, as kubenet did). Used when the image has no
// CNI app.
func (k *Runtime) Network(ctx context.Context, e ssh.Executor, ip string, nodes []NodeInfo) error {
	self, ok := find(nodes, ip)
	if !ok || self.PodCIDR == "" {
		return fmt.Errorf("node %s has no pod network range", ip)
	}
	conf, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "hoist",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "hoist0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": []any{[]any{map[string]any{"subnet": self.PodCIDR}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}, "", "  ")
	if err != nil {
		return err
	}
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\nmkdir -p %s\ncat > %s.tmp\nmv -f %[2]s.tmp %[2]s\n", path.Dir(CNIConf), CNIConf)
	fmt.Fprintf(&script, "ip route flush proto %s\n", RouteProto)
	others := slices.Clone(nodes)
	sort.Slice(others, func(i, j int) bool { return others[i].IP < others[j].IP })
	for _, n := range others {
		if n.IP == ip || n.PodCIDR == "" || n.IP == "" {
			continue
		}
		fmt.Fprintf(&script, "ip route replace %s via %s proto %s\n", ssh.Quote(n.PodCIDR), ssh.Quote(n.IP), RouteProto)
	}
	return e.Run(ctx, script.String(), bytes.NewReader(append(conf, '\n')), nil)
}

// WaitReady waits for the node to be Ready; on timeout the error names it
// and ends with its kubelet's last log lines.
func (k *Runtime) WaitReady(ctx context.Context, master, node ssh.Executor, ip string) error {
	return k.waitNode(ctx, master, node, ip, "Ready", func(n NodeInfo) bool { return n.Ready })
}

// waitNode waits until the cluster says of the node with this address
// what ok accepts (state says what, for the error); on timeout the error
// names it and ends with its kubelet's last log lines.
func (k *Runtime) waitNode(ctx context.Context, master, node ssh.Executor, ip, state string, ok func(NodeInfo) bool) error {
	var last NodeInfo
	return k.untilKubelet(ctx, node, func() (bool, error) {
		nodes, err := k.Nodes(ctx, master)
		if err != nil {
			return false, nil
		}
		n, found := find(nodes, ip)
		if found {
			last = n
		}
		return found && ok(n), nil
	}, func(timeout time.Duration) string {
		return fmt.Sprintf("node %s (%s) is not %s after %s: %s", ip, last.Name, state, timeout, last.Message)
	})
}

// untilKubelet runs check every 2 seconds until it is done (or fails), for
// the runtime's ReadyTimeout (5 minutes by default); then the error is
// timedOut's, with the last lines of the node's kubelet log.
func (k *Runtime) untilKubelet(ctx context.Context, node ssh.Executor, check func() (bool, error), timedOut func(time.Duration) string) error {
	timeout := k.ReadyTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		done, err := check()
		if done || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			logs, _ := ssh.Output(ctx, node, k.kubeletLog(20))
			return fmt.Errorf("%s\nlast lines of its kubelet log:\n%s", timedOut(timeout), strings.TrimSpace(string(logs)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (k *Runtime) kubeletLog(lines int) string {
	return fmt.Sprintf("if [ -f %[1]s/kubelet.log ]; then tail -n %[2]d %[1]s/kubelet.log; else journalctl -u kubelet -n %[2]d --no-pager; fi 2>&1",
		ssh.Quote(k.State), lines)
}

// Configure sets the node's labels and taints from the Clusterfile
// (taints as kubectl writes them: key=value:Effect, or key:Effect- to
// remove one).
func (k *Runtime) Configure(ctx context.Context, master ssh.Executor, ip string, labels map[string]string, taints []string) error {
	n, err := k.node(ctx, master, ip)
	if err != nil {
		return err
	}
	if len(labels) > 0 {
		keys := make([]string, 0, len(labels))
		for key := range labels {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		args := []string{"label", "node", ssh.Quote(n.Name), "--overwrite"}
		for _, key := range keys {
			args = append(args, ssh.Quote(key+"="+labels[key]))
		}
		if err := master.Run(ctx, k.kubectl(strings.Join(args, " "))+" >/dev/null", nil, nil); err != nil {
			return fmt.Errorf("labels of node %s: %w", n.Name, err)
		}
	}
	if len(taints) > 0 {
		args := []string{"taint", "node", ssh.Quote(n.Name), "--overwrite"}
		for _, t := range taints {
			args = append(args, ssh.Quote(t))
		}
		// Removing a taint that is not there is not an error here.
		if err := master.Run(ctx, k.kubectl(strings.Join(args, " "))+" >/dev/null", nil, nil); err != nil && !strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("taints of node %s: %w", n.Name, err)
		}
	}
	return nil
}

// Drain moves the pods off the node with this address, deletes it from
// the cluster and takes its etcd member out (RemoveMember); a node the
// cluster does not know is already gone, but for its member perhaps.
func (k *Runtime) Drain(ctx context.Context, master ssh.Executor, ip string) error {
	nodes, err := k.Nodes(ctx, master)
	if err != nil {
		return err
	}
	n, ok := find(nodes, ip)
	if !ok {
		return k.RemoveMember(ctx, master, ip)
	}
	// A node that is not Ready (a dead machine) cannot let its pods go:
	// deleting it is what moves them. One that died too recently to be
	// marked so (the node lifecycle controller waits out a grace period)
	// never confirms its pods' deletion either: the node is deleted
	// anyway, so pods still terminating a minute after their eviction are
	// not waited for.
	if n.Ready {
		if err := k.drain(ctx, master, n.Name, "--skip-wait-for-delete-timeout=60"); err != nil {
			return err
		}
	}
	if err := master.Run(ctx, k.kubectl("delete node "+ssh.Quote(n.Name)+" >&2"), nil, nil); err != nil {
		return fmt.Errorf("delete node %s: %w", n.Name, err)
	}
	return k.RemoveMember(ctx, master, ip)
}

// drain cordons the node and evicts its pods (DaemonSets' stay), waiting
// as long as a PodDisruptionBudget holds an eviction back, within 3
// minutes; flags are kubectl drain's, added.
func (k *Runtime) drain(ctx context.Context, master ssh.Executor, name string, flags ...string) error {
	args := append([]string{"drain", ssh.Quote(name), "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=180s"}, flags...)
	if err := master.Run(ctx, k.kubectl(strings.Join(args, " "))+" >&2", nil, nil); err != nil {
		return fmt.Errorf("drain %s: %w", name, err)
	}
	return nil
}

// CACertHash is kubeadm's discovery hash of a CA certificate: the sha256
// of its public key info.
func CACertHash(pemData []byte) (string, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return "", errors.New("the cluster CA (" + CACert + ") is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("the cluster CA: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// NewCertificateKey makes the key kubeadm encrypts uploaded control-plane
// certificates with (32 bytes, hex).
func NewCertificateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

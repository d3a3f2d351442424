package kubeadm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Kinds of the documents a kubeadm configuration is made of, in the order
// they are written.
const (
	KindInit      = "InitConfiguration"
	KindCluster   = "ClusterConfiguration"
	KindJoin      = "JoinConfiguration"
	KindKubelet   = "KubeletConfiguration"
	KindKubeProxy = "KubeProxyConfiguration"
)

var kinds = []string{KindInit, KindCluster, KindKubelet, KindKubeProxy, KindJoin}

// DefaultCRISocket is containerd's, as the image's init-node.sh runs it.
const DefaultCRISocket = "unix:///run/containerd/containerd.sock"

// Config is a kubeadm configuration: one document per kind.
type Config struct {
	docs map[string]map[string]any
}

// ParseConfig reads the documents of a kubeadm configuration (the image's
// etc/kubeadm.yaml). name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	c := &Config{docs: map[string]map[string]any{}}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if m == nil {
			doc--
			continue
		}
		if err := c.merge(m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
	}
	return c, nil
}

// Merge lays documents over the configuration: maps are merged key by
// key, anything else (lists included) replaces what was there, as
// kustomize's strategic merge does for unkeyed lists. Documents of
// kubeadm.k8s.io/v1beta2 and v1beta3 are converted to v1beta4 first
// (convert.go).
func (c *Config) Merge(name string, docs []json.RawMessage) error {
	for i, raw := range docs {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: kubeadm document %d: %w", name, i+1, err)
		}
		converted, err := convert(m)
		if err != nil {
			return fmt.Errorf("%s: kubeadm document %d%s: %w", name, i+1, describe(m), err)
		}
		for _, d := range converted {
			if err := c.merge(d); err != nil {
				return fmt.Errorf("%s: kubeadm document %d%s: %w", name, i+1, describe(m), err)
			}
		}
	}
	return nil
}

// describe names a document's kind and version in an error, as written.
func describe(m map[string]any) string {
	kind, _ := m["kind"].(string)
	api, _ := m["apiVersion"].(string)
	if kind == "" || api == "" {
		return ""
	}
	return fmt.Sprintf(" (%s %s)", kind, api)
}

// The env keys that set the cluster's networks, as sealer users write
// them: sealer's base images render them into their kubeadm defaults
// (etc/kubeadm.yml.tmpl: networking.podSubnet: {{ .PodCIDR }},
// serviceSubnet: {{ .SvcCIDR }}), and the Clusterfile's kubeadm
// documents are laid over those defaults.
const (
	EnvPodCIDR = "PodCIDR"
	EnvSvcCIDR = "SvcCIDR"
)

// SetNetworks sets ClusterConfiguration's networking.podSubnet and
// serviceSubnet from env's PodCIDR and SvcCIDR. Called between the
// image's defaults and the Clusterfile's documents, it gives sealer's
// precedence: a Clusterfile's ClusterConfiguration over the env, the env
// over the image. name says where env comes from, in errors.
func (c *Config) SetNetworks(name string, env map[string]string) error {
	for _, key := range []string{EnvPodCIDR, EnvSvcCIDR} {
		v, ok := env[key]
		if !ok {
			continue
		}
		if err := checkCIDRs(v); err != nil {
			return fmt.Errorf("%s: %s: %w", name, key, err)
		}
		field := "podSubnet"
		if key == EnvSvcCIDR {
			field = "serviceSubnet"
		}
		child(c.doc(KindCluster, kubeadmAPI), "networking")[field] = v
	}
	return nil
}

// checkCIDRs accepts what kubeadm takes as a subnet: a CIDR, or an IPv4
// and an IPv6 one separated by a comma (dual stack). An empty or wrong
// value would otherwise fail kubeadm init, after every node is set up.
func checkCIDRs(v string) error {
	parts := strings.Split(v, ",")
	if len(parts) > 2 {
		return fmt.Errorf("%q: at most two CIDRs (an IPv4 and an IPv6 one), comma-separated", v)
	}
	v4 := 0
	for _, p := range parts {
		ip, _, err := net.ParseCIDR(p)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR such as 10.244.0.0/16 (or an IPv4 and an IPv6 one, comma-separated)", v)
		}
		if ip.To4() != nil {
			v4++
		}
	}
	if len(parts) == 2 && v4 != 1 {
		return fmt.Errorf("%q: two CIDRs are an IPv4 and an IPv6 one (dual stack)", v)
	}
	return nil
}

func (c *Config) merge(m map[string]any) error {
	kind, _ := m["kind"].(string)
	known := false
	for _, k := range kinds {
		known = known || k == kind
	}
	if !known {
		return fmt.Errorf("kind %q is not a kubeadm configuration kind (%v)", kind, kinds)
	}
	if old, ok := c.docs[kind]; ok {
		if oldAPI, newAPI := old["apiVersion"], m["apiVersion"]; newAPI != nil && oldAPI != newAPI {
			return fmt.Errorf("%s: apiVersion %v differs from the image's %v: write it as the image does", kind, newAPI, oldAPI)
		}
		deepMerge(old, m)
		return nil
	}
	c.docs[kind] = m
	return nil
}

func deepMerge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				deepMerge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// clone is a deep copy, so that filling one node's configuration leaves
// the cluster's as it was.
func (c *Config) clone() *Config {
	data, _ := json.Marshal(c.docs)
	out := &Config{docs: map[string]map[string]any{}}
	json.Unmarshal(data, &out.docs)
	return out
}

// Get returns a string field of a document ("" when unset).
func (c *Config) Get(kind string, path ...string) string {
	v, _ := lookup(c.docs[kind], path).(string)
	return v
}

func lookup(m map[string]any, path []string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// child returns the map at path under m, made when missing.
func child(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	return m
}

func setDefault(m map[string]any, key string, v any) {
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}

// addKubeletArg adds --name=value to a nodeRegistration's kubeletExtraArgs
// (v1beta4: a list of name/value) unless the user set that name.
func addKubeletArg(reg map[string]any, name, value string) {
	args, _ := reg["kubeletExtraArgs"].([]any)
	for _, a := range args {
		if m, ok := a.(map[string]any); ok && m["name"] == name {
			return
		}
	}
	reg["kubeletExtraArgs"] = append(args, map[string]any{"name": name, "value": value})
}

func (c *Config) doc(kind, apiVersion string) map[string]any {
	d, ok := c.docs[kind]
	if !ok {
		d = map[string]any{"apiVersion": apiVersion, "kind": kind}
		c.docs[kind] = d
	}
	return d
}

const kubeadmAPI = "kubeadm.k8s.io/v1beta4"

// The control plane's name on every node when the Clusterfile names no
// endpoint of its own (controlPlaneEndpoint): it resolves to the loopback
// address where hoist's balancer (hoist node lb) forwards to every healthy
// API server, on masters and workers alike. Not 6443: a master's own API
// server listens there on every address.
const (
	LocalEndpointName   = "apiserver.cluster.local"
	LocalEndpointListen = "127.0.0.1:6444"
)

// ExternalEndpoint tells whether the configuration names the control
// plane's endpoint (a load balancer or a VIP of the site's): then no
// node runs hoist's balancer.
func (c *Config) ExternalEndpoint() bool {
	return c.Get(KindCluster, "controlPlaneEndpoint") != ""
}

// Endpoint is the control plane's address: ClusterConfiguration's
// controlPlaneEndpoint, or the local name and the balancer's port.
func (c *Config) Endpoint() string {
	if e := c.Get(KindCluster, "controlPlaneEndpoint"); e != "" {
		return e
	}
	_, port, _ := net.SplitHostPort(LocalEndpointListen)
	return net.JoinHostPort(LocalEndpointName, port)
}

// APIServerPort is the port every master's API server listens on.
func (c *Config) APIServerPort() int {
	if p, ok := lookup(c.docs[KindInit], []string{"localAPIEndpoint", "bindPort"}).(float64); ok && p > 0 {
		return int(p)
	}
	return 6443
}

// Init is the configuration of kubeadm init on the first master (and of
// `kubeadm init phase upload-certs` later). certificateKey encrypts the
// control-plane certificates kubeadm uploads for masters that join.
func (c *Config) Init(nodeIP, certificateKey string) ([]byte, error) {
	cc := c.clone()
	init := cc.doc(KindInit, kubeadmAPI)
	ep := child(init, "localAPIEndpoint")
	setDefault(ep, "advertiseAddress", nodeIP)
	init["certificateKey"] = certificateKey
	reg := child(init, "nodeRegistration")
	setDefault(reg, "criSocket", DefaultCRISocket)
	addKubeletArg(reg, "node-ip", nodeIP)
	cluster := cc.doc(KindCluster, kubeadmAPI)
	// Masters that join later reach the control plane through this
	// address, which must then be fixed from the start: a name, so that
	// the cluster does not depend on any one master.
	if !c.ExternalEndpoint() {
		cluster["controlPlaneEndpoint"] = c.Endpoint()
		// The balancer passes TLS through: every API server's
		// certificate names the endpoint, and the loopback address.
		sans := child(cluster, "apiServer")
		list, _ := sans["certSANs"].([]any)
		for _, n := range []string{LocalEndpointName, "127.0.0.1"} {
			if !slices.Contains(list, any(n)) {
				list = append(list, n)
			}
		}
		sans["certSANs"] = list
	}
	return cc.write(KindInit, KindCluster, KindKubelet, KindKubeProxy)
}

// Join is the configuration of kubeadm join on a node. certificateKey is
// set for a master, which joins as a control-plane node.
func (c *Config) Join(nodeIP, endpoint, token, caCertHash, certificateKey string) ([]byte, error) {
	cc := c.clone()
	join := cc.doc(KindJoin, kubeadmAPI)
	// The discovery is hoist's: kubeadm refuses a file beside the token,
	// and a TLS bootstrap token of the Clusterfile's would be a stale one.
	delete(child(join, "discovery"), "file")
	delete(child(join, "discovery"), "tlsBootstrapToken")
	bt := child(join, "discovery", "bootstrapToken")
	bt["token"] = token
	bt["apiServerEndpoint"] = endpoint
	bt["caCertHashes"] = []any{caCertHash}
	reg := child(join, "nodeRegistration")
	setDefault(reg, "criSocket", DefaultCRISocket)
	addKubeletArg(reg, "node-ip", nodeIP)
	if certificateKey != "" {
		cp := child(join, "controlPlane")
		cp["certificateKey"] = certificateKey
		setDefault(child(cp, "localAPIEndpoint"), "advertiseAddress", nodeIP)
	} else {
		delete(join, "controlPlane")
	}
	return cc.write(KindJoin)
}

func (c *Config) write(kinds ...string) ([]byte, error) {
	var out bytes.Buffer
	for _, k := range kinds {
		d, ok := c.docs[k]
		if !ok {
			continue
		}
		data, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	return out.Bytes(), nil
}

// IgnoredPreflightErrors are the preflight checks the Clusterfile tells
// kubeadm to skip on a node (the InitConfiguration's on a master, the
// JoinConfiguration's on a worker): kubeadm upgrade runs those checks
// too, and the machines that needed them skipped still do.
func (c *Config) IgnoredPreflightErrors(controlPlane bool) []string {
	kind := KindJoin
	if controlPlane {
		kind = KindInit
	}
	list, _ := lookup(c.docs[kind], []string{"nodeRegistration", "ignorePreflightErrors"}).([]any)
	var out []string
	for _, v := range list {
		if s, ok := v.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pinnedImages are the ClusterConfiguration fields where the image pins
// the tags of the images it bundles besides Kubernetes' own.
var pinnedImages = [][]string{{"etcd", "local", "imageTag"}, {"dns", "imageTag"}}

// Retag gives the cluster's stored ClusterConfiguration (kube-system/kubeadm-config)
// the etcd and CoreDNS image tags of this configuration, or kubeadm's own
// when it pins none; changed says whether it had others. kubeadm upgrade
// works from the stored configuration, so the previous image's tags would
// stay: those versions would not be upgraded, and the new image's
// registry no longer serves their images.
func (c *Config) Retag(stored []byte) (out []byte, changed bool, err error) {
	var doc map[string]any
	if err := yaml.Unmarshal(stored, &doc); err != nil {
		return nil, false, fmt.Errorf("not a ClusterConfiguration: %w", err)
	}
	if kind, _ := doc["kind"].(string); kind != KindCluster {
		return nil, false, fmt.Errorf("not a ClusterConfiguration: kind %q", clip(kind, 40))
	}
	for _, field := range pinnedImages {
		if field[0] == "etcd" && lookup(doc, []string{"etcd", "external"}) != nil {
			// An external etcd: none of kubeadm's to upgrade.
			continue
		}
		for i := 1; i < len(field); i++ {
			if v := lookup(doc, field[:i]); v != nil {
				if _, ok := v.(map[string]any); !ok {
					return nil, false, fmt.Errorf("%s is not a mapping", strings.Join(field[:i], "."))
				}
			}
		}
		parent := child(doc, field[:len(field)-1]...)
		key := field[len(field)-1]
		old, _ := parent[key].(string)
		tag := c.Get(KindCluster, field...)
		if old == tag {
			continue
		}
		changed = true
		if tag == "" {
			delete(parent, key)
		} else {
			parent[key] = tag
		}
	}
	if !changed {
		return stored, false, nil
	}
	out, err = yaml.Marshal(doc)
	return out, true, err
}

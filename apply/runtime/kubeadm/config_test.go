package kubeadm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The image's own defaults: the test reads the file the image ships.
func imageDefaults(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(baseRootfs, DefaultsFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig("kubeadm.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// docs decodes the written configuration by kind.
func docs(t *testing.T, data []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		if m != nil {
			out[m["kind"].(string)] = m
		}
	}
	return out
}

func raw(t *testing.T, yamlDoc string) json.RawMessage {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(yamlDoc), 4096)
	var r json.RawMessage
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMergeAndInit(t *testing.T) {
	c := imageDefaults(t)
	err := c.Merge("Clusterfile", []json.RawMessage{
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: 172.20.0.0/16}\napiServer: {certSANs: [api.example.com]}\n"),
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  ignorePreflightErrors: [all]\n  kubeletExtraArgs: [{name: max-pods, value: '50'}]\n"),
		raw(t, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Init("192.0.2.10", "abc")
	if err != nil {
		t.Fatal(err)
	}
	d := docs(t, data)
	if _, ok := d[KindJoin]; ok {
		t.Error("kubeadm init was given a JoinConfiguration")
	}
	cluster := d[KindCluster]
	net := cluster["networking"].(map[string]any)
	if net["podSubnet"] != "172.20.0.0/16" || net["serviceSubnet"] != "10.96.0.0/12" {
		t.Errorf("networking not merged key by key: %v", net)
	}
	// No endpoint in the Clusterfile: the local name, balanced on every
	// node, which every API server's certificate names.
	if cluster["controlPlaneEndpoint"] != "apiserver.cluster.local:6444" {
		t.Errorf("controlPlaneEndpoint = %v", cluster["controlPlaneEndpoint"])
	}
	if sans, _ := json.Marshal(cluster["apiServer"].(map[string]any)["certSANs"]); string(sans) != `["api.example.com","apiserver.cluster.local","127.0.0.1"]` {
		t.Errorf("certSANs = %s", sans)
	}
	if c.ExternalEndpoint() {
		t.Error("an endpoint of the Clusterfile's without one")
	}
	if cluster["kubernetesVersion"] != "@KUBERNETES_VERSION@" {
		t.Errorf("the image's kubernetesVersion was lost: %v", cluster["kubernetesVersion"])
	}
	init := d[KindInit]
	if init["certificateKey"] != "abc" {
		t.Errorf("certificateKey = %v", init["certificateKey"])
	}
	if ep := init["localAPIEndpoint"].(map[string]any); ep["advertiseAddress"] != "192.0.2.10" {
		t.Errorf("advertiseAddress = %v", ep["advertiseAddress"])
	}
	reg := init["nodeRegistration"].(map[string]any)
	if ip := reg["ignorePreflightErrors"].([]any); len(ip) != 1 || ip[0] != "all" {
		t.Errorf("a Clusterfile list must replace the image's: %v", ip)
	}
	if reg["criSocket"] != DefaultCRISocket {
		t.Errorf("the image's criSocket was lost: %v", reg["criSocket"])
	}
	args, _ := json.Marshal(reg["kubeletExtraArgs"])
	if string(args) != `[{"name":"max-pods","value":"50"},{"name":"node-ip","value":"192.0.2.10"}]` {
		t.Errorf("kubeletExtraArgs = %s", args)
	}
	if d[KindKubelet]["maxPods"] != float64(50) || d[KindKubelet]["cgroupDriver"] != "cgroupfs" {
		t.Errorf("KubeletConfiguration = %v", d[KindKubelet])
	}
	// The cluster's configuration is not changed by a node's.
	if c.Get(KindInit, "certificateKey") != "" {
		t.Error("Init changed the cluster's configuration")
	}
}

func TestJoin(t *testing.T) {
	c := imageDefaults(t)
	c.Merge("Clusterfile", []json.RawMessage{
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: api.example.com:6443\n"),
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: {file: {kubeConfigPath: /x.conf}, tlsBootstrapToken: old.0123456789abcdef}\n"),
	})
	if got := c.Endpoint(); got != "api.example.com:6443" || !c.ExternalEndpoint() {
		t.Errorf("Endpoint = %s, want the Clusterfile's", got)
	}
	// With an endpoint of its own, init sets no local name.
	data, err := c.Init("192.0.2.10", "k")
	if err != nil {
		t.Fatal(err)
	}
	if cl := docs(t, data)[KindCluster]; cl["controlPlaneEndpoint"] != "api.example.com:6443" || cl["apiServer"] != nil {
		t.Errorf("init with an external endpoint: %v", cl)
	}
	worker, err := c.Join("192.0.2.11", "192.0.2.10:6443", "abcdef.0123456789abcdef", "sha256:00", "")
	if err != nil {
		t.Fatal(err)
	}
	d := docs(t, worker)
	if len(d) != 1 {
		t.Fatalf("join got %d documents, want the JoinConfiguration alone", len(d))
	}
	join := d[KindJoin]
	bt := join["discovery"].(map[string]any)["bootstrapToken"].(map[string]any)
	if bt["token"] != "abcdef.0123456789abcdef" || bt["apiServerEndpoint"] != "192.0.2.10:6443" || bt["caCertHashes"].([]any)[0] != "sha256:00" {
		t.Errorf("discovery = %v", bt)
	}
	if disc := join["discovery"].(map[string]any); len(disc) != 1 {
		t.Errorf("the Clusterfile's discovery is left beside hoist's token: %v", disc)
	}
	if _, ok := join["controlPlane"]; ok {
		t.Error("a worker joins as a control-plane node")
	}
	master, _ := c.Join("192.0.2.12", "192.0.2.10:6443", "t", "h", "key")
	cp := docs(t, master)[KindJoin]["controlPlane"].(map[string]any)
	if cp["certificateKey"] != "key" || cp["localAPIEndpoint"].(map[string]any)["advertiseAddress"] != "192.0.2.12" {
		t.Errorf("controlPlane = %v", cp)
	}
}

// The image's rootfs, as the repository defines it.
var baseRootfs = filepath.Join("..", "..", "..", "images", "kubernetes", "rootfs")

// TestNetworksFromEnv: PodCIDR and SvcCIDR of the env set the subnets, as
// sealer's do; lowest first: the image's etc/kubeadm.yaml, the image's
// ENV, the Clusterfile's env, the Clusterfile's ClusterConfiguration.
func TestNetworksFromEnv(t *testing.T) {
	doc := "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: {podSubnet: 10.1.0.0/16}\n"
	for _, c := range []struct {
		name          string
		imageEnv, env map[string]string
		docs          []string
		pod, svc      string
	}{
		{"the image's kubeadm.yaml", nil, map[string]string{"Other": "x"}, nil, "10.244.0.0/16", "10.96.0.0/12"},
		{"the image's ENV", map[string]string{"PodCIDR": "100.64.0.0/10"}, nil, nil, "100.64.0.0/10", "10.96.0.0/12"},
		{"the Clusterfile's env over the image's ENV", map[string]string{"PodCIDR": "100.64.0.0/10", "SvcCIDR": "10.100.0.0/16"},
			map[string]string{"PodCIDR": "172.16.0.0/16"}, nil, "172.16.0.0/16", "10.100.0.0/16"},
		{"a kubeadm document over the env", nil, map[string]string{"PodCIDR": "172.16.0.0/16", "SvcCIDR": "10.96.0.0/16"},
			[]string{doc}, "10.1.0.0/16", "10.96.0.0/16"},
		{"dual stack", nil, map[string]string{"PodCIDR": "10.244.0.0/16,fd00:10:244::/56"}, nil, "10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12"},
	} {
		var docs []json.RawMessage
		for _, d := range c.docs {
			docs = append(docs, raw(t, d))
		}
		cfg, err := Load(baseRootfs, "Clusterfile", c.imageEnv, c.env, docs)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if pod, svc := cfg.Get(KindCluster, "networking", "podSubnet"), cfg.Get(KindCluster, "networking", "serviceSubnet"); pod != c.pod || svc != c.svc {
			t.Errorf("%s: podSubnet %s, serviceSubnet %s; want %s, %s", c.name, pod, svc, c.pod, c.svc)
		}
	}
}

// TestDefaultsTemplate: an image whose kubeadm defaults are a template
// (sealer's images ship etc/kubeadm.yml.tmpl; hoist reads
// etc/kubeadm.yaml.tmpl) brings up Kubernetes, and its defaults are the
// template rendered with the env, over the image's etc/kubeadm.yaml,
// which the nodes get replaced by the rendering.
func TestDefaultsTemplate(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	tmpl := "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: {{ .Version }}\nimageRepository: {{ or .Repo \"sea.hub:5000\" }}\n"
	os.WriteFile(filepath.Join(rootfs, DefaultsFile+".tmpl"), []byte(tmpl), 0o644)
	if !IsKubernetes(rootfs) {
		t.Fatal("an image with only etc/kubeadm.yaml.tmpl is not Kubernetes")
	}
	os.WriteFile(filepath.Join(rootfs, DefaultsFile), []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.0.0\n"), 0o644)
	cfg, err := Load(rootfs, "Clusterfile", map[string]string{"Version": "v1.37.1"}, map[string]string{"Version": "v1.37.2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, repo := cfg.Get(KindCluster, "kubernetesVersion"), cfg.Get(KindCluster, "imageRepository"); v != "v1.37.2" || repo != "sea.hub:5000" {
		t.Errorf("kubernetesVersion %s, imageRepository %s: want the template's, rendered with the Clusterfile's env", v, repo)
	}
	if _, err := Load(rootfs, "Clusterfile", nil, nil, nil); err == nil || err.Error() != "etc/kubeadm.yaml.tmpl: prints a key the env does not have (it names Repo, Version): set it in the Clusterfile's spec.env" {
		t.Errorf("a template the env does not render: %v", err)
	}
	if IsKubernetes(t.TempDir()) {
		t.Error("an empty rootfs is Kubernetes")
	}
}

func TestNetworksRefused(t *testing.T) {
	for _, c := range []struct {
		imageEnv, env map[string]string
		err           string
	}{
		{nil, map[string]string{"PodCIDR": "10.244.0.0"}, `Clusterfile: spec.env: PodCIDR: "10.244.0.0" is not a CIDR such as 10.244.0.0/16`},
		{nil, map[string]string{"SvcCIDR": ""}, `Clusterfile: spec.env: SvcCIDR: "" is not a CIDR`},
		{nil, map[string]string{"PodCIDR": " 10.244.0.0/16"}, `Clusterfile: spec.env: PodCIDR: " 10.244.0.0/16" is not a CIDR`},
		{nil, map[string]string{"PodCIDR": "10.0.0.0/8,10.1.0.0/16"}, `Clusterfile: spec.env: PodCIDR: "10.0.0.0/8,10.1.0.0/16": two CIDRs are an IPv4 and an IPv6 one (dual stack)`},
		{nil, map[string]string{"PodCIDR": "10.0.0.0/8,fd00::/56,fd01::/56"}, `Clusterfile: spec.env: PodCIDR: "10.0.0.0/8,fd00::/56,fd01::/56": at most two CIDRs`},
		{map[string]string{"SvcCIDR": "none"}, nil, `image ENV: SvcCIDR: "none" is not a CIDR`},
	} {
		_, err := Load(baseRootfs, "Clusterfile", c.imageEnv, c.env, nil)
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("%v %v: error %v, want %q", c.imageEnv, c.env, err, c.err)
		}
	}
}

// TestKubeadmAcceptsInitAndJoin: kubeadm itself reads what hoist gives
// init and join, the image's defaults with the env's networks and a
// Clusterfile's documents laid over them.
func TestKubeadmAcceptsInitAndJoin(t *testing.T) {
	kubeadm, version := kubeadmBinary(t)
	c := imageDefaultsFor(t, version)
	if err := c.SetNetworks("Clusterfile: spec.env", map[string]string{"PodCIDR": "100.64.0.0/10", "SvcCIDR": "10.96.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	err := c.Merge("Clusterfile", []json.RawMessage{
		raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer: {certSANs: [api.example.com], extraArgs: [{name: audit-log-maxage, value: '7'}]}\n"),
		raw(t, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, kubeadm, c)
}

// imageDefaultsFor is the image's defaults as the image's build writes
// them for a Kubernetes version (images/kubernetes/build.sh fills the
// placeholders).
func imageDefaultsFor(t *testing.T, version string) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(baseRootfs, DefaultsFile))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("@KUBERNETES_VERSION@", version, "@ETCD_TAG@", "3.6.0-0", "@COREDNS_TAG@", "v1.12.0").Replace(string(data))
	c, err := ParseConfig("kubeadm.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// validate runs `kubeadm config validate` on what init and join (of a
// worker and of a master) are given.
func validate(t *testing.T, kubeadm string, c *Config) {
	t.Helper()
	init, err := c.Init("192.0.2.10", strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	worker, err := c.Join("192.0.2.11", "192.0.2.10:6443", "abcdef.0123456789abcdef", "sha256:"+strings.Repeat("0", 64), "")
	if err != nil {
		t.Fatal(err)
	}
	master, err := c.Join("192.0.2.12", "192.0.2.10:6443", "abcdef.0123456789abcdef", "sha256:"+strings.Repeat("0", 64), strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string][]byte{"init": init, "worker join": worker, "master join": master} {
		file := filepath.Join(t.TempDir(), "kubeadm.yaml")
		if err := os.WriteFile(file, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(kubeadm, "config", "validate", "--config", file).CombinedOutput(); err != nil {
			t.Errorf("kubeadm refuses the %s configuration: %v\n%s\n%s", name, err, out, cfg)
		}
	}
}

// FuzzMerge: the image's defaults come with the image, the documents and
// the env with the Clusterfile. Whatever they hold, loading them is an
// error or a configuration init and join can be written from, as YAML
// documents; never a panic.
func FuzzMerge(f *testing.F) {
	defaults, err := os.ReadFile(filepath.Join(baseRootfs, DefaultsFile))
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range conversions {
		f.Add(defaults, []byte(c.in), "100.64.0.0/10")
	}
	for _, b := range badDocuments {
		f.Add(defaults, []byte(b.doc), "")
	}
	f.Add([]byte("kind: InitConfiguration\nnodeRegistration: {kubeletExtraArgs: x}\n"), []byte("kind: InitConfiguration\nlocalAPIEndpoint: 3\n"), "10.0.0.0/8,fd00::/56")
	f.Add([]byte("kind: ClusterConfiguration\nnetworking: []\n"), []byte("kind: JoinConfiguration\ncontrolPlane: x\ndiscovery: []\n"), "x")
	f.Add([]byte("---\n---\nkind: KubeletConfiguration\n"), []byte("null"), "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, image, doc []byte, podCIDR string) {
		c, err := ParseConfig("kubeadm.yaml", image)
		if err != nil {
			return
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return
		}
		if c.SetNetworks("env", map[string]string{"PodCIDR": podCIDR}) != nil {
			return
		}
		if c.Merge("Clusterfile", []json.RawMessage{j}) != nil {
			return
		}
		init, err := c.Init("192.0.2.10", "key")
		if err != nil {
			return
		}
		join, err := c.Join("192.0.2.11", "192.0.2.10:6443", "t", "h", "key")
		if err != nil {
			return
		}
		for _, out := range [][]byte{init, join} {
			dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(out)), 4096)
			for {
				var m map[string]any
				if err := dec.Decode(&m); err != nil {
					if err != io.EOF {
						t.Fatalf("written configuration does not read back: %v\n%s", err, out)
					}
					break
				}
			}
		}
	})
}

func TestCACertHash(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(spki)
	got, err := CACertHash(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		t.Errorf("CACertHash = %s, want %s", got, want)
	}
	if _, err := CACertHash([]byte("garbage")); err == nil {
		t.Error("no error for a CA that is not PEM")
	}
}

// storedClusterConfiguration is a ClusterConfiguration as kubeadm stores
// it in kube-system/kubeadm-config (v1beta4, defaults filled in), from a
// cluster of an image that pinned etcd 3.5.0-0 and CoreDNS v1.11.0.
const storedClusterConfiguration = `apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: apiserver.cluster.local:6444
controllerManager: {}
dns:
  imageTag: v1.11.0
encryptionAlgorithm: RSA-2048
etcd:
  local:
    dataDir: /var/lib/etcd
    imageTag: 3.5.0-0
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.36.3
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
proxy: {}
scheduler: {}
`

// TestRetag: before kubeadm upgrade apply, the cluster's stored
// configuration takes the new image's etcd and CoreDNS tags (kubeadm's
// own when the image pins none); the rest is kept; an external etcd is
// left alone.
func TestRetag(t *testing.T) {
	c := imageDefaultsFor(t, "v1.37.2") // etcd 3.6.0-0, CoreDNS v1.12.0
	out, changed, err := c.Retag([]byte(storedClusterConfiguration))
	if err != nil || !changed {
		t.Fatalf("%v, changed %v", err, changed)
	}
	var got map[string]any
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	yaml.Unmarshal([]byte(strings.NewReplacer("3.5.0-0", "3.6.0-0", "v1.11.0", "v1.12.0").Replace(storedClusterConfiguration)), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("retagged:\n%s", out)
	}
	// Again: nothing to change.
	if again, changed, err := c.Retag(out); err != nil || changed || string(again) != string(out) {
		t.Errorf("retagged twice: %v, changed %v", err, changed)
	}

	// An image that pins nothing: kubeadm's own versions.
	bare, _ := ParseConfig("kubeadm.yaml", []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"))
	out, _, err = bare.Retag([]byte(storedClusterConfiguration))
	if err != nil || strings.Contains(string(out), "imageTag") {
		t.Errorf("unpinned: %v\n%s", err, out)
	}

	external := strings.Replace(storedClusterConfiguration, "  local:\n    dataDir: /var/lib/etcd\n    imageTag: 3.5.0-0\n",
		"  external:\n    endpoints: [https://192.0.2.1:2379]\n", 1)
	out, _, err = c.Retag([]byte(external))
	if err != nil || strings.Contains(string(out), "3.6.0-0") || !strings.Contains(string(out), "192.0.2.1") || !strings.Contains(string(out), "v1.12.0") {
		t.Errorf("external etcd: %v\n%s", err, out)
	}

	for _, b := range badStoredConfigurations {
		if _, _, err := c.Retag([]byte(b.stored)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want %q", b.name, err, b.want)
		}
	}
}

var badStoredConfigurations = []struct{ name, stored, want string }{
	{"not YAML", "kind: [", "not a ClusterConfiguration: "},
	{"another kind", "kind: InitConfiguration\n", `not a ClusterConfiguration: kind "InitConfiguration"`},
	{"dns a string", "kind: ClusterConfiguration\ndns: CoreDNS\n", "dns is not a mapping"},
	{"etcd.local a list", "kind: ClusterConfiguration\netcd:\n  local: [a]\n", "etcd.local is not a mapping"},
}

// FuzzRetag: the stored configuration comes from the cluster; whatever is
// accepted comes back as a ClusterConfiguration with the image's tags.
func FuzzRetag(f *testing.F) {
	f.Add(storedClusterConfiguration)
	for _, b := range badStoredConfigurations {
		f.Add(b.stored)
	}
	data, err := os.ReadFile(filepath.Join(baseRootfs, DefaultsFile))
	if err != nil {
		f.Fatal(err)
	}
	c, err := ParseConfig("kubeadm.yaml", []byte(strings.NewReplacer("@ETCD_TAG@", "3.6.0-0", "@COREDNS_TAG@", "v1.12.0").Replace(string(data))))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stored string) {
		out, _, err := c.Retag([]byte(stored))
		if err != nil {
			return
		}
		var doc map[string]any
		if err := yaml.Unmarshal(out, &doc); err != nil || doc["kind"] != KindCluster {
			t.Fatalf("retagged into %q: %v", out, err)
		}
		if tag, _ := lookup(doc, []string{"dns", "imageTag"}).(string); tag != "v1.12.0" {
			t.Fatalf("dns.imageTag %q in %q", tag, out)
		}
	})
}

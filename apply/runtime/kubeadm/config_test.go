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
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The image's own defaults: the test reads the file the image ships.
func imageDefaults(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "images", "kubernetes", "rootfs", DefaultsFile))
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
	if cluster["controlPlaneEndpoint"] != "192.0.2.10:6443" {
		t.Errorf("controlPlaneEndpoint = %v", cluster["controlPlaneEndpoint"])
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
	c.Merge("Clusterfile", []json.RawMessage{raw(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: api.example.com:6443\n")})
	if got := c.Endpoint("192.0.2.10"); got != "api.example.com:6443" {
		t.Errorf("Endpoint = %s, want the Clusterfile's", got)
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
	if _, ok := join["controlPlane"]; ok {
		t.Error("a worker joins as a control-plane node")
	}
	master, _ := c.Join("192.0.2.12", "192.0.2.10:6443", "t", "h", "key")
	cp := docs(t, master)[KindJoin]["controlPlane"].(map[string]any)
	if cp["certificateKey"] != "key" || cp["localAPIEndpoint"].(map[string]any)["advertiseAddress"] != "192.0.2.12" {
		t.Errorf("controlPlane = %v", cp)
	}
}

func TestBadDocuments(t *testing.T) {
	c := imageDefaults(t)
	for _, doc := range []string{
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n",
		"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n",
	} {
		if err := c.Merge("Clusterfile", []json.RawMessage{raw(t, doc)}); err == nil || !strings.Contains(err.Error(), "Clusterfile: kubeadm document 1") {
			t.Errorf("%q: error %v, want one naming the Clusterfile's document", doc, err)
		}
	}
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

package kubeadm

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// What sealer users have: documents of sealer's docs and base images
// (docs/design/clusterfile-v2.md, basefs etc/kubeadm.yml.tmpl), in each
// older version, with the v1beta4 documents kubeadm's migrate gives for
// them (kubeadm v1.36's conversion functions; kubeadm v1.37 checks them
// in TestConvertedKubeadmAccepts).
var conversions = []struct {
	name string
	in   string
	want []string // the converted document, then those fields moved to
}{
	{
		name: "v1beta3 ClusterConfiguration",
		in: `apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: apiserver.cluster.local:6443
imageRepository: sea.hub:5000
clusterName: kubernetes
certificatesDir: /etc/kubernetes/pki
networking: {podSubnet: 100.64.0.0/10, serviceSubnet: 10.96.0.0/22, dnsDomain: cluster.local}
apiServer:
  certSANs: [127.0.0.1, apiserver.cluster.local]
  timeoutForControlPlane: 4m0s
  extraArgs:
    enable-aggregator-routing: "true"
    audit-policy-file: /etc/kubernetes/audit-policy.yml
    audit-log-maxage: "7"
  extraVolumes:
  - {name: localtime, hostPath: /etc/localtime, mountPath: /etc/localtime, readOnly: true, pathType: File}
controllerManager:
  extraArgs: {cluster-signing-duration: 876000h}
scheduler:
  extraVolumes:
  - {name: localtime, hostPath: /etc/localtime, mountPath: /etc/localtime, readOnly: true, pathType: File}
etcd:
  local:
    dataDir: /var/lib/etcd
    extraArgs: {listen-metrics-urls: "http://0.0.0.0:2381"}
    serverCertSANs: [etcd.cluster.local]
dns: {imageRepository: sea.hub:5000/coredns}
`,
		want: []string{`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: apiserver.cluster.local:6443
imageRepository: sea.hub:5000
clusterName: kubernetes
certificatesDir: /etc/kubernetes/pki
networking: {podSubnet: 100.64.0.0/10, serviceSubnet: 10.96.0.0/22, dnsDomain: cluster.local}
apiServer:
  certSANs: [127.0.0.1, apiserver.cluster.local]
  extraArgs:
  - {name: audit-log-maxage, value: "7"}
  - {name: audit-policy-file, value: /etc/kubernetes/audit-policy.yml}
  - {name: enable-aggregator-routing, value: "true"}
  extraVolumes:
  - {name: localtime, hostPath: /etc/localtime, mountPath: /etc/localtime, readOnly: true, pathType: File}
controllerManager:
  extraArgs: [{name: cluster-signing-duration, value: 876000h}]
scheduler:
  extraVolumes:
  - {name: localtime, hostPath: /etc/localtime, mountPath: /etc/localtime, readOnly: true, pathType: File}
etcd:
  local:
    dataDir: /var/lib/etcd
    extraArgs: [{name: listen-metrics-urls, value: "http://0.0.0.0:2381"}]
    serverCertSANs: [etcd.cluster.local]
dns: {imageRepository: sea.hub:5000/coredns}
`, `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
timeouts: {controlPlaneComponentHealthCheck: 4m0s}
`, `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
timeouts: {controlPlaneComponentHealthCheck: 4m0s}
`},
	},
	{
		name: "v1beta3 InitConfiguration",
		in: `apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 24h0m0s
  usages: [signing, authentication]
  groups: ["system:bootstrappers:kubeadm:default-node-token"]
localAPIEndpoint: {advertiseAddress: 192.0.2.10, bindPort: 6443}
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  kubeletExtraArgs: {max-pods: "50", cgroup-root: /node1}
  taints: null
  ignorePreflightErrors: [SystemVerification]
skipPhases: [addon/kube-proxy]
patches: {directory: /etc/kubernetes/patches}
`,
		want: []string{`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 24h0m0s
  usages: [signing, authentication]
  groups: ["system:bootstrappers:kubeadm:default-node-token"]
localAPIEndpoint: {advertiseAddress: 192.0.2.10, bindPort: 6443}
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  kubeletExtraArgs: [{name: cgroup-root, value: /node1}, {name: max-pods, value: "50"}]
  taints: null
  ignorePreflightErrors: [SystemVerification]
skipPhases: [addon/kube-proxy]
patches: {directory: /etc/kubernetes/patches}
`},
	},
	{
		name: "v1beta3 JoinConfiguration",
		in: `apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  timeout: 5m0s
  bootstrapToken: {token: abcdef.0123456789abcdef, apiServerEndpoint: "192.0.2.10:6443", unsafeSkipCAVerification: true}
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs: {max-pods: "50"}
controlPlane: {localAPIEndpoint: {bindPort: 6443}}
skipPhases: [preflight]
`,
		want: []string{`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  bootstrapToken: {token: abcdef.0123456789abcdef, apiServerEndpoint: "192.0.2.10:6443", unsafeSkipCAVerification: true}
timeouts: {discovery: 5m0s}
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs: [{name: max-pods, value: "50"}]
controlPlane: {localAPIEndpoint: {bindPort: 6443}}
skipPhases: [preflight]
`},
	},
	{
		name: "v1beta2 ClusterConfiguration",
		in: `apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: "apiserver.cluster.local:6443"
imageRepository: sea.hub:5000
useHyperKubeImage: false
networking:
  podSubnet: 100.64.0.0/10
  serviceSubnet: 10.96.0.0/22
apiServer:
  certSANs:
  timeoutForControlPlane: 0s
  extraArgs:
    feature-gates: "EphemeralContainers=true"
    audit-log-format: json
controllerManager:
  extraArgs:
    cluster-signing-duration: 876000h
etcd:
  local:
    dataDir: ""
    extraArgs: {listen-metrics-urls: "http://0.0.0.0:2381"}
dns:
  type: CoreDNS
  imageTag: v1.14.6
`,
		want: []string{`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: "apiserver.cluster.local:6443"
imageRepository: sea.hub:5000
networking:
  podSubnet: 100.64.0.0/10
  serviceSubnet: 10.96.0.0/22
apiServer:
  certSANs: null
  extraArgs:
  - {name: audit-log-format, value: json}
  - {name: feature-gates, value: "EphemeralContainers=true"}
controllerManager:
  extraArgs: [{name: cluster-signing-duration, value: 876000h}]
etcd:
  local:
    dataDir: ""
    extraArgs: [{name: listen-metrics-urls, value: "http://0.0.0.0:2381"}]
dns:
  imageTag: v1.14.6
`},
	},
	{
		name: "v1beta2 InitConfiguration",
		in: `apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint:
  bindPort: 6443
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
nodeRegistration:
  criSocket: /run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs: {node-labels: "tier=infra"}
  ignorePreflightErrors: [all]
`,
		want: []string{`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  bindPort: 6443
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
nodeRegistration:
  criSocket: /run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs: [{name: node-labels, value: "tier=infra"}]
  ignorePreflightErrors: [all]
`},
	},
	{
		name: "v1beta2 JoinConfiguration",
		in: `apiVersion: kubeadm.k8s.io/v1beta2
kind: JoinConfiguration
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  timeout: 5m0s
  file: {kubeConfigPath: /etc/kubernetes/discovery.conf}
  tlsBootstrapToken: abcdef.0123456789abcdef
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
controlPlane:
  localAPIEndpoint: {advertiseAddress: 192.0.2.11, bindPort: 6443}
`,
		want: []string{`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  file: {kubeConfigPath: /etc/kubernetes/discovery.conf}
  tlsBootstrapToken: abcdef.0123456789abcdef
timeouts: {discovery: 5m0s}
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
controlPlane:
  localAPIEndpoint: {advertiseAddress: 192.0.2.11, bindPort: 6443}
`},
	},
}

// object decodes one YAML document as Merge gets it: JSON, into a map.
func decoded(t testing.TB, doc string) map[string]any {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConvert(t *testing.T) {
	for _, c := range conversions {
		t.Run(c.name, func(t *testing.T) {
			got, err := convert(decoded(t, c.in))
			if err != nil {
				t.Fatal(err)
			}
			var want []map[string]any
			for _, w := range c.want {
				want = append(want, decoded(t, w))
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(want)
				t.Errorf("converted:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}

// TestConvertLeavesOthers: v1beta4 documents, and the kubelet's and
// kube-proxy's, are the image's versions: they pass as they are.
func TestConvertLeavesOthers(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer: {extraArgs: [{name: a, value: b}], whatever: 1}\n",
		"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n",
		"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n",
	} {
		in := decoded(t, doc)
		got, err := convert(decoded(t, doc))
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], in) {
			t.Errorf("%q became %v, %v", doc, got, err)
		}
	}
}

// badDocuments are Clusterfile kubeadm documents that cannot be converted,
// with the error Merge gives: it names the document and the field.
var badDocuments = []struct{ doc, err string }{
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nbogus: 1\n",
		`Clusterfile: kubeadm document 1 (InitConfiguration kubeadm.k8s.io/v1beta3): bogus: no such field in kubeadm.k8s.io/v1beta3`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {extraArg: {a: b}}\n",
		`(ClusterConfiguration kubeadm.k8s.io/v1beta3): apiServer.extraArg: no such field in kubeadm.k8s.io/v1beta3`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: {podSubNet: 10.0.0.0/16}\n",
		`networking.podSubNet: no such field in kubeadm.k8s.io/v1beta3: did you mean "podSubnet"?`},
	{"apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\nskipPhases: [preflight]\n",
		`(InitConfiguration kubeadm.k8s.io/v1beta2): skipPhases: no such field in kubeadm.k8s.io/v1beta2 (it is a field of kubeadm.k8s.io/v1beta3)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ntimeouts: {discovery: 5m}\n",
		`timeouts: no such field in kubeadm.k8s.io/v1beta3 (it is a field of kubeadm.k8s.io/v1beta4)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nuseHyperKubeImage: false\n",
		`useHyperKubeImage: no such field in kubeadm.k8s.io/v1beta3 (it is a field of kubeadm.k8s.io/v1beta2)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {extraArgs: {audit-log-maxage: 7}}\n",
		`apiServer.extraArgs.audit-log-maxage: 7 is not a string: quote it`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration: {kubeletExtraArgs: {rotate-certificates: true}}\n",
		`nodeRegistration.kubeletExtraArgs.rotate-certificates: true is not a string: quote it`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {extraArgs: [{name: a, value: b}]}\n",
		`apiServer.extraArgs: [{"name":"a","value":"b"}] is not a map`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {timeoutForControlPlane: 4 minutes}\n",
		`apiServer.timeoutForControlPlane: "4 minutes" is not a duration (such as 4m0s)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery: {timeout: 300}\n",
		`discovery.timeout: 300 is not a duration (such as 4m0s)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint: {bindPort: \"6443\"}\n",
		`localAPIEndpoint.bindPort: "6443" is not an integer`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint: {bindPort: 6443.5}\n",
		`localAPIEndpoint.bindPort: 6443.5 is not an integer`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint: {bindPort: 9999999999}\n",
		`localAPIEndpoint.bindPort: 9999999999 is not an integer`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nfeatureGates: {EtcdLearnerMode: yes-please}\n",
		`featureGates.EtcdLearnerMode: "yes-please" is not true or false`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration: {taints: [node-role.kubernetes.io/master]}\n",
		`nodeRegistration.taints[0]: "node-role.kubernetes.io/master" is not a map`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration: {taints: [{key: a, effect: NoSchedule, tainted: yes}]}\n",
		`nodeRegistration.taints[0].tainted: no such field in kubeadm.k8s.io/v1beta3`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nbootstrapTokens: [{token: abcdef.0123456789abcdef, expires: tomorrow}]\n",
		`bootstrapTokens[0].expires: "tomorrow" is not a time (RFC 3339, such as 2030-01-02T15:04:05Z)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {certSANs: api.example.com}\n",
		`apiServer.certSANs: "api.example.com" is not a list`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: cluster\n",
		`networking: "cluster" is not a map`},
	{"apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\nnodeRegistration: {criSocket: /var/run/dockershim.sock}\n",
		`nodeRegistration.criSocket: "/var/run/dockershim.sock" is dockershim's, which Kubernetes removed in 1.24: remove the field`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration: {criSocket: unix:///var/run/dockershim.sock}\n",
		`(JoinConfiguration kubeadm.k8s.io/v1beta3): nodeRegistration.criSocket: "unix:///var/run/dockershim.sock" is dockershim's`},
	{"apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\nuseHyperKubeImage: true\n",
		`(ClusterConfiguration kubeadm.k8s.io/v1beta2): useHyperKubeImage: true cannot be converted`},
	{"apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\ndns: {type: kube-dns}\n",
		`dns.type: "kube-dns" cannot be converted: CoreDNS is the only DNS kubeadm installs`},
	{"apiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\n",
		`Clusterfile: kubeadm document 1 (ClusterConfiguration kubeadm.k8s.io/v1beta1): apiVersion kubeadm.k8s.io/v1beta1 cannot be converted: hoist converts kubeadm.k8s.io/v1beta2 and kubeadm.k8s.io/v1beta3`},
	{"apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterStatus\napiEndpoints: {}\n",
		`kind "ClusterStatus" is not a kind of kubeadm.k8s.io/v1beta2 (InitConfiguration, ClusterConfiguration, JoinConfiguration)`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: KubeletConfiguration\nmaxPods: 10\n",
		`kind "KubeletConfiguration" is not a kind of kubeadm.k8s.io/v1beta3`},
	{"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiVersion2: x\n",
		`apiVersion2: no such field in kubeadm.k8s.io/v1beta3`},
	{"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n",
		`Clusterfile: kubeadm document 1 (ResetConfiguration kubeadm.k8s.io/v1beta4): kind "ResetConfiguration" is not a kubeadm configuration kind`},
}

func TestConvertRefuses(t *testing.T) {
	for _, b := range badDocuments {
		c := imageDefaults(t)
		err := c.Merge("Clusterfile", []json.RawMessage{raw(t, b.doc)})
		if err == nil || !strings.Contains(err.Error(), b.err) || !strings.HasPrefix(err.Error(), "Clusterfile: kubeadm document 1 (") {
			t.Errorf("%q:\n got error %v\nwant one with %q", b.doc, err, b.err)
		}
	}
}

// TestMergeOfConverted: converted documents are laid over the image's
// defaults as v1beta4 ones are, and the moved timeouts reach init's and
// join's configuration.
func TestMergeOfConverted(t *testing.T) {
	c := imageDefaults(t)
	var in []json.RawMessage
	for _, conv := range conversions[:3] {
		in = append(in, raw(t, conv.in))
	}
	if err := c.Merge("Clusterfile", in); err != nil {
		t.Fatal(err)
	}
	init, err := c.Init("192.0.2.10", "abc")
	if err != nil {
		t.Fatal(err)
	}
	d := docs(t, init)
	for kind, doc := range d {
		if kind != KindKubelet && kind != KindKubeProxy && doc["apiVersion"] != kubeadmAPI {
			t.Errorf("%s is written as %v", kind, doc["apiVersion"])
		}
	}
	if got := d[KindInit]["timeouts"]; !reflect.DeepEqual(got, map[string]any{"controlPlaneComponentHealthCheck": "4m0s"}) {
		t.Errorf("InitConfiguration timeouts = %v", got)
	}
	args, _ := json.Marshal(d[KindInit]["nodeRegistration"].(map[string]any)["kubeletExtraArgs"])
	if string(args) != `[{"name":"cgroup-root","value":"/node1"},{"name":"max-pods","value":"50"},{"name":"node-ip","value":"192.0.2.10"}]` {
		t.Errorf("kubeletExtraArgs = %s", args)
	}
	if d[KindCluster]["networking"].(map[string]any)["podSubnet"] != "100.64.0.0/10" {
		t.Errorf("networking = %v", d[KindCluster]["networking"])
	}
	join, err := c.Join("192.0.2.11", "192.0.2.10:6443", "abcdef.0123456789abcdef", "sha256:00", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := docs(t, join)[KindJoin]["timeouts"]; !reflect.DeepEqual(got, map[string]any{"controlPlaneComponentHealthCheck": "4m0s", "discovery": "5m0s"}) {
		t.Errorf("JoinConfiguration timeouts = %v", got)
	}
}

// TestConvertedKubeadmAccepts asks the base image's kubeadm whether what
// the conversion writes is a valid v1beta4 configuration: each converted
// document, laid over the image's defaults as apply does, for init and
// for join.
func TestConvertedKubeadmAccepts(t *testing.T) {
	kubeadm, version := kubeadmBinary(t)
	for _, conv := range conversions {
		t.Run(conv.name, func(t *testing.T) {
			c := imageDefaultsFor(t, version)
			if err := c.Merge("Clusterfile", []json.RawMessage{raw(t, conv.in)}); err != nil {
				t.Fatal(err)
			}
			validate(t, kubeadm, c)
		})
	}
}

// FuzzConvert: a Clusterfile's kubeadm documents come from users. A
// document converts, or is refused with an error; never a panic. What it
// converts to is v1beta4 documents that hold every value it had (but the
// fields dropped as kubeadm drops them), with no field v1beta4 removed,
// and its maps of flags as lists sorted by name.
func FuzzConvert(f *testing.F) {
	for _, c := range conversions {
		f.Add([]byte(c.in))
	}
	for _, b := range badDocuments {
		f.Add([]byte(b.doc))
	}
	f.Add([]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: null\netcd: {local: null}\n"))
	f.Add([]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {extraArgs: null, timeoutForControlPlane: null}\n"))
	f.Add([]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery: {timeout: null}\n"))
	f.Add([]byte(`{"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "InitConfiguration", "nodeRegistration": {"kubeletExtraArgs": {"": ""}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return
		}
		var doc map[string]any
		if json.Unmarshal(j, &doc) != nil || doc == nil {
			return
		}
		api, _ := doc["apiVersion"].(string)
		var before map[string]any
		json.Unmarshal(j, &before)
		out, err := convert(doc)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if api != apiV1beta2 && api != apiV1beta3 {
			return
		}
		if len(out) != 1 && len(out) != 3 {
			t.Fatalf("%d documents", len(out))
		}
		for _, d := range out {
			if d["apiVersion"] != kubeadmAPI || !slices.Contains([]any{KindInit, KindCluster, KindJoin}, d["kind"]) {
				t.Fatalf("converted to %v %v", d["apiVersion"], d["kind"])
			}
			if _, err := json.Marshal(d); err != nil {
				t.Fatal(err)
			}
		}
		d := out[0]
		for _, gone := range [][]string{{"apiServer", "timeoutForControlPlane"}, {"discovery", "timeout"}, {"useHyperKubeImage"}, {"dns", "type"}} {
			if m := sub(d, gone[:len(gone)-1]...); m != nil {
				if _, ok := m[gone[len(gone)-1]]; ok {
					t.Fatalf("%s is still there", strings.Join(gone, "."))
				}
			}
		}
		for _, at := range [][]string{{"apiServer"}, {"controllerManager"}, {"scheduler"}, {"etcd", "local"}, {"nodeRegistration"}} {
			m := sub(d, at...)
			for _, key := range []string{"extraArgs", "kubeletExtraArgs"} {
				if v, ok := m[key]; ok && v != nil {
					list, ok := v.([]any)
					if !ok {
						t.Fatalf("%s.%s is %T", strings.Join(at, "."), key, v)
					}
					var names []string
					for _, a := range list {
						names = append(names, a.(map[string]any)["name"].(string))
					}
					if !slices.IsSorted(names) {
						t.Fatalf("%s.%s not sorted: %v", strings.Join(at, "."), key, names)
					}
				}
			}
		}
		// Dropped as kubeadm drops them: the document says which.
		delete(before, "apiVersion")
		delete(before, "useHyperKubeImage")
		if dns := sub(before, "dns"); dns != nil {
			delete(dns, "type")
		}
		if a := sub(before, "apiServer"); a != nil {
			if t, _ := a["timeoutForControlPlane"].(string); !isDuration(t) || zero(t) {
				delete(a, "timeoutForControlPlane")
			}
		}
		if d := sub(before, "discovery"); d != nil && d["timeout"] == nil {
			delete(d, "timeout")
		}
		had, has := map[string]int{}, map[string]int{}
		leaves(before, had)
		for _, d := range out {
			delete(d, "apiVersion")
			leaves(d, has)
		}
		for v, n := range had {
			if has[v] < n {
				t.Fatalf("%s is in the document %d times, converted %d times", v, n, has[v])
			}
		}
	})
}

func zero(d string) bool {
	v, _ := time.ParseDuration(d)
	return v == 0
}

// leaves counts the values of a document that are not lists or maps,
// by their JSON.
func leaves(v any, n map[string]int) {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			leaves(e, n)
		}
	case []any:
		for _, e := range v {
			leaves(e, n)
		}
	default:
		data, _ := json.Marshal(v)
		n[string(data)]++
	}
}

// kubeadmBinary is the base image's kubeadm and its version, made (once,
// cached by version outside the checkout) by images/kubernetes/binaries.sh,
// which the Kubernetes end-to-end test needs too. Making it needs root
// (apt-get, a network namespace): the tests that ask kubeadm itself skip
// only when not root.
func kubeadmBinary(t *testing.T) (string, string) {
	t.Helper()
	script := filepath.Join("..", "..", "..", "images", "kubernetes", "binaries.sh")
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for line := range strings.SplitSeq(string(data), "\n") {
		// The first one is the pin; later ones write it out.
		if v, ok := strings.CutPrefix(line, "KUBERNETES_VERSION="); ok && version == "" {
			version = v
		}
	}
	if version == "" {
		t.Fatal("binaries.sh names no KUBERNETES_VERSION")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: images/kubernetes/binaries.sh makes kubeadm as root (CI runs as root)")
	}
	out, err := exec.Command("sh", script).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s", script, err, stderr)
	}
	bin := filepath.Join(strings.TrimSpace(string(out)), "bin", "kubeadm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s made no kubeadm: %v", script, err)
	}
	return bin, version
}

package kubeadm

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

// kubeadmEtcdManifest and kubeadmAPIServerManifest are what kubeadm
// v1.37.2 writes (kubeadm init phase etcd local, control-plane apiserver)
// for a master named node1 at 10.250.0.11.
const kubeadmEtcdManifest = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.250.0.11:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.250.0.11:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --feature-gates=InitialCorruptCheck=true
    - --initial-advertise-peer-urls=https://10.250.0.11:2380
    - --initial-cluster=node1=https://10.250.0.11:2380
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.250.0.11:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=https://10.250.0.11:2380
    - --name=node1
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --watch-progress-notify-interval=5s
    image: registry.k8s.io/etcd:3.7.3-0
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /livez
        port: probe-port
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: etcd
    ports:
    - containerPort: 2381
      name: probe-port
      protocol: TCP
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 127.0.0.1
        path: /readyz
        port: probe-port
        scheme: HTTP
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 100m
        memory: 100Mi
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 127.0.0.1
        path: /readyz
        port: probe-port
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
status: {}
`

const kubeadmAPIServerManifest = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.250.0.11:6443
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.250.0.11
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers=https://127.0.0.1:2379
    - --kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt
    - --kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key
    - --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
    - --proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt
    - --proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key
    - --requestheader-allowed-names=front-proxy-client
    - --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt
    - --requestheader-extra-headers-prefix=X-Remote-Extra-
    - --requestheader-group-headers=X-Remote-Group
    - --requestheader-username-headers=X-Remote-User
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key
    - --service-cluster-ip-range=10.96.0.0/12
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.37.2
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 10.250.0.11
        path: /livez
        port: probe-port
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    ports:
    - containerPort: 6443
      name: probe-port
      protocol: TCP
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 10.250.0.11
        path: /readyz
        port: probe-port
        scheme: HTTPS
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 250m
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 10.250.0.11
        path: /livez
        port: probe-port
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /etc/ssl/certs
      name: ca-certs
      readOnly: true
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
    - mountPath: /usr/local/share/ca-certificates
      name: usr-local-share-ca-certificates
      readOnly: true
    - mountPath: /usr/share/ca-certificates
      name: usr-share-ca-certificates
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/ssl/certs
      type: DirectoryOrCreate
    name: ca-certs
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
  - hostPath:
      path: /usr/local/share/ca-certificates
      type: DirectoryOrCreate
    name: usr-local-share-ca-certificates
  - hostPath:
      path: /usr/share/ca-certificates
      type: DirectoryOrCreate
    name: usr-share-ca-certificates
status: {}
`

func TestEtcdMemberOfKubeadmManifest(t *testing.T) {
	pod, err := ParseStaticPod([]byte(kubeadmEtcdManifest))
	if err != nil {
		t.Fatal(err)
	}
	name, peer, dir, err := pod.EtcdMember()
	if err != nil || name != "node1" || peer != "https://10.250.0.11:2380" || dir != "/var/lib/etcd" || pod.Image != "registry.k8s.io/etcd:3.7.3-0" {
		t.Errorf("member %q %q %q %v, image %s", name, peer, dir, err, pod.Image)
	}
	// A data directory elsewhere on the host (etcd.local.dataDir) is the
	// hostPath volume's, mounted at the same path in the pod.
	moved := strings.ReplaceAll(kubeadmEtcdManifest, "/var/lib/etcd", "/data/etcd")
	if pod, err = ParseStaticPod([]byte(moved)); err != nil {
		t.Fatal(err)
	}
	if _, _, dir, err := pod.EtcdMember(); err != nil || dir != "/data/etcd" {
		t.Errorf("a moved data directory: %q %v", dir, err)
	}
	api, err := ParseStaticPod([]byte(kubeadmAPIServerManifest))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ImageVersion(api.Image); err != nil || v != "v1.37.2" {
		t.Errorf("the API server's version: %q %v", v, err)
	}
}

// badEtcdManifests are static pod manifests the parsers refuse, with what
// their error says; also the fuzz target's seeds.
var badEtcdManifests = []struct{ name, manifest, want string }{
	{"not YAML", "kind: [", "not a static pod manifest"},
	{"not a pod", "kind: Deployment\nspec: {containers: [{image: x}]}", `kind "Deployment"`},
	{"two containers", "kind: Pod\nspec: {containers: [{image: x}, {image: y}]}", "2 containers"},
	{"no name", strings.Replace(kubeadmEtcdManifest, "- --name=node1\n", "", 1), "etcd --name \"\": not a node name"},
	{"a name that splits --initial-cluster", strings.Replace(kubeadmEtcdManifest, "--name=node1", "--name=a,b=https://evil:2380", 1), "not a node name"},
	{"two peer URLs", strings.Replace(kubeadmEtcdManifest, "--initial-advertise-peer-urls=https://10.250.0.11:2380", "--initial-advertise-peer-urls=https://10.250.0.11:2380,https://10.0.0.9:2380", 1), "not one https URL"},
	{"plain http", strings.Replace(kubeadmEtcdManifest, "--initial-advertise-peer-urls=https://", "--initial-advertise-peer-urls=http://", 1), "not one https URL"},
	{"no port", strings.Replace(kubeadmEtcdManifest, "--initial-advertise-peer-urls=https://10.250.0.11:2380", "--initial-advertise-peer-urls=https://10.250.0.11", 1), "not one https URL"},
	{"data outside a volume", strings.Replace(kubeadmEtcdManifest, "--data-dir=/var/lib/etcd", "--data-dir=/tmp/etcd", 1), "not a hostPath volume"},
	{"a relative data directory", strings.Replace(kubeadmEtcdManifest, "      path: /var/lib/etcd", "      path: ../../etc", 1), "not an absolute clean path"},
	{"data in /", strings.Replace(kubeadmEtcdManifest, "      path: /var/lib/etcd", "      path: /", 1), "not an absolute clean path"},
}

func TestStaticPodRefusals(t *testing.T) {
	for _, tc := range badEtcdManifests {
		pod, err := ParseStaticPod([]byte(tc.manifest))
		if err == nil {
			_, _, _, err = pod.EtcdMember()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseStaticPod(bytes.Repeat([]byte("#"), maxManifestSize+1)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a huge manifest: %v", err)
	}
}

func TestVersions(t *testing.T) {
	for image, want := range map[string]string{
		"registry.k8s.io/kube-apiserver:v1.37.2":       "v1.37.2",
		"localhost:5000/kube-apiserver:v1.38.0-rc.1":   "v1.38.0-rc.1",
		"registry.k8s.io/kube-apiserver":               "no version tag",
		"localhost:5000/kube-apiserver":                "no version tag",
		"registry.k8s.io/kube-apiserver@sha256:abcdef": "no version tag",
		"registry.k8s.io/kube-apiserver:latest":        `tag "latest" is not a version`,
		"registry.k8s.io/kube-apiserver:v1.37.2;id":    "is not a version",
	} {
		got, err := ImageVersion(image)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("ImageVersion(%s) = %s, want %s", image, got, want)
		}
	}
	if v, err := ParseVersion("v1.37.2\n"); err != nil || v != "v1.37.2" {
		t.Errorf("ParseVersion: %q %v", v, err)
	}
	if _, err := ParseVersion("kubeadm version: &version.Info{...}"); err == nil {
		t.Error("ParseVersion took kubeadm's long output")
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{{"v1.37.2", "v1.37.9", true}, {"v1.37.2", "v1.38.0", false}, {"v1.3.0", "v1.37.0", false}, {"v2.37.0", "v1.37.0", false}} {
		if SameMinor(tc.a, tc.b) != tc.same {
			t.Errorf("SameMinor(%s, %s) = %v", tc.a, tc.b, !tc.same)
		}
	}
	for in, want := range map[string]string{
		"sha256:" + strings.Repeat("ab", 32) + "+registry\n": "sha256:" + strings.Repeat("ab", 32),
		"sha256:" + strings.Repeat("ab", 32):                 "sha256:" + strings.Repeat("ab", 32),
		"":                                                   "",
		"sha256:xyz":                                         "",
		"$(reboot)":                                          "",
	} {
		if got := parseDigestMarker(in); got != want {
			t.Errorf("parseDigestMarker(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseStaticPod(f *testing.F) {
	f.Add([]byte(kubeadmEtcdManifest))
	f.Add([]byte(kubeadmAPIServerManifest))
	for _, tc := range badEtcdManifests {
		f.Add([]byte(tc.manifest))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pod, err := ParseStaticPod(data)
		if err != nil {
			return
		}
		ImageVersion(pod.Image)
		name, peer, dir, err := pod.EtcdMember()
		if err != nil {
			return
		}
		// What goes into --initial-cluster and a shell script.
		if strings.ContainsAny(name+peer, ",= \n") || !strings.HasPrefix(dir, "/") || strings.Contains(dir, "..") || dir == "/" {
			t.Fatalf("EtcdMember took %q %q %q", name, peer, dir)
		}
	})
}

// etcdPKITar is a master's PKI tar as GNU tar writes it: directories, then
// files.
func etcdPKITar(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := []byte(h.Linkname)
		if h.Typeflag == tar.TypeReg {
			h.Size, h.Linkname = int64(len(data)), ""
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(data)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// file is a regular file of etcdPKITar; its content goes in Linkname.
func pkiFile(name, content string) tar.Header {
	return tar.Header{Typeflag: tar.TypeReg, Name: name, Linkname: content, Mode: 0o600}
}

func pkiDir(name string) tar.Header {
	return tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}
}

func badPKITars(t testing.TB) []struct {
	name string
	data []byte
	want string
} {
	ca := pkiFile("pki/ca.crt", "ca")
	return []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no pki/ca.crt"},
		{"no CA", etcdPKITar(t, pkiDir("pki/"), pkiFile("pki/sa.key", "k")), "no pki/ca.crt"},
		{"outside pki", etcdPKITar(t, ca, pkiFile("etc/shadow", "x")), `member "etc/shadow": neither`},
		{"escaping pki", etcdPKITar(t, ca, pkiFile("pki/../../root/.ssh/id", "x")), "neither admin.conf nor a file under pki/"},
		{"absolute", etcdPKITar(t, ca, pkiFile("/pki/ca.key", "x")), "neither"},
		{"a symlink", etcdPKITar(t, ca, tar.Header{Typeflag: tar.TypeSymlink, Name: "pki/sa.key", Linkname: "/etc/shadow"}), "member pki/sa.key: not a regular file"},
		{"twice", etcdPKITar(t, ca, ca), "member pki/ca.crt: twice"},
		{"too big", etcdPKITar(t, ca, pkiFile("pki/big", strings.Repeat("x", maxPKIFile+1))), "member pki/big: 1048577 bytes"},
		{"cut short", etcdPKITar(t, ca, pkiFile("pki/sa.key", "key"))[:1024+100], "unexpected EOF"},
	}
}

func TestReadPKI(t *testing.T) {
	files, err := ReadPKI(bytes.NewReader(etcdPKITar(t, pkiDir("pki/"), pkiFile("pki/ca.crt", "ca"), pkiDir("pki/etcd/"), pkiFile("pki/etcd/ca.key", "k"), pkiFile("./admin.conf", "conf"))))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || string(files["pki/ca.crt"]) != "ca" || string(files["pki/etcd/ca.key"]) != "k" || string(files["admin.conf"]) != "conf" {
		t.Errorf("ReadPKI: %q", files)
	}
	for _, tc := range badPKITars(t) {
		if _, err := ReadPKI(bytes.NewReader(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzReadPKI(f *testing.F) {
	f.Add(etcdPKITar(f, pkiDir("pki/"), pkiFile("pki/ca.crt", "ca"), pkiFile("admin.conf", "conf")))
	for _, tc := range badPKITars(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := ReadPKI(bytes.NewReader(data))
		if err != nil {
			return
		}
		for name, data := range files {
			if name != "admin.conf" && (!strings.HasPrefix(name, "pki/") || strings.Contains(name, "..")) || len(data) > maxPKIFile {
				t.Fatalf("ReadPKI took %q (%d bytes)", name, len(data))
			}
		}
	})
}

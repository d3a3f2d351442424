package kubeadm

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func kubeconfigFor(server string) []byte {
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "` + server + `", certificate-authority-data: Y2E=}
contexts:
- name: admin@kubernetes
  context: {cluster: kubernetes, user: admin}
current-context: admin@kubernetes
users:
- name: admin
  user: {client-certificate-data: Y2VydA==, client-key-data: a2V5}
`)
}

// TestServerFromNodes: the admin kubeconfig hoist hands out reaches a
// master from outside the nodes when its server is the local name, and is
// left as it is otherwise.
func TestServerFromNodes(t *testing.T) {
	out, err := serverFromNodes(kubeconfigFor("https://apiserver.cluster.local:6444"), "192.0.2.10:6443")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clusters["kubernetes"]
	if c.Server != "https://192.0.2.10:6443" || string(c.CertificateAuthorityData) != "ca" || string(cfg.AuthInfos["admin"].ClientKeyData) != "key" {
		t.Errorf("server %s, CA %q: want the master's address and everything else kept", c.Server, c.CertificateAuthorityData)
	}
	for _, server := range []string{"https://api.example.com:6443", "https://192.0.2.1:6443"} {
		in := kubeconfigFor(server)
		if out, err := serverFromNodes(in, "192.0.2.10:6443"); err != nil || string(out) != string(in) {
			t.Errorf("%s: changed to\n%s %v", server, out, err)
		}
	}
}

func TestServerOf(t *testing.T) {
	if got, err := serverOf(kubeconfigFor("https://apiserver.cluster.local:6444")); err != nil || got != "apiserver.cluster.local:6444" {
		t.Errorf("serverOf = %q, %v", got, err)
	}
	for _, c := range []struct{ kubeconfig, want string }{
		{string(kubeconfigFor("http://10.0.0.1:6443")), `cluster "kubernetes": server "http://10.0.0.1:6443" is not https://HOST:PORT`},
		{string(kubeconfigFor("https://10.0.0.1")), `cluster "kubernetes": server "https://10.0.0.1" is not https://HOST:PORT`},
		{strings.Replace(string(kubeconfigFor("https://a:1")), "current-context: admin@kubernetes", "current-context: other", 1), `no current context "other"`},
		{strings.Replace(string(kubeconfigFor("https://a:1")), "{cluster: kubernetes,", "{cluster: gone,", 1), `context "admin@kubernetes": no cluster "gone"`},
	} {
		if _, err := serverOf([]byte(c.kubeconfig)); err == nil || err.Error() != c.want {
			t.Errorf("%v, want %s", err, c.want)
		}
	}
	if _, err := serverOf([]byte("{not yaml")); err == nil {
		t.Error("a kubeconfig that is not YAML was read")
	}
}

// FuzzServerOf: admin.conf comes from a node. Either an error, or a
// host:port; what serverFromNodes writes is a kubeconfig again.
func FuzzServerOf(f *testing.F) {
	f.Add(kubeconfigFor("https://apiserver.cluster.local:6444"))
	f.Add(kubeconfigFor("https://[fd00::1]:6443"))
	f.Add(kubeconfigFor("https://%zz:1"))
	f.Add([]byte("current-context: x\ncontexts: [{name: x}]\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if host, err := serverOf(data); err == nil && !strings.Contains(host, ":") {
			t.Fatalf("server %q without a port", host)
		}
		if out, err := serverFromNodes(data, "192.0.2.1:6443"); err == nil {
			if _, err := clientcmd.Load(out); err != nil {
				t.Fatalf("serverFromNodes wrote what does not load: %v", err)
			}
		}
	})
}

// TestMemberOn: the member of a leaving master, found by its peer URL in
// etcdctl's list.
func TestMemberOn(t *testing.T) {
	list := []byte(`{"header":{"cluster_id":1},"members":[
 {"ID":11553427018745335566,"name":"m1","peerURLs":["https://10.0.0.2:2380"],"clientURLs":["https://10.0.0.2:2379"]},
 {"ID":2,"name":"m2","peerURLs":["https://[fd00::3]:2380"]},
 {"ID":3,"name":"learner","peerURLs":["not a url %zz", "https://10.0.0.4:2380"],"isLearner":true}]}`)
	for ip, want := range map[string]uint64{"10.0.0.2": 11553427018745335566, "fd00::3": 2, "10.0.0.4": 3, "10.0.0.9": 0} {
		id, ok, err := memberOn(list, ip)
		if err != nil || id != want || ok != (want != 0) {
			t.Errorf("%s: %d %v %v, want %d", ip, id, ok, err, want)
		}
	}
	if _, _, err := memberOn([]byte(`{"members":[{"ID":"x"}]}`), "10.0.0.2"); err == nil {
		t.Error("a list with a string ID was read")
	}
}

// FuzzMemberOn: the list comes from a node. Either an error, or a member
// whose ID is not zero when found.
func FuzzMemberOn(f *testing.F) {
	f.Add([]byte(`{"members":[{"ID":1,"peerURLs":["https://10.0.0.2:2380"]}]}`), "10.0.0.2")
	f.Add([]byte(`{"members":[{"ID":0,"peerURLs":["https://10.0.0.2:2380"]}]}`), "10.0.0.2")
	f.Add([]byte(`{"members":null}`), "")
	f.Add([]byte(`[]`), "::1")
	f.Fuzz(func(t *testing.T, list []byte, ip string) {
		if _, ok, err := memberOn(list, ip); ok && err != nil {
			t.Fatalf("found, and %v", err)
		}
	})
}

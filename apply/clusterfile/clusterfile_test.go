package clusterfile

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/layout"
)

const hoistClusterfile = `apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata:
  name: demo
spec:
  image: acme/platform:v1
  ssh:
    user: ops
    privateKey: /root/.ssh/id_ed25519
  env:
    PodCIDR: 100.64.0.0/10
  hosts:
    - ips: [10.0.0.2]
      roles: [master]
      labels: {zone: a}
      taints: ["dedicated=infra:NoSchedule"]
    - ips: ["10.0.0.10-10.0.0.12", 10.0.0.20]
      roles: [node]
      ssh: {port: 2222, password: s3cret}
      env: {PodCIDR: 10.1.0.0/16, Extra: x}
  registry:
    domain: hub.acme.local
    port: 5443
  dataRoot: /data/hoist
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: hostname}
spec:
  type: SHELL
  phase: post-install
  scope: [master]
  data: |
    hostnamectl set-hostname master-0
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking: {podSubnet: 100.64.0.0/10}
`

const sealerClusterfile = `apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: my-cluster
spec:
  image: docker.io/sealerio/kubernetes:v1.22.15
  ssh:
    passwd: xxx
    user: root
    port: "22"
  env:
    - key1=value1
  hosts:
    - ips: [ 192.168.0.2 ]
      roles: [ master ]
      ssh:
        port: "24"
    - ips: [ 192.168.0.3 ]
      roles: [ node ]
      env: [ "a=b" ]
  registry:
    localRegistry:
      domain: sea.hub
      port: 5000
---
apiVersion: sealer.io/v1
kind: Plugin
metadata:
  name: MyShell
spec:
  type: SHELL
  action: PostInstall
  scope: master|node
  data: |
    kubectl get nodes
`

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestHoistClusterfile(t *testing.T) {
	cf, err := ParseClusterfile("Clusterfile", []byte(hoistClusterfile))
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Cluster
	if c.Name != "demo" || c.Image != "acme/platform:v1" || c.DataRoot != "/data/hoist" {
		t.Errorf("cluster = %+v", c)
	}
	// The kubeadm document is kept for the Kubernetes runtime.
	if len(c.Kubeadm) != 1 || !strings.Contains(string(c.Kubeadm[0]), "100.64.0.0/10") {
		t.Errorf("kubeadm documents = %s", c.Kubeadm)
	}
	var ips []string
	for _, n := range c.Nodes {
		ips = append(ips, n.IP.String())
	}
	if want := []string{"10.0.0.2", "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.20"}; !reflect.DeepEqual(ips, want) {
		t.Errorf("nodes %v, want %v", ips, want)
	}
	master, worker := c.Nodes[0], c.Nodes[2]
	if !master.IsMaster() || worker.IsMaster() {
		t.Errorf("roles: %v %v", master.Roles, worker.Roles)
	}
	if master.SSH != (SSH{User: "ops", Port: 22, PrivateKey: "/root/.ssh/id_ed25519"}) {
		t.Errorf("master ssh %+v", master.SSH)
	}
	// A host's own credentials replace the default key.
	if worker.SSH != (SSH{User: "ops", Port: 2222, Password: "s3cret"}) {
		t.Errorf("worker ssh %+v", worker.SSH)
	}
	if worker.Env["PodCIDR"] != "10.1.0.0/16" || worker.Env["Extra"] != "x" || master.Env["PodCIDR"] != "100.64.0.0/10" {
		t.Errorf("env: master %v worker %v", master.Env, worker.Env)
	}
	if master.Labels["zone"] != "a" || !reflect.DeepEqual(master.Taints, []string{"dedicated=infra:NoSchedule"}) {
		t.Errorf("labels/taints %+v", master)
	}
	if c.Registry.Domain != "hub.acme.local" || c.Registry.Port != 5443 || !reflect.DeepEqual(c.Registry.Nodes, []netip.Addr{ip("10.0.0.2")}) {
		t.Errorf("registry %+v", c.Registry)
	}
	if len(cf.Plugins) != 1 || !reflect.DeepEqual(cf.Plugins[0], Plugin{Name: "hostname", Type: "SHELL", Phase: "post-install", Scope: []Role{"master"}, Data: "hostnamectl set-hostname master-0\n"}) {
		t.Errorf("plugins %+v", cf.Plugins)
	}
	if strings.Contains(worker.SSH.String(), "s3cret") {
		t.Errorf("SSH.String shows the password: %s", worker.SSH)
	}
}

func TestSealerClusterfile(t *testing.T) {
	cf, err := ParseClusterfile("Clusterfile", []byte(sealerClusterfile))
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Cluster
	if c.Name != "my-cluster" || len(c.Nodes) != 2 || c.DataRoot != DefaultDataRoot {
		t.Fatalf("cluster %+v", c)
	}
	if c.Nodes[0].SSH != (SSH{User: "root", Port: 24, Password: "xxx"}) || c.Nodes[1].SSH.Port != 22 {
		t.Errorf("ssh %+v %+v", c.Nodes[0].SSH, c.Nodes[1].SSH)
	}
	if c.Env["key1"] != "value1" || c.Nodes[1].Env["a"] != "b" || c.Nodes[1].Env["key1"] != "value1" {
		t.Errorf("env %v %v", c.Env, c.Nodes[1].Env)
	}
	if c.Registry.Domain != "sea.hub" || c.Registry.Port != 5000 {
		t.Errorf("registry %+v", c.Registry)
	}
	if len(cf.Plugins) != 1 || cf.Plugins[0].Phase != "post-install" || !reflect.DeepEqual(cf.Plugins[0].Scope, []Role{"master", "node"}) {
		t.Errorf("plugin %+v", cf.Plugins)
	}
}

func TestClusterfileErrors(t *testing.T) {
	base := func(spec string) string {
		return "apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n" + spec
	}
	hosts := "  hosts:\n    - ips: [10.0.0.2]\n      roles: [master]\n"
	sealerDoc := func(spec string) string {
		return "apiVersion: sealer.io/v2\nkind: Cluster\nmetadata: {name: c}\nspec:\n  image: a/b:v1\n" + hosts + spec
	}
	plugin := func(spec string) string {
		return base("  image: a/b:v1\n"+hosts) + "---\napiVersion: hoist.dev/v1alpha1\nkind: Plugin\nmetadata: {name: p}\nspec:\n" + spec
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", "", "no Cluster document"},
		{"not YAML", "a: [b", "document 1: not valid YAML"},
		{"unknown field", base("  imge: a/b:v1\n" + hosts), `document 1 (Cluster "c"): spec: unknown field "imge"`},
		{"no image", base(hosts), "spec.image: missing"},
		{"bad image", base("  image: Bad Name\n" + hosts), `spec.image: "Bad Name" is not an image name`},
		{"no hosts", base("  image: a/b:v1\n"), "spec.hosts: no hosts"},
		{"bad ip", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.300]\n      roles: [master]\n"), `spec.hosts[0].ips[0]: "10.0.0.300" is not an IP address`},
		{"reversed range", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.9-10.0.0.2]\n      roles: [master]\n"), "ends before it starts"},
		{"huge range", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.1-10.0.9.1]\n      roles: [master]\n"), "more than 1024 addresses"},
		{"mixed range", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.1-::1]\n      roles: [master]\n"), "one address family"},
		{"duplicate ip", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [master]\n    - ips: [10.0.0.1-10.0.0.3]\n      roles: [node]\n"), "spec.hosts[1].ips[0]: 10.0.0.2 is already listed at spec.hosts[0].ips[0]"},
		{"no master", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [node]\n"), "no host has the master role"},
		{"bad role", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [boss]\n"), `spec.hosts[0].roles: [boss]: a host is a master, a node, or both`},
		{"no roles", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n"), "spec.hosts[0].roles: missing"},
		{"bad port", base("  image: a/b:v1\n  ssh: {port: twenty}\n" + hosts), `port "twenty" is not a number`},
		{"port range", base("  image: a/b:v1\n  ssh: {port: 70000}\n" + hosts), "spec.ssh: port 70000 is not a port"},
		{"passphrase alone", base("  image: a/b:v1\n  ssh: {passphrase: x}\n" + hosts), "passphrase given without privateKey"},
		{"bad taint", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [master]\n      taints: [a=b:Never]\n"), `spec.hosts[0].taints[0]: taint "a=b:Never"`},
		{"bad env", base("  image: a/b:v1\n  env: [novalue]\n" + hosts), `env "novalue" is not KEY=VALUE`},
		{"registry node", base("  image: a/b:v1\n  registry: {nodes: [10.0.0.9]}\n" + hosts), "spec.registry.nodes[0]: 10.0.0.9 is not one of the hosts"},
		{"relative data root", base("  image: a/b:v1\n  dataRoot: data\n" + hosts), `spec.dataRoot: "data" is not an absolute path`},
		{"two clusters", base("  image: a/b:v1\n"+hosts) + "---\n" + base("  image: a/b:v1\n"+hosts), "document 2 (Cluster \"c\"): a Clusterfile holds one Cluster"},
		{"unknown kind", base("  image: a/b:v1\n"+hosts) + "---\napiVersion: v1\nkind: ConfigMap\n", `document 2 (ConfigMap): kind: "ConfigMap" is not a Clusterfile kind`},
		{"wrong version", "apiVersion: hoist.dev/v2\nkind: Cluster\nmetadata: {name: c}\nspec: {}\n", `apiVersion: "hoist.dev/v2" is not supported for Cluster`},
		{"no kind", "apiVersion: hoist.dev/v1alpha1\n", "kind: missing"},
		{"plugin type", plugin("  type: ANSIBLE\n  phase: post-install\n  data: x\n"), `document 2 (Plugin "p"): spec.type: "ANSIBLE" is not supported`},
		{"plugin phase", plugin("  type: SHELL\n  phase: whenever\n  data: x\n"), `spec.phase: "whenever" is not a phase`},
		{"plugin data", plugin("  type: SHELL\n  phase: pre-install\n"), "spec.data: empty"},
		{"plugin scope", plugin("  type: SHELL\n  phase: pre-install\n  scope: [b@ss]\n  data: x\n"), `spec.scope: "b@ss" is not a role`},
		{"duplicate plugin", plugin("  type: SHELL\n  phase: pre-install\n  data: x\n") + "---\napiVersion: hoist.dev/v1alpha1\nkind: Plugin\nmetadata: {name: p}\nspec: {type: SHELL, phase: pre-install, data: y}\n", `two plugins are named "p"`},
		{"sealer external registry", "apiVersion: sealer.io/v2\nkind: Cluster\nmetadata: {name: c}\nspec:\n  image: a/b:v1\n" + hosts + "  registry:\n    externalRegistry: {domain: x}\n", "spec.registry.externalRegistry: not supported"},
		{"name escapes", strings.Replace(base("  image: a/b:v1\n"+hosts), "{name: c}", "{name: ../../x}", 1), `document 1 (Cluster "../../x"): metadata.name: "../../x" is not a DNS-1123 label`},
		{"no name", strings.Replace(base("  image: a/b:v1\n"+hosts), "metadata: {name: c}\n", "", 1), "document 1 (Cluster): metadata.name: empty: a cluster needs a name"},
		{"upper-case name", strings.Replace(base("  image: a/b:v1\n"+hosts), "{name: c}", "{name: Prod}", 1), `metadata.name: "Prod" is not a DNS-1123 label`},
		{"sealer name escapes", "apiVersion: sealer.io/v2\nkind: Cluster\nmetadata: {name: /etc}\nspec:\n  image: a/b:v1\n" + hosts, `metadata.name: "/etc" is not a DNS-1123 label`},
		{"env key is a command", base("  image: a/b:v1\n  env: {'X=1; touch /x; Y': v}\n" + hosts), `spec.env: key "X=1; touch /x; Y" is not a variable name`},
		{"sealer env key is a command", base("  image: a/b:v1\n  env: ['A$(touch /x)=1']\n" + hosts), `spec.env: key "A$(touch /x)" is not a variable name`},
		{"env key with a dot", base("  image: a/b:v1\n  env: {image.tag: v}\n" + hosts), `spec.env: key "image.tag" is not a variable name`},
		{"env key starts with a digit", base("  image: a/b:v1\n  env: {1A: v}\n" + hosts), `spec.env: key "1A" is not a variable name`},
		{"host env key", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [master]\n      env: {'a b': v}\n"), `spec.hosts[0].env: key "a b" is not a variable name`},
		{"data root /", base("  image: a/b:v1\n  dataRoot: /\n" + hosts), "spec.dataRoot: / is not a data root"},
		{"data root / uncleaned", base("  image: a/b:v1\n  dataRoot: /var/..\n" + hosts), "spec.dataRoot: / is not a data root"},
		{"custom role only", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [master]\n    - ips: [10.0.0.3]\n      roles: [db]\n"), "spec.hosts[1].roles: [db]: a host is a master, a node, or both"},
		{"role with a space", base("  image: a/b:v1\n  hosts:\n    - ips: [10.0.0.2]\n      roles: [master, 'a b']\n"), `spec.hosts[0].roles[1]: "a b" is not a role`},
		{"plugin phase in a list", plugin("  type: SHELL\n  phase: pre-install|rollback\n  data: x\n"), `spec.phase: "rollback": hoist has no rollback`},
		{"plugin empty phase in a list", plugin("  type: SHELL\n  phase: pre-install|\n  data: x\n"), `spec.phase: "" is not a phase`},
		{"container runtime", sealerDoc("  containerRuntime: {type: docker}\n"), `spec.containerRuntime.type: "docker": hoist's Kubernetes runs on containerd`},
		{"host aliases", sealerDoc("  hostAliases: [{ip: 10.0.0.9, hostnames: [x]}]\n"), "spec.hostAliases: not supported: write the hosts entries with a pre-init-host plugin"},
		{"encrypted password", sealerDoc("  ssh: {passwd: abc, encrypted: true}\n"), "spec.ssh.encrypted: sealer's encrypted passwords are not supported"},
		{"encrypted host password", strings.Replace(sealerDoc(""), "roles: [master]\n", "roles: [master]\n      ssh: {encrypted: true}\n", 1), "spec.hosts[0].ssh.encrypted"},
		{"registry credentials", sealerDoc("  registry: {localRegistry: {username: u, password: p}}\n"), "spec.registry.localRegistry.username: not supported"},
		{"registry bad SAN", sealerDoc("  registry: {localRegistry: {cert: {subjectAltName: {dnsNames: ['a b']}}}}\n"), `subjectAltName.dnsNames[0]: "a b" is not a DNS name`},
		{"registry bad SAN IP", sealerDoc("  registry: {localRegistry: {cert: {subjectAltName: {ips: [10.0.0.300]}}}}\n"), `subjectAltName.ips[0]: "10.0.0.300" is not an IP address`},
		{"config path out", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x}\nspec: {path: ../etc/passwd, data: b}\n", `document 2 (Config "x"): spec.path: "../etc/passwd" is not a clean path inside the rootfs`},
		{"config absolute path", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x}\nspec: {path: /etc/passwd, data: b}\n", `spec.path: "/etc/passwd" is not a clean path`},
		{"config no path", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x}\nspec: {data: b}\n", `spec.path: "" is not a clean path`},
		{"config strategy", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x}\nspec: {path: etc/a, data: b, strategy: append}\n", `spec.strategy: "append": want overwrite or merge`},
		{"config processor", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x}\nspec: {path: etc/a, data: b, process: value|toXML}\n", `spec.process: "toXML" is not a processor`},
		{"config twice", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x1}\nspec: {path: etc/a, data: b}\n---\napiVersion: sealer.io/v2\nkind: Config\nmetadata: {name: x2}\nspec: {path: ./etc/a, data: c}\n", `document 3 (Config "x2"): spec.path: etc/a is written by two Config documents`},
		{"config version", sealerDoc("") + "---\napiVersion: sealer.aliyun.com/v1alpha1\nkind: Config\nmetadata: {name: x}\nspec: {path: etc/a, data: b}\n", `apiVersion: "sealer.aliyun.com/v1alpha1" is not supported for Config`},
		{"application file outside the app", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web,  files: [{path: ../x, data: y}]}]\n", `spec.configs[0].files[0].path: "../x" is not a clean relative path inside the app's folder (a/b.yaml)`},
		{"application file absolute", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web,  files: [{path: a.yaml, data: y}, {path: /etc/passwd, data: y}]}]\n", `spec.configs[0].files[1].path: "/etc/passwd" is not a clean relative path inside the app's folder (a/b.yaml)`},
		{"application file without path", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web, files: [{data: y}]}]\n", `spec.configs[0].files[0].path: missing: the file's path in the app's folder`},
		{"application file template", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web,  files: [{path: values.yaml.tmpl, data: y}]}]\n", `spec.configs[0].files[0].path: "values.yaml.tmpl" is a template's name: give the rendered file's (without .tmpl)`},
		{"application file strategy", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web,  files: [{path: v.yaml, strategy: render, data: y}]}]\n", `spec.configs[0].files[0].strategy: "render" is not overwrite or merge`},
		{"application file field", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web,  files: [{path: v.yaml, value: y}]}]\n", `unknown field "value"`},
		{"application env", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: web,  env: ['=x']}]\n", `env "=x" is not KEY=VALUE`},
		{"application without app name", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{launch: {cmds: [x]}}]\n", "spec.configs[0].name: missing"},
		{"application config twice", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec:\n  configs: [{name: w, launch: {cmds: [x]}}, {name: w, launch: {cmds: [y]}}]\n", `spec.configs[1].name: app "w" has two configs`},
		{"application unknown field", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec: {launchApp: [x]}\n", `spec: unknown field "launchApp"`},
		{"two applications", sealerDoc("") + "---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: a}\nspec: {cmds: [x]}\n---\napiVersion: sealer.io/v2\nkind: Application\nmetadata: {name: b}\nspec: {cmds: [y]}\n", "a Clusterfile holds one Application"},
		{"application version", sealerDoc("") + "---\napiVersion: apps.sealer.io/v1\nkind: Application\nmetadata: {name: a}\nspec: {cmds: [x]}\n", `apiVersion: "apps.sealer.io/v1" is not supported for Application`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClusterfile("Clusterfile", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "Clusterfile: ") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestFieldErrorUnwraps(t *testing.T) {
	_, err := ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {image: a/b:v1}\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Document != 1 || fe.Field != "spec.hosts" || fe.Kind != "Cluster" {
		t.Fatalf("err = %#v", err)
	}
}

func TestClusterFromFlags(t *testing.T) {
	c, err := ClusterFromFlags("acme/platform:v1", "10.0.0.2,10.0.0.3", "10.0.0.10-10.0.0.11", "", SSH{User: "root", Port: 22, Password: "pw"}, []string{"A=1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 4 || len(c.Masters()) != 2 || c.Env["A"] != "1" || c.Nodes[3].SSH.Password != "pw" {
		t.Errorf("cluster %+v", c)
	}
	for _, tc := range []struct {
		masters, nodes string
		env            []string
		want           string
	}{
		{"", "10.0.0.10", nil, "--masters/--nodes: no host has the master role"},
		{"10.0.0.x", "", nil, `--masters/--nodes: "10.0.0.x" is not an IP address`},
		{"10.0.0.2", "", []string{"novalue"}, `-e "novalue": want KEY=VALUE`},
		{"10.0.0.2", "", []string{"A;touch /x=1"}, `-e: key "A;touch /x" is not a variable name`},
		{"10.0.0.2", "", []string{"A B=2"}, `-e: key "A B" is not a variable name`},
	} {
		if _, err := ClusterFromFlags("acme/platform:v1", tc.masters, tc.nodes, "", SSH{User: "root", Port: 22}, tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

func TestParseIPs(t *testing.T) {
	got, err := ParseIPs("fd00::fe-fd00::101")
	if err != nil || len(got) != 4 || got[3] != ip("fd00::101") {
		t.Errorf("ipv6 range: %v %v", got, err)
	}
	if got, err := ParseIPs(" 10.0.0.1 - 10.0.0.1 "); err != nil || len(got) != 1 {
		t.Errorf("one-address range: %v %v", got, err)
	}
}

func FuzzClusterfile(f *testing.F) {
	f.Add([]byte(hoistClusterfile))
	f.Add([]byte(sealerClusterfile))
	f.Add([]byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nspec: {image: a, hosts: [{ips: ['1.1.1.1-1.1.1.3'], roles: [master]}]}\n"))
	f.Add([]byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: ../../x}\nspec: {image: a, hosts: [{ips: ['1.1.1.1'], roles: [master]}]}\n"))
	f.Add([]byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nspec: {image: a, hosts: [{ips: ['1.1.1.1'], roles: [master]}]}\n"))
	f.Add([]byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {image: a, env: {'X=1; touch /x; Y': v}, hosts: [{ips: ['1.1.1.1'], roles: [master]}]}\n"))
	f.Add([]byte("apiVersion: sealer.io/v2\nkind: Cluster\nmetadata: {name: c}\nspec: {image: a, dataRoot: /, hosts: [{ips: ['1.1.1.1'], roles: [master], env: ['A B=1']}]}\n"))
	f.Add([]byte(sealerEveryKind))
	f.Add([]byte("apiVersion: sealer.io/v2\nkind: Plugin\nmetadata: {name: p}\nspec: {type: SHELL, action: 'PreInit|upgrade|', scope: 'a b|c', data: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := ParseClusterfile("Clusterfile", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Clusterfile") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		c := cf.Cluster
		if c.Kubeconfig == "" && (len(c.Nodes) == 0 || len(c.Masters()) == 0 || len(c.Registry.Nodes) == 0) {
			t.Fatalf("accepted a cluster without nodes, masters or registry nodes: %+v", c)
		}
		if err := agent.CheckClusterDir(layout.NodeDir(c.DataRoot, c.Name).Dir, c.Name); err != nil {
			t.Fatalf("accepted a cluster whose directory clean would refuse: %v", err)
		}
		for _, p := range cf.Plugins {
			if !slices.Contains(Phases, p.Phase) {
				t.Fatalf("accepted a plugin of phase %q", p.Phase)
			}
			for _, r := range p.Scope {
				if checkRole(string(r)) != nil {
					t.Fatalf("accepted a scope of role %q", r)
				}
			}
		}
		for _, n := range c.Nodes {
			if !n.IsMaster() && !slices.Contains(n.Roles, RoleNode) {
				t.Fatalf("accepted a host that is neither master nor node: %v", n.Roles)
			}
		}
		for _, env := range append([]map[string]string{c.Env}, nodeEnvs(c)...) {
			for k := range env {
				if !IsEnvName(k) {
					t.Fatalf("accepted env key %q", k)
				}
			}
		}
	})
}

func nodeEnvs(c Cluster) []map[string]string {
	var out []map[string]string
	for _, n := range c.Nodes {
		out = append(out, n.Env)
	}
	return out
}

// sealerEveryKind is a sealer Clusterfile of every kind hoist reads,
// written from sealer's documentation: a v2 Cluster with launch overrides,
// containerd, an HA registry with more certificate names and a custom
// role; an Application; plugins of both apiVersions with phase lists.
const sealerEveryKind = `apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: shop
spec:
  image: acme/shop:v2
  containerRuntime:
    type: containerd
  ssh: {passwd: pw}
  hosts:
    - ips: [10.1.0.2, 10.1.0.3]
      roles: [master]
    - ips: [10.1.0.4]
      roles: [node, db]
  cmd: ["kubectl get nodes"]
  registry:
    localRegistry:
      domain: hub.shop
      port: 5000
      ha: true
      insecure: true
      cert:
        subjectAltName:
          dnsNames: [hub.shop.example]
          ips: [192.0.2.9]
---
apiVersion: sealer.io/v2
kind: Config
metadata:
  name: db-config
spec:
  path: etc/db.yaml
  strategy: merge
  process: value|toJson
  data: |
    options: {pool: 10}
---
apiVersion: sealer.io/v2
kind: Application
metadata:
  name: shop-apps
spec:
  cmds: ["echo overridden by spec.cmd"]
  launchApps: [web, db]
  configs:
    - name: db
      env: [DB_SIZE=10Gi, image.tag=v2]
      files:
        - path: values.yaml
          strategy: merge
          data: |
            replicas: 3
        - path: conf/extra.conf
          data: "pool=10"
      launch:
        cmds: ["sh ./install.sh --fast"]
---
apiVersion: sealer.io/v1
kind: Plugin
metadata:
  name: disks
spec:
  type: SHELL
  action: PreInit|PostInstall
  scope: db
  data: mkfs.ext4 /dev/vdb
---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: clean
spec:
  type: SHELL
  action: pre-clean-host
  scope: master|db
  data: rm -rf /data/db
---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: kernel
spec:
  type: SHELL
  action: upgrade-host|upgrade
  data: echo upgraded
`

func TestSealerEveryKind(t *testing.T) {
	cf, err := ParseClusterfile("Clusterfile", []byte(sealerEveryKind))
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Cluster
	want := Launch{Apps: []string{"web", "db"}, Cmds: []string{"kubectl get nodes"}, AppCmds: map[string][]string{"db": {"sh ./install.sh --fast"}},
		AppEnv:   map[string]map[string]string{"db": {"DB_SIZE": "10Gi", "image.tag": "v2"}},
		AppFiles: map[string][]AppFile{"db": {{Path: "values.yaml", Strategy: ConfigMerge, Data: "replicas: 3\n"}, {Path: "conf/extra.conf", Strategy: ConfigOverwrite, Data: "pool=10"}}}}
	if !reflect.DeepEqual(c.Launch, want) {
		t.Errorf("launch %+v, want %+v", c.Launch, want)
	}
	if !reflect.DeepEqual(c.Registry.Nodes, []netip.Addr{ip("10.1.0.2"), ip("10.1.0.3")}) || !reflect.DeepEqual(c.Registry.SANs, []string{"hub.shop.example", "192.0.2.9"}) {
		t.Errorf("registry %+v: want both masters and the names", c.Registry)
	}
	if want := []Config{{Name: "db-config", Path: "etc/db.yaml", Strategy: ConfigMerge, Process: []string{"value", "toJson"}, Data: "options: {pool: 10}\n"}}; !reflect.DeepEqual(c.Configs, want) {
		t.Errorf("configs %+v, want %+v", c.Configs, want)
	}
	if !reflect.DeepEqual(c.Nodes[2].Roles, []Role{"node", "db"}) {
		t.Errorf("roles %v", c.Nodes[2].Roles)
	}
	var got []string
	for _, p := range cf.Plugins {
		got = append(got, p.Name+" "+string(p.Phase)+" "+strings.Join(RoleNames(p.Scope), ","))
	}
	if want := []string{"disks pre-init-host db", "disks post-install db", "clean pre-clean-host db,master", "kernel upgrade-host ", "kernel upgrade "}; !reflect.DeepEqual(got, want) {
		t.Errorf("plugins %q, want %q", got, want)
	}
	// Without spec.cmd, the Application's commands stand.
	noCmd := strings.Replace(sealerEveryKind, `  cmd: ["kubectl get nodes"]`+"\n", "", 1)
	if cf, err := ParseClusterfile("Clusterfile", []byte(noCmd)); err != nil || !reflect.DeepEqual(cf.Cluster.Launch.Cmds, []string{"echo overridden by spec.cmd"}) {
		t.Errorf("the Application's cmds: %+v %v", cf, err)
	}
}

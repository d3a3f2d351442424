package clusterfile

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// keptSource has every kind of access a host can have: the default key
// with its passphrase, a group's own password, a group's own key, a port
// of its own, and the agent (no key, no password) under a default of none.
const keptSource = `apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: kept}
spec:
  image: acme/platform:v1
  ssh: {user: ops, privateKey: /keys/default, passphrase: pp-secret}
  env: {DB_PASSWORD: env-secret, PodCIDR: 100.64.0.0/10}
  hosts:
  - ips: [10.0.0.2]
    roles: [master]
    labels: {zone: a}
    taints: ["dedicated=infra:NoSchedule"]
  - ips: ["10.0.0.10-10.0.0.11"]
    roles: [node]
    ssh: {port: 2222, password: pw-secret}
    env: {Extra: host-secret}
  - ips: [10.0.0.12]
    roles: [node]
    ssh: {privateKey: /keys/own}
  - ips: [10.0.0.13]
    roles: [master, node]
    ssh: {port: 2200}
  registry: {domain: hub.acme.local, port: 5443, nodes: [10.0.0.2, 10.0.0.13]}
  dataRoot: /data/hoist
  kubeconfig: /root/other.conf
---
apiVersion: hoist.dev/v1alpha1
kind: Plugin
metadata: {name: hostname}
spec: {type: SHELL, phase: pre-clean-host, scope: [master], data: "echo clean\nhostname\n"}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens: [{token: abcdef.kubeadmsecret}]
`

const agentSource = `apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: agent}
spec:
  image: acme/platform:v1
  hosts:
  - {ips: [10.0.0.2], roles: [master]}
  - {ips: [10.0.0.3], roles: [node], ssh: {password: pw-secret}}
`

// withoutSecrets is what a kept Clusterfile is to read back to: the
// cluster less its env values and kubeadm documents, and less the
// secrets, which Fill gives back.
func withoutSecrets(c Cluster) Cluster {
	c.Env, c.Kubeadm = map[string]string{}, nil
	c.Launch, c.Registry.SANs, c.Configs = Launch{}, nil, nil
	c.Nodes = slices.Clone(c.Nodes)
	for i := range c.Nodes {
		c.Nodes[i].Env = map[string]string{}
	}
	return c
}

// TestKeptRoundTrip: the Clusterfile parser reads back what MarshalKept
// writes to the cluster it was given, less what may be secret; Fill with
// the secrets restores every host's access exactly, and writing the kept
// file again changes nothing.
func TestKeptRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, source, password, passphrase string
		noPassword, noPassphrase           []string
	}{
		{"hoist", keptSource, "pw-secret", "pp-secret", []string{"10.0.0.10", "10.0.0.11"}, []string{DefaultSSH, "10.0.0.13", "10.0.0.2"}},
		{"agent", agentSource, "pw-secret", "", []string{"10.0.0.3"}, nil},
		{"sealer", sealerClusterfile, "xxx", "", []string{"192.168.0.2", "192.168.0.3", DefaultSSH}, nil},
		// Plugins of several phases, custom roles, a registry on every
		// master, launch overrides.
		{"sealer every kind", sealerEveryKind, "pw", "", []string{"10.1.0.2", "10.1.0.3", "10.1.0.4", DefaultSSH}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := ParseClusterfile("Clusterfile", []byte(tc.source))
			if err != nil {
				t.Fatal(err)
			}
			data, err := MarshalKept(orig)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"pw-secret", "pp-secret", "env-secret", "host-secret", "kubeadmsecret", "xxx"} {
				if bytes.Contains(data, []byte(secret)) {
					t.Errorf("%q is in the kept Clusterfile:\n%s", secret, data)
				}
			}
			if !bytes.HasPrefix(data, []byte("# The Clusterfile last applied to cluster "+orig.Cluster.Name)) || !bytes.Contains(data, []byte("passwords and private key passphrases are left out")) {
				t.Errorf("the kept Clusterfile does not say what it leaves out:\n%s", data)
			}

			// The parser apply -f uses reads it as it is.
			back, err := ParseClusterfile("kept", data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if !reflect.DeepEqual(back.Plugins, orig.Plugins) {
				t.Errorf("plugins %+v, want %+v", back.Plugins, orig.Plugins)
			}

			kept, err := ParseKept("kept", data)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(kept.NoPassword)
			slices.Sort(kept.NoPassphrase)
			slices.Sort(tc.noPassword)
			slices.Sort(tc.noPassphrase)
			if !slices.Equal(kept.NoPassword, tc.noPassword) || !slices.Equal(kept.NoPassphrase, tc.noPassphrase) {
				t.Errorf("left out: password %v passphrase %v, want %v %v", kept.NoPassword, kept.NoPassphrase, tc.noPassword, tc.noPassphrase)
			}
			l := kept.Fill("", "")
			slices.Sort(l.Password)
			slices.Sort(l.Passphrase)
			if !slices.Equal(l.Password, kept.NoPassword) || !slices.Equal(l.Passphrase, kept.NoPassphrase) {
				t.Errorf("lacking with nothing given: %+v", l)
			}
			if l := kept.Fill(tc.password, tc.passphrase); len(l.Password)+len(l.Passphrase) != 0 {
				t.Errorf("lacking with both given: %+v", l)
			}
			if want := withoutSecrets(orig.Cluster); !reflect.DeepEqual(kept.Cluster, want) {
				t.Errorf("read back:\n%+v\nwant\n%+v\nfrom\n%s", kept.Cluster, want, data)
			}

			again, err := kept.Marshal()
			if err != nil || !bytes.Equal(again, data) {
				t.Errorf("written again (%v):\n%s\nfirst:\n%s", err, again, data)
			}
		})
	}
}

// TestKeptGroupsHosts: consecutive hosts that differ in their address only
// stay one host entry, so that a Clusterfile of ranges reads as one.
func TestKeptGroupsHosts(t *testing.T) {
	orig, err := ParseClusterfile("Clusterfile", []byte(keptSource))
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalKept(orig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("  - ips:\n    - 10.0.0.10\n    - 10.0.0.11\n")) || bytes.Count(data, []byte("- ips:")) != 4 {
		t.Errorf("hosts not grouped as given:\n%s", data)
	}
}

func TestParseKeptRefusesBadAnnotation(t *testing.T) {
	bad := strings.Replace(agentSource, "metadata: {name: agent}", "metadata: {name: agent, annotations: {"+AnnotationNoPassword+": \"10.0.0.3,../x\"}}", 1)
	_, err := ParseKept("kept", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), `kept: document 1 (Cluster "agent"): metadata.annotations[`+AnnotationNoPassword+`]: "../x" is neither a host address nor spec.ssh`) {
		t.Errorf("bad annotation: %v", err)
	}
}

// TestKeptWithout: nodes that left are dropped with their registry role;
// a Clusterfile cannot be left without a master.
func TestKeptWithout(t *testing.T) {
	orig, err := ParseClusterfile("Clusterfile", []byte(keptSource))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := MarshalKept(orig)
	kept, err := ParseKept("kept", data)
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := kept.Without([]string{"10.0.0.10", "10.0.0.13"})
	if !ok {
		t.Fatal("refused though a master stays")
	}
	out, err := rest.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKept("kept", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ips []string
	for _, n := range back.Cluster.Nodes {
		ips = append(ips, n.IP.String())
	}
	if !slices.Equal(ips, []string{"10.0.0.2", "10.0.0.11", "10.0.0.12"}) || len(back.Cluster.Registry.Nodes) != 1 || back.Cluster.Registry.Nodes[0].String() != "10.0.0.2" {
		t.Errorf("nodes %v, registry %v", ips, back.Cluster.Registry.Nodes)
	}
	// 10.0.0.11 still needs its password; 10.0.0.10 is gone from the list.
	if !slices.Equal(back.NoPassword, []string{"10.0.0.11"}) {
		t.Errorf("password left out for %v", back.NoPassword)
	}
	if _, ok := kept.Without([]string{"10.0.0.2", "10.0.0.13"}); ok {
		t.Error("a Clusterfile without masters was accepted")
	}
}

func TestSetEnv(t *testing.T) {
	cf, err := ParseClusterfile("Clusterfile", []byte(agentSource))
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Cluster
	if err := c.SetEnv([]string{"A=1", "B=x=y"}); err != nil || c.Env["B"] != "x=y" || c.Nodes[1].Env["A"] != "1" {
		t.Errorf("SetEnv: %v %v %v", err, c.Env, c.Nodes[1].Env)
	}
	for kv, want := range map[string]string{"A": `"A": want KEY=VALUE`, "1A=v-secret": `key "1A" is not a variable name`} {
		err := c.SetEnv([]string{kv})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "v-secret") {
			t.Errorf("SetEnv(%q): %v, want %q and no value", kv, err, want)
		}
	}
}

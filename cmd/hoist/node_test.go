package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/agent/lb"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/layout"
)

// TestNodeCleanRefusesOtherPaths: hoist node clean removes a cluster's
// directory only when it is <dataRoot>/<valid name>; anything else is
// refused before any removal.
func TestNodeCleanRefusesOtherPaths(t *testing.T) {
	base := t.TempDir()
	hosts := filepath.Join(base, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.0.0.2 registry.hoist.local # hoist:demo\n"), 0o644)
	certs := filepath.Join(base, "certs.d")
	victim := filepath.Join(base, "victim")
	if err := os.MkdirAll(filepath.Join(victim, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	clean := func(cluster, dir string) error {
		_, _, err := hoist(t, "node", "clean", "--cluster", cluster, "--dir", dir, "--certs-dir", certs, "--hosts-file", hosts)
		return err
	}
	for _, tc := range []struct{ cluster, dir, want string }{
		{"demo", victim, "not <dataRoot>/demo"},
		{"victim", victim + "/", "not <dataRoot>/victim"},
		{"victim", victim + "/state/..", "not <dataRoot>/victim"},
		{"../victim", base + "/x/../victim", "not a DNS-1123 label"},
		{"", victim, "cluster name: empty"},
		{"tmp", "/tmp", "not directly under /"},
	} {
		if err := clean(tc.cluster, tc.dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("clean --cluster %q --dir %q: %v, want %q", tc.cluster, tc.dir, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(victim, "state")); err != nil {
		t.Fatalf("a refused clean removed something: %v", err)
	}
	if data, _ := os.ReadFile(hosts); !strings.Contains(string(data), "# hoist:demo") {
		t.Errorf("a refused clean edited the hosts file:\n%s", data)
	}

	// The cluster's own directory goes, with its hosts line.
	demo := filepath.Join(base, "demo")
	os.MkdirAll(filepath.Join(demo, "state"), 0o755)
	if err := clean("demo", demo); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(demo); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory is kept: %v", err)
	}
	if data, _ := os.ReadFile(hosts); strings.Contains(string(data), "hoist:demo") || !strings.Contains(string(data), "localhost") {
		t.Errorf("hosts file after clean:\n%s", data)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("another directory went with it: %v", err)
	}
}

// nodeLineRoot is hoist's root command, global flags and all, with node
// commands that record the command line they bound instead of running it.
func nodeLineRoot(t *testing.T, got *any) *cobra.Command {
	t.Helper()
	root := newRootCommand()
	for _, c := range root.Commands() {
		if c.Name() == "node" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(nodeCommand(nodeRuns{
		unpack:        record[agent.UnpackCmd](got),
		digest:        record[agent.DigestCmd](got),
		blobs:         record[agent.BlobsCmd](got),
		registryStart: record[agent.RegistryStartCmd](got),
		registryStop:  record[agent.RegistryStopCmd](got),
		mirrors:       record[agent.MirrorsCmd](got),
		clean:         record[agent.CleanCmd](got),
		endpoint:      record[lb.EndpointCmd](got),
		serviceStatus: record[agent.ServiceStatusCmd](got),
	}))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root
}

func record[C any](got *any) func(*cobra.Command, C) error {
	return func(_ *cobra.Command, c C) error {
		*got = c
		return nil
	}
}

// bindLine runs args through hoist's command tree and returns the command
// line the node command bound.
func bindLine(t *testing.T, args []string) any {
	t.Helper()
	var got any
	root := nodeLineRoot(t, &got)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatalf("hoist %q: %v", args, err)
	}
	return got
}

// TestNodeCommandLines: what apply sends (agent's Args) is what the node
// command binds, values that a shell or a flag parser would split, take
// for a flag or drop included; the flags the image scripts and today's
// apply write still bind the same.
func TestNodeCommandLines(t *testing.T) {
	for i, v := range []string{
		"plain", "with space", `"double" and 'single' quotes`, "--", "-x", "-", "--root=/elsewhere", "--help",
		"a=b", "$(touch /tmp/pwned) `id` ;|&", "tab\tnew\nline", "registry",
	} {
		for _, want := range []interface{ Args() []string }{
			agent.UnpackCmd{Dest: v, Digest: v + "d", StreamDigest: "sha256:" + v},
			agent.DigestCmd{File: v},
			agent.BlobsCmd{Rootfs: v},
			agent.RegistryStartCmd{Cluster: v, StateDir: v + "s", Root: v, Listen: v, Port: 5000 + i, Cert: v, Key: v + "k"},
			agent.RegistryStopCmd{Cluster: v, StateDir: v},
			agent.MirrorsCmd{Cluster: v, Registry: v, RegistryIP: v, Hosts: []string{v, "docker.io"}, CertsDir: v, HostsFile: v, Record: v},
			agent.CleanCmd{Cluster: v, Dir: v, CertsDir: v + "c", HostsFile: v + "h"},
			agent.ServiceStatusCmd{Names: []string{v, "--state-dir=x", "-h", "kubelet"}, StateDir: v},
			lb.EndpointCmd{Cluster: v, StateDir: v, Name: v, Listen: v, Backends: []string{v, "10.0.0.1:6443"}, HostsFile: v + "h"},
		} {
			if got := bindLine(t, want.Args()); !reflect.DeepEqual(got, want) {
				t.Errorf("hoist %q bound\n%#v\nwant\n%#v", want.Args(), got, want)
			}
		}
	}

	// A zero field is left out of the line: the flag's default applies.
	for _, tc := range []struct {
		line interface{ Args() []string }
		want any
	}{
		{agent.RegistryStartCmd{Cluster: "demo"}, agent.RegistryStartCmd{Cluster: "demo", Port: clusterfile.DefaultRegPort}},
		{agent.MirrorsCmd{Cluster: "demo"}, agent.MirrorsCmd{Cluster: "demo", CertsDir: layout.CertsDir, HostsFile: layout.HostsFile}},
		{agent.CleanCmd{Cluster: "demo"}, agent.CleanCmd{Cluster: "demo", CertsDir: layout.CertsDir, HostsFile: layout.HostsFile}},
		{lb.EndpointCmd{Cluster: "demo"}, lb.EndpointCmd{Cluster: "demo", HostsFile: layout.HostsFile}},
	} {
		if got := bindLine(t, tc.line.Args()); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("hoist %q bound\n%#v\nwant\n%#v", tc.line.Args(), got, tc.want)
		}
	}

	// The lines as apply writes them before it uses Args.
	for _, tc := range []struct {
		line string
		want any
	}{
		{"node registry start --cluster demo --state-dir /s --root /r --listen 10.0.0.2 --port 5001 --tls-cert /c --tls-key /k",
			agent.RegistryStartCmd{Cluster: "demo", StateDir: "/s", Root: "/r", Listen: "10.0.0.2", Port: 5001, Cert: "/c", Key: "/k"}},
		{"node mirrors --cluster demo --registry r:5000 --registry-ip 10.0.0.2 --hosts docker.io,,quay.io --certs-dir /c --hosts-file /h --record /m",
			agent.MirrorsCmd{Cluster: "demo", Registry: "r:5000", RegistryIP: "10.0.0.2", Hosts: []string{"docker.io", "quay.io"}, CertsDir: "/c", HostsFile: "/h", Record: "/m"}},
		{"node service status containerd kubelet --state-dir /s",
			agent.ServiceStatusCmd{Names: []string{"containerd", "kubelet"}, StateDir: "/s"}},
		{"node unpack --dest /d --digest sha256:1 --stream-digest sha256:2",
			agent.UnpackCmd{Dest: "/d", Digest: "sha256:1", StreamDigest: "sha256:2"}},
		{"node digest /bin/hoist", agent.DigestCmd{File: "/bin/hoist"}},
		{"node clean --cluster demo --dir /var/lib/hoist/demo --certs-dir /c --hosts-file /h",
			agent.CleanCmd{Cluster: "demo", Dir: "/var/lib/hoist/demo", CertsDir: "/c", HostsFile: "/h"}},
	} {
		if got := bindLine(t, strings.Fields(tc.line)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("hoist %s bound\n%#v\nwant\n%#v", tc.line, got, tc.want)
		}
	}
}

// TestNodeHelpKeepsFlags: the flags bound from agent's tables keep their
// names, types, defaults and help.
func TestNodeHelpKeepsFlags(t *testing.T) {
	var got any
	root := nodeLineRoot(t, &got)
	for _, tc := range []struct {
		path []string
		want []string
	}{
		{[]string{"node", "registry", "start"}, []string{"--port int", "port (default 5000)", "--tls-cert string", "--root string", "registry directory to serve"}},
		{[]string{"node", "mirrors"}, []string{`--certs-dir string`, `containerd's certs.d (default "/etc/containerd/certs.d")`, `--hosts string`, `the hosts file (default "/etc/hosts")`}},
		{[]string{"node", "clean"}, []string{`--dir string`, `(default "/etc/hosts")`}},
		{[]string{"node", "service", "status"}, []string{"--state-dir string", "directory of the pid file and log (without systemd)"}},
	} {
		cmd, _, err := root.Find(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		usage := cmd.LocalFlags().FlagUsages()
		for _, w := range tc.want {
			if !strings.Contains(usage, w) {
				t.Errorf("hoist %s flags lack %q:\n%s", strings.Join(tc.path, " "), w, usage)
			}
		}
	}
}

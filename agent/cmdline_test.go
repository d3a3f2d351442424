package agent

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// awkward are values a command line must carry as they are: words a shell
// or a flag parser would otherwise split, take for a flag or drop.
var awkward = []string{
	"plain",
	"with space",
	`"double" and 'single' quotes`,
	"--",
	"-x",
	"--cluster=other",
	"a=b",
	"$(touch /tmp/pwned) `id` ;|&",
	"tab\tnew\nline",
	"",
}

// parseLine reads a node command line with the standard library's flag
// package, a parser other than the node's cobra: the line must not depend
// on one parser's leniency. It returns the positional arguments.
func parseLine(t *testing.T, line []string, path string, flags []Flag) []string {
	t.Helper()
	head := append([]string{"node"}, strings.Fields(path)...)
	if len(line) < len(head) || !slices.Equal(line[:len(head)], head) {
		t.Fatalf("%q does not start with %q", line, head)
	}
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	for _, f := range flags {
		fs.Var(f, f.Name, f.Usage)
	}
	if err := fs.Parse(line[len(head):]); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return fs.Args()
}

// roundTrip parses the line of want into a zero command and compares;
// setArgs takes the positional arguments (nil: the command has none).
func roundTrip[C any, P interface {
	*C
	Flags() []Flag
}](t *testing.T, path string, line []string, want C, setArgs func(P, []string)) {
	t.Helper()
	var got C
	rest := parseLine(t, line, path, P(&got).Flags())
	if setArgs != nil {
		setArgs(&got, rest)
	} else if len(rest) > 0 {
		t.Errorf("%q: positional arguments %q", line, rest)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q read back as\n%#v\nwant\n%#v", line, got, want)
	}
}

func TestCommandLinesRoundTrip(t *testing.T) {
	for i, v := range awkward {
		list := []string{v + "1", "docker.io", v}
		if strings.Contains(v, ",") {
			t.Fatalf("%q: a list element cannot hold a comma", v)
		}
		if v == "" {
			list = []string{"docker.io"} // empty elements are dropped
		}
		roundTrip(t, "unpack", UnpackCmd{Dest: v, Digest: v + "d", StreamDigest: v}.Args(),
			UnpackCmd{Dest: v, Digest: v + "d", StreamDigest: v}, nil)
		roundTrip(t, "digest", DigestCmd{File: v}.Args(), DigestCmd{File: v},
			func(c *DigestCmd, args []string) {
				if len(args) != 1 {
					t.Errorf("digest %q: %d arguments", v, len(args))
					return
				}
				c.File = args[0]
			})
		start := RegistryStartCmd{Cluster: v, StateDir: v, Root: v, Listen: v, Port: 5000 + i, Cert: v, Key: v}
		roundTrip(t, "registry start", start.Args(), start, nil)
		roundTrip(t, "registry stop", RegistryStopCmd{Cluster: v, StateDir: v + "s"}.Args(),
			RegistryStopCmd{Cluster: v, StateDir: v + "s"}, nil)
		mirrors := MirrorsCmd{Cluster: v, Registry: v, RegistryIP: v, Hosts: list, CertsDir: v, HostsFile: v, Record: v}
		roundTrip(t, "mirrors", mirrors.Args(), mirrors, nil)
		clean := CleanCmd{Cluster: v, Dir: v, CertsDir: v, HostsFile: v}
		roundTrip(t, "clean", clean.Args(), clean, nil)
		status := ServiceStatusCmd{Names: []string{v, "-n", "--state-dir=x", "kubelet"}, StateDir: v}
		roundTrip(t, "service status", status.Args(), status, func(c *ServiceStatusCmd, args []string) { c.Names = args })
	}
}

// TestCommandLineShape: one word per flag, a zero field left out (the
// node's default applies), -- before the positional arguments.
func TestCommandLineShape(t *testing.T) {
	for _, tc := range []struct {
		got, want []string
	}{
		{RegistryStartCmd{Cluster: "demo", Listen: "10.0.0.2", Port: 5000}.Args(),
			[]string{"node", "registry", "start", "--cluster=demo", "--port=5000", "--listen=10.0.0.2"}},
		{MirrorsCmd{Cluster: "demo", Hosts: []string{"docker.io", "quay.io"}}.Args(),
			[]string{"node", "mirrors", "--cluster=demo", "--hosts=docker.io,quay.io"}},
		{CleanCmd{}.Args(), []string{"node", "clean"}},
		{DigestCmd{File: "-f"}.Args(), []string{"node", "digest", "--", "-f"}},
		{ServiceStatusCmd{Names: []string{"containerd", "kubelet"}, StateDir: "/s"}.Args(),
			[]string{"node", "service", "status", "--state-dir=/s", "--", "containerd", "kubelet"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

func TestFlagSet(t *testing.T) {
	var n int
	if err := (Flag{Name: "port", Value: &n}).Set("x"); err == nil {
		t.Error("--port=x accepted")
	}
	var list []string
	if err := (Flag{Name: "hosts", Value: &list}).Set(",a,,b,"); err != nil || !slices.Equal(list, []string{"a", "b"}) {
		t.Errorf("hosts ,a,,b, = %q, %v", list, err)
	}
	var b bool
	if err := (Flag{Name: "yes", Value: &b}).Set("true"); err == nil {
		t.Error("a *bool flag has no command line form, and said nothing")
	}
}

func TestMirrorsCmd(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644)
	c := MirrorsCmd{
		Cluster: "demo", Registry: "registry.hoist.local:5000", RegistryIP: "10.0.0.2",
		Hosts: []string{"docker.io", "quay.io"}, CertsDir: filepath.Join(dir, "certs.d"), HostsFile: hosts,
		Record: filepath.Join(dir, "state", "mirrors"),
	}
	if err := c.Run(strings.NewReader("CA PEM")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(hosts); !strings.Contains(string(data), "10.0.0.2 registry.hoist.local # hoist:demo") {
		t.Errorf("hosts file:\n%s", data)
	}
	for _, h := range []string{"docker.io", "quay.io"} {
		if _, err := os.Stat(filepath.Join(c.CertsDir, h, "hosts.toml")); err != nil {
			t.Error(err)
		}
	}
	for _, bad := range []MirrorsCmd{
		{Cluster: "Demo", Registry: c.Registry},
		{Cluster: "demo", Registry: "no-port"},
	} {
		if err := bad.Run(strings.NewReader("")); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestServiceStatusCmd(t *testing.T) {
	stopped, err := ServiceStatusCmd{Names: []string{"containerd", "kubelet"}, StateDir: t.TempDir()}.Run(context.Background())
	if err != nil || !slices.Equal(stopped, []string{"containerd", "kubelet"}) {
		t.Errorf("not running: %q, %v", stopped, err)
	}
	if _, err := (ServiceStatusCmd{Names: []string{"kubelet"}}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "--state-dir") {
		t.Errorf("no state dir: %v", err)
	}
}

func TestRegistryStartCmdListen(t *testing.T) {
	for _, listen := range []string{"", "0.0.0.0", "::", "registry.hoist.local"} {
		err := RegistryStartCmd{Cluster: "demo", StateDir: t.TempDir(), Listen: listen, Port: 5000}.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("--listen %q: %v", listen, err)
		}
	}
}

func TestFileDigest(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("hello\n"), 0o644)
	got, err := DigestCmd{File: file}.Run()
	if want := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"; err != nil || got != want {
		t.Errorf("digest = %s, %v; want %s", got, err, want)
	}
	if _, err := FileDigest(file + ".missing"); err == nil || !strings.Contains(err.Error(), file+".missing") {
		t.Errorf("missing file: %v", err)
	}
}

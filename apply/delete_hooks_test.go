package apply

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
)

// scriptNodes are nodes reached through Options.Dial that record the
// scripts run on them, failing those that hold fail.
type scriptNodes struct {
	mu   sync.Mutex
	ran  []string // "node: first line that is the hook's or the clean's"
	fail string
}

func (s *scriptNodes) dial(_ context.Context, cfg ssh.Config) (ssh.Executor, error) {
	return scriptExec{s, cfg.Host}, nil
}

type scriptExec struct {
	nodes *scriptNodes
	host  string
}

func (e scriptExec) Run(_ context.Context, script string, _ io.Reader, _ io.Writer) error {
	what := "clean"
	for _, marker := range []string{"pre-uninstall", "post-uninstall", "pre-clean-host", "pre-scaleup", "post-scaleup"} {
		if strings.Contains(script, "echo "+marker) {
			what = marker
		}
	}
	e.nodes.mu.Lock()
	defer e.nodes.mu.Unlock()
	e.nodes.ran = append(e.nodes.ran, e.host+": "+what)
	if e.nodes.fail != "" && strings.Contains(script, e.nodes.fail) {
		return errors.New("exit status 1")
	}
	return nil
}

func (scriptExec) Close() error { return nil }

// TestDeleteClusterHooks: deleting a whole cluster runs sealer's
// pre-uninstall hooks on the first master before any node is cleaned, and
// its post-uninstall hooks there once every node is; a failed
// pre-uninstall cleans no node.
func TestDeleteClusterHooks(t *testing.T) {
	cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte(`apiVersion: sealer.io/v2
kind: Cluster
metadata: {name: shop}
spec:
  image: acme/shop:v2
  hosts:
    - {ips: [10.0.0.2], roles: [master]}
    - {ips: [10.0.0.3], roles: [node]}
---
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: before}
spec: {type: SHELL, action: pre-uninstall, data: echo pre-uninstall}
---
apiVersion: sealer.io/v2
kind: Plugin
metadata: {name: after}
spec: {type: SHELL, action: post-uninstall|pre-clean-host, data: echo post-uninstall}
`))
	if err != nil {
		t.Fatal(err)
	}
	// post-uninstall|pre-clean-host: the same script at two phases.
	cf.Plugins[2].Data = "echo pre-clean-host"
	run := func(nodes *scriptNodes) (*Result, []string) {
		t.Helper()
		root := t.TempDir()
		j, err := OpenJournal(layout.Local{Root: root}.Cluster("shop").Journal(), "shop")
		if err != nil {
			t.Fatal(err)
		}
		// The runtime's init done on the first master: the whole cluster
		// goes.
		for _, s := range runtimes[0].Steps() {
			if s.Stage == step.Init {
				if err := j.MarkDone("10.0.0.2", s.Name, "k"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := j.MarkDone("10.0.0.3", stepRootfs, "k"); err != nil {
			t.Fatal(err)
		}
		d := &Delete{Cluster: cf.Cluster, Plugins: cf.Plugins, Options: Options{Root: root, Jobs: 2, Dial: nodes.dial}}
		defer d.Close()
		if _, err := d.Targets(); err != nil {
			t.Fatal(err)
		}
		res, err := d.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res, nodes.ran
	}

	res, ran := run(&scriptNodes{})
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	if len(ran) != 6 || ran[0] != "10.0.0.2: pre-uninstall" || ran[5] != "10.0.0.2: post-uninstall" {
		t.Errorf("ran %q: want pre-uninstall first and post-uninstall last, on the first master", ran)
	}
	for _, want := range []string{"10.0.0.2: pre-clean-host", "10.0.0.3: pre-clean-host", "10.0.0.2: clean", "10.0.0.3: clean"} {
		if !strings.Contains(strings.Join(ran[1:5], "\n"), want) {
			t.Errorf("ran %q: no %s between them", ran, want)
		}
	}

	res, ran = run(&scriptNodes{fail: "echo pre-uninstall"})
	var ne *NodeError
	if len(ran) != 1 || res.Errors["10.0.0.3"] == nil || !errors.As(res.Errors["10.0.0.2"], &ne) || ne.Step != "hook:pre-uninstall" {
		t.Errorf("a failed pre-uninstall: ran %q, %v", ran, res.Errors)
	}
}

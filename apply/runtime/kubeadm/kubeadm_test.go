package kubeadm

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// scripted answers commands by their first matching prefix; the e2e test
// (test/e2e) runs the same code against a real cluster.
type scripted map[string]string

func (s scripted) Run(_ context.Context, command string, _ io.Reader, stdout io.Writer) error {
	for prefix, out := range s {
		if strings.Contains(command, prefix) {
			io.WriteString(stdout, out)
			return nil
		}
	}
	return nil
}

func (s scripted) Close() error { return nil }

const notReadyNodes = `{"items": [{"metadata": {"name": "node2"}, "spec": {"podCIDR": "10.244.1.0/24"},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.12"}],
             "conditions": [{"type": "Ready", "status": "False", "message": "container runtime network not ready: cni plugin not initialized"}]}}]}`

func TestWaitReadyTimeoutNamesTheNodeAndItsKubelet(t *testing.T) {
	k := &Runtime{State: "/var/lib/hoist/demo/state", ReadyTimeout: 100 * time.Millisecond}
	master := scripted{"get nodes -o json": notReadyNodes}
	node := scripted{"kubelet.log": "E1128 kubelet.go:3117] \"Container runtime network not ready\"\n"}
	err := k.WaitReady(context.Background(), master, node, "192.0.2.12")
	if err == nil {
		t.Fatal("no error for a node that never gets Ready")
	}
	for _, want := range []string{"192.0.2.12", "node2", "not Ready after 100ms", "cni plugin not initialized", "Container runtime network not ready"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}

func TestNetworkRoutesToTheOthers(t *testing.T) {
	var got string
	e := recorder{run: func(cmd string) { got = cmd }}
	k := &Runtime{}
	nodes := []NodeInfo{{Name: "a", IP: "192.0.2.11", PodCIDR: "10.244.0.0/24"}, {Name: "b", IP: "192.0.2.12", PodCIDR: "10.244.1.0/24"},
		{Name: "c", IP: "192.0.2.13"}} // c has no range yet: no route
	if err := k.Network(context.Background(), e, "192.0.2.11", nodes); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "ip route flush proto 77\nip route replace '10.244.1.0/24' via '192.0.2.12' proto 77\n") || strings.Contains(got, "192.0.2.13") {
		t.Errorf("routes:\n%s", got)
	}
	if err := k.Network(context.Background(), e, "192.0.2.13", nodes); err == nil {
		t.Error("no error for a node without a pod range")
	}
}

type recorder struct{ run func(string) }

func (r recorder) Run(_ context.Context, command string, _ io.Reader, _ io.Writer) error {
	r.run(command)
	return nil
}

func (r recorder) Close() error { return nil }

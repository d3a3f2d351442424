package kubeadm

import (
	"context"
	"fmt"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// nodeStep runs the image's init-node.sh: binaries in place, containerd
// and the kubelet service started. The image holds all it installs. In an
// upgrade, a member whose kubelet is older than the image's is left to
// kube-upgrade: its new kubelet must wait for the control plane's upgrade
// and for the node's drain.
func nodeStep(k *Runtime) step.Step {
	return step.Step{
		Name:  StepNode,
		Stage: step.Host,
		Key:   func(in *step.Input, _ clusterfile.Node) (string, bool) { return in.ImageDigest, true },
		Run: func(ctx context.Context, t *step.Target) error {
			if up := t.Input.Upgrade; up != nil {
				v, err := ReadNodeVersions(ctx, t.Exec)
				if err != nil {
					return err
				}
				if v.Member && Older(v.Kubelet, up.To) {
					return nil
				}
			}
			return k.PrepareNode(ctx, t.Exec, step.Exports(t.Env))
		},
		// Without systemd, a machine that restarted lost containerd and
		// the kubelet.
		Probe:    func(t *step.Target) string { return step.ServiceStatus(t, "containerd", "kubelet") },
		Restarts: true,
		// The image's clean-node.sh resets kubeadm, stops the services and
		// removes what init-node.sh installed.
		Undo: func(u step.Undo) string {
			return fmt.Sprintf(`if [ -f %[1]s/%[2]s ]; then
  (cd %[1]s && HOIST="$b" HOIST_STATE=%[3]s HOIST_DELETE_CLUSTER=%[4]d sh %[2]s) >&2 || exit 1
fi
`, ssh.Quote(u.Dir.Rootfs()), CleanScript, ssh.Quote(u.Dir.State()), b2i(u.WholeCluster))
		},
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

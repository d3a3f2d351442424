package apply

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/runtime/kubernetes"
)

func TestKubeRuntimeChecksTheClusterfile(t *testing.T) {
	plain := Image{Rootfs: t.TempDir()}
	kube := Image{Rootfs: t.TempDir()}
	defaults, err := os.ReadFile(filepath.Join("..", "images", "kubernetes", "rootfs", kubernetes.DefaultsFile))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(kube.Rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(kube.Rootfs, kubernetes.DefaultsFile), defaults, 0o644)

	parse := func(extra string) Cluster {
		cf, err := ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  image: acme/platform:v1\n  hosts:\n"+twoHosts+extra))
		if err != nil {
			t.Fatal(err)
		}
		return cf.Cluster
	}
	withDoc := parse("---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: 172.20.0.0/16}\n")

	if rt, err := kubeRuntime(parse(""), plain); rt != nil || err != nil {
		t.Errorf("an image without %s: runtime %v, error %v", kubernetes.DefaultsFile, rt, err)
	}
	if _, err := kubeRuntime(withDoc, plain); err == nil || !strings.Contains(err.Error(), "does not bring up Kubernetes") {
		t.Errorf("kubeadm documents for an image without Kubernetes: %v", err)
	}
	rt, err := kubeRuntime(withDoc, kube)
	if err != nil {
		t.Fatal(err)
	}
	if got := rt.Config.Get(kubernetes.KindCluster, "networking", "podSubnet"); got != "172.20.0.0/16" {
		t.Errorf("podSubnet = %q, want the Clusterfile's", got)
	}
	if rt.Rootfs != "/var/lib/hoist/demo/rootfs" || rt.State != "/var/lib/hoist/demo/state" {
		t.Errorf("node directories: %s %s", rt.Rootfs, rt.State)
	}
	noMaster := parse("")
	noMaster.Nodes = noMaster.Nodes[1:]
	if _, err := kubeRuntime(noMaster, kube); err == nil || !strings.Contains(err.Error(), "master") {
		t.Errorf("no master: %v", err)
	}
	bad := parse("---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n")
	if _, err := kubeRuntime(bad, kube); err == nil || !strings.Contains(err.Error(), "Clusterfile: kubeadm document 1") {
		t.Errorf("a kubeadm kind the runtime does not take: %v", err)
	}
}

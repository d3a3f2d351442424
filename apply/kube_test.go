package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/runtime/kubeadm"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

func TestKubeRuntimeChecksTheClusterfile(t *testing.T) {
	plain := Image{Rootfs: t.TempDir()}
	kube := Image{Rootfs: t.TempDir()}
	defaults, err := os.ReadFile(filepath.Join("..", "images", "kubernetes", "rootfs", kubeadm.DefaultsFile))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(kube.Rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(kube.Rootfs, kubeadm.DefaultsFile), defaults, 0o644)

	parse := func(extra string) clusterfile.Cluster {
		cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  image: acme/platform:v1\n  hosts:\n"+twoHosts+extra))
		if err != nil {
			t.Fatal(err)
		}
		return cf.Cluster
	}
	withDoc := parse("---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: 172.20.0.0/16}\n")

	kubeRuntime := func(c clusterfile.Cluster, image Image) (*kubeadm.Runtime, error) {
		rt, err := detectRuntime(c, step.Image{Rootfs: image.Rootfs, Meta: image.Meta, Dir: nodeDir(c)})
		if rt == nil {
			return nil, err
		}
		return rt.(*kubeadm.Runtime), err
	}
	if rt, err := kubeRuntime(parse(""), plain); rt != nil || err != nil {
		t.Errorf("an image without %s: runtime %v, error %v", kubeadm.DefaultsFile, rt, err)
	}
	if _, err := kubeRuntime(withDoc, plain); err == nil || !strings.Contains(err.Error(), "does not bring up Kubernetes") {
		t.Errorf("kubeadm documents for an image without Kubernetes: %v", err)
	}
	rt, err := kubeRuntime(withDoc, kube)
	if err != nil {
		t.Fatal(err)
	}
	if got := rt.Config.Get(kubeadm.KindCluster, "networking", "podSubnet"); got != "172.20.0.0/16" {
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

// TestKubeVersionRefusedBeforeAnyStep: an image whose KUBEVERSION excludes
// the Kubernetes it installs is refused by apply before it reaches any
// node (these addresses answer nothing), and the journal says why.
func TestKubeVersionRefusedBeforeAnyStep(t *testing.T) {
	defaults, err := os.ReadFile(filepath.Join("..", "images", "kubernetes", "rootfs", kubeadm.DefaultsFile))
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, kubeadm.DefaultsFile), defaults, 0o644)
	cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  image: acme/platform:v1\n  hosts:\n"+twoHosts+
		"---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"))
	if err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(t.TempDir(), "hoist")
	os.WriteFile(binary, []byte("a binary"), 0o755)
	opts := Options{Root: t.TempDir(), Binary: binary, Jobs: 2}
	for _, tc := range []struct{ kubeVersion, want string }{
		{"", ""},
		{">=1.28 <1.38", ""},
		{">=1.28 <1.37", "the cluster acme/platform:v1 brings up: Kubernetes v1.37.2 is outside the image's KUBEVERSION >=1.28 <1.37"},
		{"~1.36", "outside the image's KUBEVERSION ~1.36"},
	} {
		image := Image{Rootfs: rootfs, Digest: "sha256:img", Meta: &metadata.Metadata{KubeVersion: tc.kubeVersion}}
		a := &Apply{Cluster: cf.Cluster, Image: image, Options: opts}
		if _, err := a.Plan(context.Background()); err != nil {
			t.Fatal(err)
		}
		err = a.r.checkKubeVersion(context.Background())
		if tc.want == "" {
			a.Close()
			if err != nil {
				t.Errorf("KUBEVERSION %q: %v", tc.kubeVersion, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("KUBEVERSION %q: %v, want %q", tc.kubeVersion, err, tc.want)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := a.Run(ctx)
		cancel()
		a.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) || res != nil {
			t.Errorf("apply of KUBEVERSION %q: %v %v, want %q", tc.kubeVersion, res, err, tc.want)
		}
		if f, ok := a.r.journal.Failed(AppsNode); !ok || f.Step != "kube-version" {
			t.Errorf("the journal does not record the refusal: %+v", f)
		}
		// An image that passes clears the refusal (the nodes' steps then
		// end at once: the context is done).
		passing := image
		passing.Meta = &metadata.Metadata{KubeVersion: ">=1.37"}
		done, cancel := context.WithCancel(context.Background())
		cancel()
		b := &Apply{Cluster: cf.Cluster, Image: passing, Options: opts}
		if _, err := b.Plan(done); err != nil {
			t.Fatal(err)
		}
		_, err = b.Run(done)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := b.r.journal.Failed(AppsNode); ok {
			t.Errorf("the refusal stays after a passing apply: %+v", f)
		}
		for _, n := range b.r.journal.Nodes() {
			for _, s := range []string{stepInstallHoist, stepRootfs} {
				if _, done := b.r.journal.StepDone(n, s); done {
					t.Errorf("%s: %s done though the image was refused", n, s)
				}
			}
		}
	}
}

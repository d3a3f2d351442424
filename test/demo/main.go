// Command demo brings up a local test bed of three nodes (network
// namespaces with their own root filesystem and sshd) and a real
// Kubernetes API server on this machine (test/kube), applies a cluster
// image to the nodes and its apps to the API server with hoist, prints hoist
// status, then deletes the cluster and tears everything down. It needs
// root. `make demo` runs it on the image that `make example` builds.
//
// With --kubernetes the nodes are kube nodes and the image (the Kubernetes
// base image, or one FROM it) brings Kubernetes up on them itself: no API
// server on loopback. `make demo-kubernetes` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hoistdev/hoist/test/testbed"
)

func main() {
	hoist := flag.String("hoist", "bin/hoist", "the hoist binary")
	root := flag.String("root", "/var/lib/hoist", "hoist's --root, where the image is")
	image := flag.String("image", "acme/platform:v1", "the cluster image to apply")
	keep := flag.Bool("keep", false, "leave the cluster and the test bed up (remove them with test/testbed/clean.sh)")
	apps := flag.String("apps", "monitoring,web", "apps to launch (the example's CMDS wait for pods, which need kubelets: left out)")
	kube := flag.Bool("kubernetes", false, "kube nodes, and an image that brings Kubernetes up (1 master, 2 workers)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() error {
		d, tearDown, err := setUp(ctx, *hoist, *root, *kube, *keep)
		if err != nil {
			return err
		}
		defer tearDown()
		if *kube {
			return d.runKubernetes(*image, *keep)
		}
		return d.run(*image, *apps, *keep)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// demo is what both demos share: a bed of 3 nodes whose root accepts a key
// made for it, a work directory, and hoist on this machine.
type demo struct {
	ctx                   context.Context
	hoist, root, dir, key string
	bed                   *testbed.Bed
}

// setUp makes the work directory, the key and the bed (kube nodes with
// kube). The function it returns takes them down, unless keep.
func setUp(ctx context.Context, hoist, root string, kube, keep bool) (*demo, func(), error) {
	if os.Geteuid() != 0 {
		return nil, nil, fmt.Errorf("needs root: the test bed is namespaces, mounts and cgroups")
	}
	d := &demo{ctx: ctx, root: root}
	var err error
	if d.hoist, err = filepath.Abs(hoist); err != nil {
		return nil, nil, err
	}
	if d.dir, err = os.MkdirTemp("", "hoist-demo-"); err != nil {
		return nil, nil, err
	}
	tearDown := func() {
		if keep {
			return
		}
		if d.bed != nil {
			d.bed.Destroy()
		}
		os.RemoveAll(d.dir)
	}
	d.key = filepath.Join(d.dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d.key).CombinedOutput(); err != nil {
		tearDown()
		return nil, nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(d.key + ".pub")
	if err != nil {
		tearDown()
		return nil, nil, err
	}
	kind := "nodes"
	if kube {
		kind = "kube nodes"
	}
	fmt.Printf("== a test bed of 3 %s (the Debian tree is cached in %s)\n", kind, testbed.CacheDir())
	// Create picks the Debian tree for the kind of node.
	if d.bed, err = testbed.Create(ctx, testbed.Options{Nodes: 3, AuthorizedKey: string(pub), Kube: kube}); err != nil {
		tearDown()
		return nil, nil, err
	}
	for _, n := range d.bed.Nodes {
		fmt.Printf("   %s  %s\n", n.Name, n.IP)
	}
	return d, tearDown, nil
}

// clusterfile writes and shows the Clusterfile.
func (d *demo) clusterfile(content string) (string, error) {
	file := filepath.Join(d.dir, "Clusterfile")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		return "", err
	}
	fmt.Printf("== %s\n%s", file, content)
	return file, nil
}

// h runs hoist on the demo's store, its output shown.
func (d *demo) h(args ...string) error {
	fmt.Println("== hoist", args)
	cmd := exec.CommandContext(d.ctx, d.hoist, append([]string{"--root", d.root}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// run applies the image to the bed and its apps to an API server on
// loopback.
func (d *demo) run(image, apps string, keep bool) error {
	fmt.Println("== a Kubernetes API server on loopback for the apps (test/kube; built once, 5 to 10 minutes cold)")
	kubeDir := filepath.Join(d.dir, "kube")
	start := exec.CommandContext(d.ctx, "test/kube/start.sh", kubeDir)
	start.Stderr = os.Stderr
	out, err := start.Output()
	if err != nil {
		return fmt.Errorf("starting the API server: %w", err)
	}
	if !keep {
		defer exec.Command("test/kube/stop.sh", kubeDir).Run()
	}
	kubeconfig := strings.TrimSpace(string(out))
	kubeconfig = kubeconfig[strings.LastIndexByte(kubeconfig, '\n')+1:]

	nodes := d.bed.Nodes
	clusterfile, err := d.clusterfile(fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: demo}
spec:
  image: %s
  kubeconfig: %s
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
  - ips: [%s, %s]
    roles: [node]
`, image, kubeconfig, d.key, nodes[0].IP, nodes[1].IP, nodes[2].IP))
	if err != nil {
		return err
	}
	if err := d.h("apply", "-f", clusterfile, "--dry-run", "--apps", apps); err != nil {
		return err
	}
	applyErr := d.h("apply", "-f", clusterfile, "--accept-new-host-keys", "--apps", apps)
	if err := d.h("status", "-f", clusterfile); err != nil {
		return err
	}
	if applyErr != nil {
		d.h("delete", "-f", clusterfile, "--force")
		return applyErr
	}
	if keep {
		fmt.Printf("== kept: hoist --root %s status -f %s; remove with hoist --root %[1]s delete -f %[2]s --force && test/testbed/clean.sh\n", d.root, clusterfile)
		return nil
	}
	return d.h("delete", "-f", clusterfile, "--force")
}

// runKubernetes applies an image that brings Kubernetes up to the bed,
// shows the nodes and pods, then deletes it.
func (d *demo) runKubernetes(image string, keep bool) error {
	nodes := d.bed.Nodes
	clusterfile, err := d.clusterfile(fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: demo-kube}
spec:
  image: %s
  ssh: {user: root, privateKey: %s}
  hosts:
  - ips: [%s]
    roles: [master]
  - ips: [%s, %s]
    roles: [node]
---
# Test bed nodes have no systemd and no br_netfilter sysfs for kubeadm's
# preflight checks.
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration: {ignorePreflightErrors: [all]}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration: {ignorePreflightErrors: [all]}
`, image, d.key, nodes[0].IP, nodes[1].IP, nodes[2].IP))
	if err != nil {
		return err
	}
	if err := d.h("apply", "-f", clusterfile, "--dry-run"); err != nil {
		return err
	}
	applyErr := d.h("apply", "-f", clusterfile, "--accept-new-host-keys")
	if applyErr == nil {
		kubeconfig := filepath.Join(d.dir, "admin.conf")
		out, err := exec.CommandContext(d.ctx, d.hoist, "--root", d.root, "kubeconfig", "-f", clusterfile).Output()
		if err != nil {
			return fmt.Errorf("hoist kubeconfig: %w", err)
		}
		if err := os.WriteFile(kubeconfig, out, 0o600); err != nil {
			return err
		}
		// The cluster's own kubectl, from the node binaries' cache.
		kubectl := filepath.Join(os.Getenv("KUBE_CACHE_DIR"), "bin", "kubectl")
		if _, err := os.Stat(kubectl); err != nil {
			kubectl = "kubectl"
		}
		for _, args := range [][]string{{"get", "nodes", "-o", "wide"}, {"wait", "--for=condition=Ready", "pod", "--all", "-A", "--timeout=180s"}, {"get", "pods", "-A", "-o", "wide"}} {
			fmt.Println("== kubectl", strings.Join(args, " "))
			cmd := exec.CommandContext(d.ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			cmd.Run()
		}
		if keep {
			fmt.Printf("== kept: kubectl --kubeconfig %s get pods -A; remove with hoist --root %s delete -f %s --force && test/testbed/clean.sh\n", kubeconfig, d.root, clusterfile)
			return nil
		}
	}
	if err := d.h("status", "-f", clusterfile); err != nil {
		return err
	}
	if delErr := d.h("delete", "-f", clusterfile, "--force"); applyErr == nil {
		return delErr
	}
	return applyErr
}

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
	if *kube {
		err := runKubernetes(*hoist, *root, *image, *keep)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*hoist, *root, *image, *apps, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(hoist, root, image, apps string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: the test bed is network namespaces and mounts")
	}
	hoist, err := filepath.Abs(hoist)
	if err != nil {
		return err
	}
	fmt.Println("== a test bed of 3 nodes (the Debian tree is cached in", testbed.CacheDir()+")")
	base, err := testbed.BaseRootfs(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hoist-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	bed, err := testbed.Create(ctx, testbed.Options{Nodes: 3, AuthorizedKey: string(pub), Base: base})
	if err != nil {
		return err
	}
	if !keep {
		defer bed.Destroy()
	}
	for _, n := range bed.Nodes {
		fmt.Printf("   %s  %s\n", n.Name, n.IP)
	}
	fmt.Println("== a Kubernetes API server on loopback for the apps (test/kube; built once, 5 to 10 minutes cold)")
	kubeDir := filepath.Join(dir, "kube")
	start := exec.CommandContext(ctx, "test/kube/start.sh", kubeDir)
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

	clusterfile := filepath.Join(dir, "Clusterfile")
	cf := fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
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
`, image, kubeconfig, key, bed.Nodes[0].IP, bed.Nodes[1].IP, bed.Nodes[2].IP)
	if err := os.WriteFile(clusterfile, []byte(cf), 0o644); err != nil {
		return err
	}
	fmt.Printf("== %s\n%s", clusterfile, cf)
	h := func(args ...string) error {
		fmt.Println("== hoist", args)
		cmd := exec.CommandContext(ctx, hoist, append([]string{"--root", root}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		return cmd.Run()
	}
	if err := h("apply", "-f", clusterfile, "--dry-run", "--apps", apps); err != nil {
		return err
	}
	applyErr := h("apply", "-f", clusterfile, "--accept-new-host-keys", "--apps", apps)
	if err := h("status", "-f", clusterfile); err != nil {
		return err
	}
	if applyErr != nil {
		h("delete", "-f", clusterfile, "--force")
		return applyErr
	}
	if keep {
		fmt.Printf("== kept: hoist --root %s status -f %s; remove with hoist --root %[1]s delete -f %[2]s --force && test/testbed/clean.sh\n", root, clusterfile)
		return nil
	}
	return h("delete", "-f", clusterfile, "--force")
}

// runKubernetes applies an image that brings Kubernetes up to a bed of 3
// kube nodes, shows the nodes and pods, then deletes it.
func runKubernetes(hoist, root, image string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: the test bed is namespaces, mounts and cgroups")
	}
	hoist, err := filepath.Abs(hoist)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hoist-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	fmt.Println("== a test bed of 3 kube nodes (the Debian tree is cached in", testbed.CacheDir()+")")
	bed, err := testbed.Create(ctx, testbed.Options{Nodes: 3, AuthorizedKey: string(pub), Kube: true})
	if err != nil {
		return err
	}
	if !keep {
		defer bed.Destroy()
	}
	for _, n := range bed.Nodes {
		fmt.Printf("   %s  %s\n", n.Name, n.IP)
	}
	clusterfile := filepath.Join(dir, "Clusterfile")
	cf := fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
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
`, image, key, bed.Nodes[0].IP, bed.Nodes[1].IP, bed.Nodes[2].IP)
	if err := os.WriteFile(clusterfile, []byte(cf), 0o644); err != nil {
		return err
	}
	fmt.Printf("== %s\n%s", clusterfile, cf)
	h := func(args ...string) error {
		fmt.Println("== hoist", args)
		cmd := exec.CommandContext(ctx, hoist, append([]string{"--root", root}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		return cmd.Run()
	}
	if err := h("apply", "-f", clusterfile, "--dry-run"); err != nil {
		return err
	}
	applyErr := h("apply", "-f", clusterfile, "--accept-new-host-keys")
	if applyErr == nil {
		kubeconfig := filepath.Join(dir, "admin.conf")
		out, err := exec.CommandContext(ctx, hoist, "--root", root, "kubeconfig", "-f", clusterfile).Output()
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
			cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			cmd.Run()
		}
		if keep {
			fmt.Printf("== kept: kubectl --kubeconfig %s get pods -A; remove with hoist --root %s delete -f %s --force && test/testbed/clean.sh\n", kubeconfig, root, clusterfile)
			return nil
		}
	}
	if err := h("status", "-f", clusterfile); err != nil {
		return err
	}
	if delErr := h("delete", "-f", clusterfile, "--force"); applyErr == nil {
		return delErr
	}
	return applyErr
}

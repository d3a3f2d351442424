package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/test/testbed"
)

const webChart = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"}
`

// appImage builds an app image with a helm app and a manifests app whose
// images are bundled from stand-ins.
func appImage(t *testing.T, root string) {
	t.Helper()
	fixture.StandIns(t, root, "docker.io/library/busybox:1.36", "quay.io/acme/app:v2")
	dir := fixture.Context(t, map[string]string{
		"Kubefile": `FROM scratch
APP web charts/web
APPENV web image.tag=1.36
APP stack manifests/stack
KUBEVERSION >=1.28 <1.38
LAUNCH ["stack", "web"]
`,
		"charts/web/Chart.yaml":                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":               "image: {repository: docker.io/library/busybox, tag: latest}\n",
		"charts/web/templates/deployment.yaml": webChart,
		"manifests/stack/ns.yaml":              "apiVersion: v1\nkind: Namespace\nmetadata: {name: stack}\n",
		"manifests/stack/app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: stack}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: quay.io/acme/app:v2}]}
`,
	})
	out, stderr, err := hoistAt(t, root, "", "build", "-q", "--type", "app", "-t", "demo/app:v1", dir)
	if err != nil {
		t.Fatalf("build: %v\n%s%s", err, out, stderr)
	}
}

// TestRunAppImageOnExistingCluster: hoist run APP --kubeconfig --registry
// pushes the bundled images, digests intact, then launches the apps into
// a real API server; running it again does nothing.
func TestRunAppImageOnExistingCluster(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := fixture.Root(t)
	appImage(t, root)
	kubeconfig := fixture.APIServer(t)
	target := fixture.Registry(t, nil)

	var bundled []struct{ Ref, Digest string }
	out, _, _ := hoistAt(t, root, "", "inspect", "--images", "--format", "json", "demo/app:v1")
	if err := json.Unmarshal([]byte(out), &bundled); err != nil || len(bundled) != 2 {
		t.Fatalf("bundled: %v %s", err, out)
	}
	dry := func(args ...string) string {
		t.Helper()
		out, stderr, err := hoistAt(t, root, "", append([]string{"run", "demo/app:v1", "--kubeconfig", kubeconfig, "--dry-run"}, args...)...)
		if err != nil || stderr != "" {
			t.Fatalf("dry run: %v %s", err, stderr)
		}
		return out
	}
	plan := dry()
	for _, want := range []string{"apps\n  stack            to do\n    create   Namespace stack\n    create   Deployment stack/app\n  web              to do\n    install  HelmRelease web/web\n"} {
		if !strings.Contains(plan, want) {
			t.Errorf("dry run lacks %q:\n%s", want, plan)
		}
	}
	log1 := &eventLog{}
	if stderr, err := hoistStream(root, log1, "run", "demo/app:v1", "--kubeconfig", kubeconfig, "--registry", target, "--tls-verify=false", "--format", "json"); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if got := strings.Join(log1.started(), " "); got != "apps/push-images "+target+" apps/kube-version apps/app:stack apps/app:web" {
		t.Errorf("steps: %s", got)
	}
	for _, img := range bundled {
		ref, _ := name.ParseReference(img.Ref)
		host := ref.Context().RegistryStr()
		if host == name.DefaultRegistry {
			host = "docker.io"
		}
		pushed, err := name.ParseReference(target+"/"+host+"/"+ref.Context().RepositoryStr()+":"+ref.Identifier(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(pushed)
		if err != nil || desc.Digest.String() != img.Digest {
			t.Errorf("%s in the target registry: %v %v, want %s", pushed, desc, err, img.Digest)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	web, err := cs.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || web.Spec.Template.Spec.Containers[0].Image != "docker.io/library/busybox:1.36" {
		t.Fatalf("web: %v %v", err, web)
	}
	if _, err := cs.AppsV1().Deployments("stack").Get(ctx, "app", metav1.GetOptions{}); err != nil {
		t.Fatalf("stack/app: %v", err)
	}

	if plan := dry("--set", "replicaCount=2"); !strings.Contains(plan, "    apply    Deployment stack/app\n") || !strings.Contains(plan, "    upgrade  HelmRelease web/web\n") {
		t.Errorf("dry run after the launch, with a new value:\n%s", plan)
	}
	log2 := &eventLog{}
	if stderr, err := hoistStream(root, log2, "run", "demo/app:v1", "--kubeconfig", kubeconfig, "--format", "json"); err != nil || len(log2.started()) != 0 {
		t.Errorf("second run started %v (%v %s)", log2.started(), err, stderr)
	}
	// For nodes without mirrors: the workloads point at the pushed copies.
	if out, stderr, err := hoistAt(t, root, "", "run", "demo/app:v1", "--kubeconfig", kubeconfig, "--registry", target, "--tls-verify=false", "--rewrite-images"); err != nil {
		t.Fatalf("run --rewrite-images: %v\n%s%s", err, out, stderr)
	}
	digests := map[string]string{}
	for _, img := range bundled {
		digests[img.Ref] = img.Digest
	}
	web, _ = cs.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{})
	app, _ := cs.AppsV1().Deployments("stack").Get(ctx, "app", metav1.GetOptions{})
	for got, want := range map[string]string{
		web.Spec.Template.Spec.Containers[0].Image: target + "/docker.io/library/busybox@" + digests["docker.io/library/busybox:1.36"],
		app.Spec.Template.Spec.Containers[0].Image: target + "/quay.io/acme/app@" + digests["quay.io/acme/app:v2"],
	} {
		if got != want {
			t.Errorf("rewritten image %s, want %s", got, want)
		}
	}
	status, _, err := hoistAt(t, root, "", "status")
	if err != nil || !strings.Contains(status, "default   apps") || !strings.Contains(status, "ready    2/2") {
		t.Errorf("status: %v\n%s", err, status)
	}

	// An image whose KUBEVERSION excludes the cluster is refused before
	// anything is pushed or created.
	dir := fixture.Context(t, map[string]string{
		"Kubefile":              "FROM scratch\nAPP old manifests/old\nIMAGE docker.io/library/busybox:1.36\nKUBEVERSION <1.30\nLAUNCH old\n",
		"manifests/old/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: old-app}\n",
	})
	if out, stderr, err := hoistAt(t, root, "", "build", "-q", "--type", "app", "-t", "demo/old:v1", dir); err != nil {
		t.Fatalf("build: %v %s%s", err, out, stderr)
	}
	fresh := fixture.Registry(t, nil)
	_, _, err = hoistAt(t, root, "", "run", "demo/old:v1", "--kubeconfig", kubeconfig, "--registry", fresh, "--tls-verify=false")
	if err == nil || !strings.Contains(err.Error(), "Kubernetes v1.37.2 is outside the image's KUBEVERSION <1.30") {
		t.Fatalf("an image for Kubernetes <1.30 run on 1.37: %v", err)
	}
	if st, _, _ := hoistAt(t, root, "", "status"); !strings.Contains(st, "outside the image's KUBEVERSION <1.30") {
		t.Errorf("status does not say why:\n%s", st)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "old-app", metav1.GetOptions{}); err == nil {
		t.Errorf("the refused image created its namespace")
	}
	if repos, err := catalog(fresh); err != nil || len(repos) != 0 {
		t.Errorf("the refused image pushed %v (%v)", repos, err)
	}

	// An image that bundles no image pushes nothing and launches its apps.
	dir = fixture.Context(t, map[string]string{
		"Kubefile":                "FROM scratch\nAPP plain manifests/plain\nLAUNCH plain\n",
		"manifests/plain/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain, namespace: default}\ndata: {a: b}\n",
	})
	if out, stderr, err := hoistAt(t, root, "", "build", "-q", "--type", "app", "-t", "demo/plain:v1", dir); err != nil {
		t.Fatalf("build: %v %s%s", err, out, stderr)
	}
	if out, stderr, err := hoistAt(t, root, "", "run", "demo/plain:v1", "--kubeconfig", kubeconfig, "--registry", fresh, "--tls-verify=false"); err != nil {
		t.Fatalf("run of an image without bundled images, with --registry: %v\n%s%s", err, out, stderr)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "plain", metav1.GetOptions{}); err != nil {
		t.Errorf("the app of an image without bundled images: %v", err)
	}
	if repos, err := catalog(fresh); err != nil || len(repos) != 0 {
		t.Errorf("an image without bundled images pushed %v (%v)", repos, err)
	}
}

// catalog lists the repositories of a loopback registry.
func catalog(registry string) ([]string, error) {
	resp, err := http.Get("http://" + registry + "/v2/_catalog")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var c struct{ Repositories []string }
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("catalog of %s: %s", registry, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&c)
	return c.Repositories, err
}

// createFromShell is a shell app that creates a ConfigMap through the API
// server from a node that has nothing but sh, sed, base64 and openssl: the
// credentials come from $KUBECONFIG (uploaded by hoist), the address from
// the cluster env. The server is verified as the certificate's 127.0.0.1.
const createFromShell = `set -e
sed -n 's/.*certificate-authority-data: //p' "$KUBECONFIG" | base64 -d > /tmp/ca.crt
sed -n 's/.*client-certificate-data: //p' "$KUBECONFIG" | base64 -d > /tmp/admin.crt
sed -n 's/.*client-key-data: //p' "$KUBECONFIG" | base64 -d > /tmp/admin.key
body='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"from-shell"},"data":{"host":"'$(hostname)'","greeting":"'$(cat greeting.txt)'"}}'
printf 'POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: kubernetes\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' ${#body} "$body" |
  openssl s_client -quiet -connect "$KUBE_ADDR" -CAfile /tmp/ca.crt -cert /tmp/admin.crt -key /tmp/admin.key -verify_return_error -verify_ip 127.0.0.1 2>/dev/null > /tmp/response
head -1 /tmp/response | grep -q ' 201 ' || { cat /tmp/response; exit 1; }
`

// TestApplyAppsOnTestBed is the whole path: a cluster image with a shell
// app and a helm app, applied to a 3-node test bed with the kubeconfig of
// an API server on the host, which the master reaches over the bridge.
func TestApplyAppsOnTestBed(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := fixture.Root(t)
	t.Setenv("HOIST_NODE_BINARY", fixture.HoistBinary(t))
	dir := fixture.Context(t, map[string]string{
		"Kubefile": `FROM scratch
COPY etc etc
APP hello scripts/hello
APPCMDS hello ["sh hello.sh"]
APP web charts/web
LAUNCH hello web
`,
		"etc/motd":                             "a hoist cluster\n",
		"scripts/hello/hello.sh":               createFromShell,
		"scripts/hello/greeting.txt.tmpl":      "{{ .Greeting }}",
		"charts/web/Chart.yaml":                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":               "image: {repository: docker.io/library/busybox, tag: '1.36'}\n",
		"charts/web/templates/deployment.yaml": webChart,
	})
	fixture.StandIns(t, root, "docker.io/library/busybox:1.36")
	if out, stderr, err := hoistAt(t, root, "", "build", "-q", "-t", "demo/cluster:v2", dir); err != nil {
		t.Fatalf("build: %v\n%s%s", err, out, stderr)
	}
	bed, key := testbed.ForTest(t, 3)
	kubeconfig := fixture.APIServer(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	port := cfg.Host[strings.LastIndexByte(cfg.Host, ':')+1:]
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte(fmt.Sprintf(`apiVersion: hoist.dev/v1alpha1
kind: Cluster
metadata: {name: apps}
spec:
  image: demo/cluster:v2
  kubeconfig: %s
  ssh: {privateKey: %s}
  env: {KUBE_ADDR: "%s:%s", Greeting: hello}
  hosts:
  - {ips: [%s], roles: [master]}
  - {ips: [%s, %s], roles: [node]}
`, kubeconfig, key, bed.Gateway, port, bed.Nodes[0].IP, bed.Nodes[1].IP, bed.Nodes[2].IP)), 0o644)
	if out, stderr, err := hoistAt(t, root, "", "apply", "-f", cf, "--accept-new-host-keys"); err != nil {
		t.Fatalf("apply: %v\n%s%s", err, out, stderr)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "from-shell", metav1.GetOptions{})
	if err != nil || cm.Data["host"] != bed.Nodes[0].Name || cm.Data["greeting"] != "hello" {
		t.Errorf("the shell app's ConfigMap: %v %v (want it made on %s, with the rendered template)", cm.Data, err, bed.Nodes[0].Name)
	}
	if _, err := cs.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("the helm app: %v", err)
	}
	// The shell app ran with the cluster's admin kubeconfig on the master;
	// no copy stays there once the apps ran.
	if _, err := os.Stat(filepath.Join(bed.Nodes[0].Upper, "var/lib/hoist/apps/state/kubeconfig")); !os.IsNotExist(err) {
		t.Errorf("the admin kubeconfig stays on the master: %v", err)
	}
	log := &eventLog{}
	if stderr, err := hoistStream(root, log, "apply", "-f", cf, "--format", "json"); err != nil || len(log.started()) != 0 {
		t.Errorf("a second apply started %v (%v %s)", log.started(), err, stderr)
	}
}

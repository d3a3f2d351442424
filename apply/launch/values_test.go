package launch

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoistdev/hoist/build/discover"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/test/fixture"
)

// sharedChart is one chart, installed as two apps, whose images depend on
// values (the registry, repository and tag) and on the cluster's
// Kubernetes version (a kubectl sidecar of that version).
var sharedChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: svc\nversion: 0.1.0\nkubeVersion: \">=1.25.0-0\"\n",
	"values.yaml": "image: {registry: registry.example.com, repository: acme/svc, tag: '1.0'}\n",
	"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - name: svc
        image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}"
      - name: kubectl
        image: "registry.example.com/tools/kubectl:{{ .Capabilities.KubeVersion.Version }}"
`,
}

// TestBuildAndInstallRenderAlike: for the same flags, the images the build
// finds in an image's charts (build/discover, with the apps the build
// gives it) are those the install runs (the launcher, into a real API
// server): APPENV, --values and --set, global and per app, compose the
// same way on both sides.
func TestBuildAndInstallRenderAlike(t *testing.T) {
	ctx := context.Background()
	files := map[string]string{}
	for name, data := range sharedChart {
		files["apps/web/"+name] = data
		files["apps/api/"+name] = data
	}
	files["values/global.yaml"] = "image: {tag: from-global-file}\n"
	files["values/web.yaml"] = "image: {repository: acme/web, tag: from-web-file}\n"
	root := fixture.Context(t, files)
	meta := metadata.New(metadata.TypeApp)
	meta.Apps = []metadata.App{
		{Name: "web", Type: metadata.AppHelm, Files: []string{"apps/web/"}, Env: map[string]string{"image.tag": "from-appenv"}},
		{Name: "api", Type: metadata.AppHelm, Files: []string{"apps/api/"}, Env: map[string]string{"image.repository": "acme/api"}},
	}
	global, web := filepath.Join(root, "values/global.yaml"), filepath.Join(root, "values/web.yaml")

	kubeconfig := fixture.APIServer(t)
	l := &Launcher{Kubeconfig: kubeconfig, Rootfs: root, Meta: meta, TmpDir: t.TempDir()}
	// The build renders for the version its base image installs: here,
	// the cluster's.
	version, err := l.CheckKubeVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := l.RESTConfig()
	cs := kubernetes.NewForConfigOrDie(cfg)
	kubectl := "registry.example.com/tools/kubectl:" + version

	for _, tt := range []struct {
		name     string
		values   []string
		set      []string
		web, api string // the main image of each app
	}{
		{name: "chart defaults and APPENV",
			web: "registry.example.com/acme/svc:from-appenv", api: "registry.example.com/acme/api:1.0"},
		{name: "--set beats APPENV (the build had APPENV win)", set: []string{"image.tag=from-set"},
			web: "registry.example.com/acme/svc:from-set", api: "registry.example.com/acme/api:from-set"},
		{name: "a values file beats APPENV", values: []string{global},
			web: "registry.example.com/acme/svc:from-global-file", api: "registry.example.com/acme/api:from-global-file"},
		{name: "per-app file over the global one, per-app --set over all",
			values: []string{"web=" + web, global}, set: []string{"api:image.tag=from-api-set", "image.registry=mirror.example.com"},
			web: "mirror.example.com/acme/web:from-web-file", api: "mirror.example.com/acme/api:from-api-set"},
	} {
		// Build: what bundling would find.
		images, err := discover.Find([]string{filepath.Join(root, "apps")}, discover.Options{
			ValueFiles: tt.values, Set: tt.set, KubeVersion: version,
			Apps: discover.ImageApps(root, meta.Apps), BaseDir: root,
		})
		if err != nil {
			t.Fatalf("%s: build: %v", tt.name, err)
		}
		built := map[string][]string{}
		for _, img := range images {
			for _, where := range img.FoundIn {
				// apps/<app>/templates/deployment.yaml (Deployment/<app>)
				app := strings.Split(where, "/")[1]
				built[app] = append(built[app], img.Ref)
			}
		}

		// Install: what runs.
		l.ValueFiles, l.Set = tt.values, tt.set
		installed := map[string][]string{}
		for _, name := range []string{"api", "web"} {
			app, _ := l.App(name)
			if err := l.Launch(ctx, app); err != nil {
				t.Fatalf("%s: install %s: %v", tt.name, name, err)
			}
			d, err := cs.AppsV1().Deployments(name).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				installed[name] = append(installed[name], c.Image)
			}
		}

		want := map[string][]string{"web": {tt.web, kubectl}, "api": {tt.api, kubectl}}
		if !reflect.DeepEqual(installed, want) {
			t.Errorf("%s: installed %v, want %v", tt.name, installed, want)
		}
		// Found images come sorted by reference; the pod's in its order.
		for _, app := range []string{"web", "api"} {
			if !sameSet(built[app], installed[app]) {
				t.Errorf("%s: app %s: the build finds %v, the install runs %v", tt.name, app, built[app], installed[app])
			}
		}
	}
}

func sameSet(a, b []string) bool {
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

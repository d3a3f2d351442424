package launch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/test/fixture"
)

func TestMain(m *testing.M) { fixture.Main(m) }

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicaCount }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
{{- if .Values.breakMe }}{{ fail "broken on purpose" }}{{ end }}
`

const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// testImage is a rootfs with a helm app, a manifests app (a Namespace, a
// CRD and an object of it, a Deployment), a templated manifests app and a
// broken chart.
func testImage(t *testing.T) (string, *metadata.Metadata) {
	root := fixture.Context(t, map[string]string{
		"apps/web/Chart.yaml":                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"apps/web/values.yaml":               "replicaCount: 1\nimage: {repository: docker.io/library/nginx, tag: '1.27'}\n",
		"apps/web/templates/deployment.yaml": deployment,
		// A Widget sorts before its CRD and Namespace: the order is hoist's.
		"apps/stack/a-widget.yaml":   "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: stack}\nspec: {size: 3}\n",
		"apps/stack/b-crd.yaml":      crd,
		"apps/stack/c-namespace.yml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: stack}\n",
		"apps/stack/d-deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: stack}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: quay.io/acme/api@sha256:0000000000000000000000000000000000000000000000000000000000000001}]}
`,
		"apps/conf/cm.yaml.tmpl":                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting}\ndata: {text: '{{ .Greeting }} from {{ .Site }}'}\n",
		"apps/broken/Chart.yaml":                "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
		"apps/broken/templates/deployment.yaml": "{{ fail \"this chart is broken\" }}\n",
	})
	meta := metadata.New(metadata.TypeApp)
	meta.KubeVersion = ">=1.28 <1.38"
	meta.Env = map[string]string{"Site": "lab"}
	meta.Apps = []metadata.App{
		{Name: "web", Type: metadata.AppHelm, Env: map[string]string{"image.tag": "2.0"}},
		{Name: "stack", Type: metadata.AppManifests},
		{Name: "conf", Type: metadata.AppManifests},
		{Name: "broken", Type: metadata.AppHelm},
	}
	return root, meta
}

func TestLaunchIntoAPIServer(t *testing.T) {
	ctx := context.Background()
	kubeconfig := fixture.APIServer(t)
	root, meta := testImage(t)
	// sealer's Application files: merged into the chart's values, and
	// into a rendered template's output.
	files := map[string][]clusterfile.AppFile{
		"web":  {{Path: "values.yaml", Strategy: clusterfile.ConfigMerge, Data: "replicaCount: 2\n"}},
		"conf": {{Path: "cm.yaml", Strategy: clusterfile.ConfigMerge, Data: "data: {extra: from the Clusterfile}\n"}},
	}
	l := &Launcher{Kubeconfig: kubeconfig, Rootfs: root, Meta: meta, Env: map[string]string{"Greeting": "hello"}, Files: files, TmpDir: t.TempDir()}
	version, err := l.CheckKubeVersion(ctx)
	if err != nil || !strings.HasPrefix(version, "v1.37.") {
		t.Fatalf("version %q: %v", version, err)
	}
	cfg, _ := l.RESTConfig()
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	launch := func(name string) error {
		t.Helper()
		app, err := l.App(name)
		if err != nil {
			t.Fatal(err)
		}
		return l.Launch(ctx, app)
	}
	for _, name := range []string{"web", "stack", "conf"} {
		if err := launch(name); err != nil {
			t.Fatalf("launch %s: %v", name, err)
		}
	}
	web, err := cs.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := web.Spec.Template.Spec.Containers[0].Image; img != "docker.io/library/nginx:2.0" {
		t.Errorf("web image %s: APPENV image.tag not applied", img)
	}
	if *web.Spec.Replicas != 2 {
		t.Errorf("web replicas %d: the Application's values.yaml merge not applied", *web.Spec.Replicas)
	}
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	w, err := dyn.Resource(widgets).Namespace("stack").Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Widget: %v", err)
	}
	api, err := cs.AppsV1().Deployments("stack").Get(ctx, "api", metav1.GetOptions{})
	if err != nil || !strings.HasSuffix(api.Spec.Template.Spec.Containers[0].Image, "@sha256:0000000000000000000000000000000000000000000000000000000000000001") {
		t.Fatalf("api deployment: %v", err)
	}
	if managers := api.GetManagedFields(); len(managers) == 0 || managers[0].Manager != FieldManager {
		t.Errorf("managed by %v", managers)
	}
	cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "greeting", metav1.GetOptions{})
	if err != nil || cm.Data["text"] != "hello from lab" || cm.Data["extra"] != "from the Clusterfile" {
		t.Fatalf("templated ConfigMap: %v %v", cm, err)
	}

	// Again: nothing changes.
	versions := []string{web.ResourceVersion, w.GetResourceVersion(), api.ResourceVersion, cm.ResourceVersion}
	for _, name := range []string{"web", "stack", "conf"} {
		if err := launch(name); err != nil {
			t.Fatalf("launch %s again: %v", name, err)
		}
	}
	web2, _ := cs.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{})
	w2, _ := dyn.Resource(widgets).Namespace("stack").Get(ctx, "w1", metav1.GetOptions{})
	api2, _ := cs.AppsV1().Deployments("stack").Get(ctx, "api", metav1.GetOptions{})
	cm2, _ := cs.CoreV1().ConfigMaps("default").Get(ctx, "greeting", metav1.GetOptions{})
	if got := []string{web2.ResourceVersion, w2.GetResourceVersion(), api2.ResourceVersion, cm2.ResourceVersion}; strings.Join(got, ",") != strings.Join(versions, ",") {
		t.Errorf("launching again changed objects: resourceVersions %v → %v", versions, got)
	}

	// A changed value upgrades the release.
	l.Set = []string{"replicaCount=3"}
	if err := launch("web"); err != nil {
		t.Fatal(err)
	}
	web3, _ := cs.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{})
	if *web3.Spec.Replicas != 3 {
		t.Errorf("replicas %d after upgrade", *web3.Spec.Replicas)
	}
	history := func(name string) []string {
		hcfg := new(action.Configuration)
		hcfg.Init(kube.GetConfig(kubeconfig, "", name), name, "secret", func(string, ...any) {})
		h := action.NewHistory(hcfg)
		rels, _ := h.Run(name)
		var out []string
		for _, r := range rels {
			out = append(out, r.Info.Status.String())
		}
		return out
	}
	if h := history("web"); strings.Join(h, ",") != "superseded,superseded,deployed" {
		t.Errorf("web history %v", h)
	}

	// A broken upgrade leaves the release as it was; a broken chart fails
	// its app only and records nothing.
	l.Set = []string{"breakMe=true"}
	if err := launch("web"); err == nil || !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("broken upgrade: %v", err)
	}
	if h := history("web"); strings.Join(h, ",") != "superseded,superseded,deployed" {
		t.Errorf("web history after a broken upgrade %v", h)
	}
	l.Set = nil
	if err := launch("broken"); err == nil || !strings.Contains(err.Error(), "app broken") || !strings.Contains(err.Error(), "this chart is broken") {
		t.Errorf("broken chart: %v", err)
	}
	if h := history("broken"); len(h) != 0 {
		t.Errorf("the broken chart left history %v", h)
	}
}

func TestKubeVersionRefused(t *testing.T) {
	kubeconfig := fixture.APIServer(t)
	root, meta := testImage(t)
	meta.KubeVersion = ">=1.28 <1.37"
	l := &Launcher{Kubeconfig: kubeconfig, Rootfs: root, Meta: meta}
	_, err := l.CheckKubeVersion(context.Background())
	if err == nil || !strings.Contains(err.Error(), "v1.37.2") || !strings.Contains(err.Error(), ">=1.28 <1.37") {
		t.Errorf("err = %v", err)
	}
}

func TestReadManifestsErrors(t *testing.T) {
	dir := fixture.Context(t, map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nfoo: bar\n"})
	if _, err := ReadManifests(dir); err == nil || !strings.Contains(err.Error(), "a.yaml:2: not a Kubernetes object") {
		t.Errorf("err = %v", err)
	}
	dir = fixture.Context(t, map[string]string{"a.yaml": "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n- {apiVersion: v1, kind: Secret, metadata: {name: y}}\n"})
	objs, err := ReadManifests(dir)
	if err != nil || len(objs) != 2 || objs[1].GetKind() != "Secret" || objs[1].Source != "a.yaml:1[1]" {
		t.Errorf("list: %v %v", objs, err)
	}
}

// TestAppFiles: the Clusterfile's files of an app, over its rendered
// templates, in order; what cannot be merged is refused naming the file.
func TestAppFiles(t *testing.T) {
	root, meta := testImage(t)
	os.Symlink("/etc/passwd", filepath.Join(root, "apps/web/passwd.yaml"))
	l := &Launcher{Rootfs: root, Meta: meta, Env: map[string]string{"Greeting": "hi"}, TmpDir: t.TempDir()}
	l.Files = map[string][]clusterfile.AppFile{"conf": {
		{Path: "cm.yaml", Strategy: clusterfile.ConfigMerge, Data: "metadata: {namespace: x}\n"},
		{Path: "more/new.yaml", Strategy: clusterfile.ConfigOverwrite, Data: "a: 1\n"},
		{Path: "more/new.yaml", Strategy: clusterfile.ConfigMerge, Data: "b: 2\n"},
	}}
	dir, err := l.rendered(meta.Apps[2])
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"cm.yaml":       "apiVersion: v1\ndata:\n  text: hi from lab\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: x\n",
		"more/new.yaml": "a: 1\nb: 2\n",
		"cm.yaml.tmpl":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting}\ndata: {text: '{{ .Greeting }} from {{ .Site }}'}\n",
	} {
		if got, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", file, got, err, want)
		}
	}
	// An app without templates or files is used in place.
	if dir, err := l.rendered(meta.Apps[1]); err != nil || dir != filepath.Join(root, "apps/stack") {
		t.Errorf("stack: %s %v", dir, err)
	}
	for _, c := range []struct {
		file clusterfile.AppFile
		want string
	}{
		{clusterfile.AppFile{Path: "nothere.yaml", Strategy: clusterfile.ConfigMerge, Data: "a: 1"}, "app web: the Application's file 1 (nothere.yaml): merge: the app has no such file to merge into"},
		{clusterfile.AppFile{Path: "passwd.yaml", Strategy: clusterfile.ConfigMerge, Data: "a: 1"}, "app web: the Application's file 1 (passwd.yaml): merge: the app's file is not a regular file"},
		{clusterfile.AppFile{Path: "values.yaml", Strategy: clusterfile.ConfigMerge, Data: "[1]"}, "app web: the Application's file 1 (values.yaml): merge: the data is not a YAML map: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"},
	} {
		l.Files = map[string][]clusterfile.AppFile{"web": {c.file}}
		if _, err := l.rendered(meta.Apps[0]); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v\nwant %s", c.file, err, c.want)
		}
	}
	// A template that prints a key the env lacks names itself.
	l.Env = nil
	if _, err := l.rendered(meta.Apps[2]); err == nil || err.Error() != "app conf: apps/conf/cm.yaml.tmpl: prints a key the env does not have (it names Greeting): set it in the Clusterfile's spec.env" {
		t.Errorf("missing key: %v", err)
	}
}

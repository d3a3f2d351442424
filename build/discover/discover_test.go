package discover

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// writeFiles writes files (path relative to dir: content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tgz returns a gzipped tar of files, in sorted order.
func tgz(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// Charts used by several cases.
var (
	// app: the image split into repository and tag values.
	appChart = map[string]string{
		"app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"app/values.yaml": `image:
  repository: nginx
  tag: "1.25"
`,
		"app/templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-app
spec:
  template:
    spec:
      containers:
        - name: web
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
`,
		"app/templates/NOTES.txt":    "image: {{ .Values.image.repository }} is not a manifest\n",
		"app/templates/_helpers.tpl": `{{- define "app.name" -}}app{{- end }}`,
	}

	// parent: a subchart enabled by a condition, an aliased subchart used
	// twice, a hook, and an image annotation on a subchart.
	parentChart = map[string]string{
		"parent/Chart.yaml": `apiVersion: v2
name: parent
version: 1.0.0
dependencies:
  - name: cache
    version: 1.0.0
    condition: cache.enabled
  - name: worker
    version: 0.1.0
    alias: jobs
  - name: worker
    version: 0.1.0
    alias: reports
`,
		"parent/values.yaml": `cache:
  enabled: false
jobs:
  image: busybox:1.36
reports:
  image: alpine:3.20
`,
		"parent/templates/hook.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: ghcr.io/acme/migrate:2.0
`,
		"parent/charts/cache/Chart.yaml": `apiVersion: v2
name: cache
version: 1.0.0
annotations:
  helm.sh/images: |
    - name: exporter
      image: oliver006/redis_exporter:v1.62.0
`,
		"parent/charts/cache/templates/sts.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}-cache
spec:
  template:
    spec:
      containers:
        - name: redis
          image: redis:7.2
`,
		"parent/charts/worker/Chart.yaml":  "apiVersion: v2\nname: worker\nversion: 0.1.0\n",
		"parent/charts/worker/values.yaml": "image: busybox:1.35\n",
		"parent/charts/worker/templates/job.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Chart.Name }}
spec:
  template:
    spec:
      containers:
        - name: run
          image: {{ .Values.image }}
`,
	}
)

func merged(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestFind(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		paths []string // relative to the test directory; default "."
		opts  Options  // file names in it are relative to the test directory
		want  map[string][]string
	}{
		{
			name: "deployment with containers and initContainers",
			files: map[string]string{"deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: web
          image: nginx:1.27.3
        - name: sidecar
          image: ghcr.io/acme/sidecar:v2
`},
			want: map[string][]string{
				"docker.io/library/busybox:1.36": {"deploy.yaml (Deployment/web)"},
				"docker.io/library/nginx:1.27.3": {"deploy.yaml (Deployment/web)"},
				"ghcr.io/acme/sidecar:v2":        {"deploy.yaml (Deployment/web)"},
			},
		},
		{
			name: "cronjob",
			files: map[string]string{"cron.yml": `apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: backup
              image: registry.example.com:5000/tools/backup:1.0
`},
			want: map[string][]string{
				"registry.example.com:5000/tools/backup:1.0": {"cron.yml (CronJob/backup)"},
			},
		},
		{
			name: "pod with ephemeralContainers, podtemplate and a custom resource",
			files: map[string]string{"pods.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: debug
spec:
  containers:
    - name: app
      image: quay.io/acme/app:1
  ephemeralContainers:
    - name: shell
      image: busybox
---
apiVersion: v1
kind: PodTemplate
metadata:
  name: tmpl
template:
  spec:
    containers:
      - name: x
        image: quay.io/acme/tmpl:1
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: canary
spec:
  template:
    spec:
      containers:
        - name: app
          image: quay.io/acme/rollout:3
        - name: patch-without-image
`},
			want: map[string][]string{
				"docker.io/library/busybox:latest": {"pods.yaml (Pod/debug)"},
				"quay.io/acme/app:1":               {"pods.yaml (Pod/debug)"},
				"quay.io/acme/tmpl:1":              {"pods.yaml (PodTemplate/tmpl)"},
				"quay.io/acme/rollout:3":           {"pods.yaml (Rollout/canary)"},
			},
		},
		{
			name: "list",
			files: map[string]string{"list.yaml": `apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: agent
    spec:
      template:
        spec:
          containers:
            - name: agent
              image: docker.io/acme/agent:1
  - apiVersion: v1
    kind: PodList
    items:
      - apiVersion: v1
        kind: Pod
        metadata:
          generateName: one-
        spec:
          containers:
            - name: one
              image: acme/one:1
`},
			want: map[string][]string{
				"docker.io/acme/agent:1": {"list.yaml (DaemonSet/agent)"},
				"docker.io/acme/one:1":   {"list.yaml (Pod/one-)"},
			},
		},
		{
			name: "multi-document YAML with documents that are not objects",
			files: map[string]string{"multi.yaml": `# leading comment
---
replicaCount: 3
image: not/an-object-image:1
---
---
- a
- list
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  template:
    spec:
      containers:
        - name: db
          image: postgres:16
---
just a string
`},
			want: map[string][]string{
				"docker.io/library/postgres:16": {"multi.yaml (StatefulSet/db)"},
			},
		},
		{
			name: "json manifest",
			files: map[string]string{"rc.json": `{"apiVersion": "v1", "kind": "ReplicationController",
 "metadata": {"name": "legacy"},
 "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "k8s.gcr.io/legacy:0.1"}]}}}}
`},
			want: map[string][]string{
				"k8s.gcr.io/legacy:0.1": {"rc.json (ReplicationController/legacy)"},
			},
		},
		{
			name:  "chart with the image split into repository and tag",
			files: appChart,
			want: map[string][]string{
				"docker.io/library/nginx:1.25": {"app/templates/deploy.yaml (Deployment/hoist-app)"},
			},
		},
		{
			name:  "--set overrides a tag",
			files: appChart,
			opts:  Options{Set: []string{"image.tag=1.26", "unused.key=x"}},
			want: map[string][]string{
				"docker.io/library/nginx:1.26": {"app/templates/deploy.yaml (Deployment/hoist-app)"},
			},
		},
		{
			// The install's order (package chartvalues): the app's APPENV
			// gives way to a values file, which gives way to --set.
			name:  "APPENV, then values file, then --set",
			files: merged(appChart, map[string]string{"v1.yaml": "image:\n  repository: acme/web\n  tag: v1\n"}),
			paths: []string{"app"},
			opts: Options{
				ValueFiles: []string{"v1.yaml"},
				Set:        []string{"image.tag=v2"},
				Apps:       map[string]App{"app": {Name: "app", Env: map[string]string{"image.repository": "acme/env", "image.tag": "v0"}}},
			},
			want: map[string][]string{
				"docker.io/acme/web:v2": {"app/templates/deploy.yaml (Deployment/hoist-app)"},
			},
		},
		{
			name:  "subchart disabled by its condition; aliases; hooks",
			files: parentChart,
			want: map[string][]string{
				"docker.io/library/busybox:1.36": {"parent/charts/jobs/templates/job.yaml (Job/jobs)"},
				"docker.io/library/alpine:3.20":  {"parent/charts/reports/templates/job.yaml (Job/reports)"},
				"ghcr.io/acme/migrate:2.0":       {"parent/templates/hook.yaml (Job/migrate)"},
			},
		},
		{
			name:  "subchart enabled by a values file",
			files: merged(parentChart, map[string]string{"cache-on.yaml": "cache:\n  enabled: true\n"}),
			paths: []string{"parent"},
			opts:  Options{ValueFiles: []string{"cache-on.yaml"}},
			want: map[string][]string{
				"docker.io/library/busybox:1.36":             {"parent/charts/jobs/templates/job.yaml (Job/jobs)"},
				"docker.io/library/alpine:3.20":              {"parent/charts/reports/templates/job.yaml (Job/reports)"},
				"ghcr.io/acme/migrate:2.0":                   {"parent/templates/hook.yaml (Job/migrate)"},
				"docker.io/library/redis:7.2":                {"parent/charts/cache/templates/sts.yaml (StatefulSet/hoist-cache)"},
				"docker.io/oliver006/redis_exporter:v1.62.0": {"parent/charts/cache/Chart.yaml (helm.sh/images)"},
			},
		},
		{
			name: "helm.sh/images annotation",
			files: map[string]string{
				"op/Chart.yaml": `apiVersion: v2
name: op
version: 0.1.0
annotations:
  helm.sh/images: |
    - name: operator
      image: quay.io/acme/operator:v1
    - name: agent
      image: quay.io/acme/agent:v1
  artifacthub.io/images: |
    - name: agent
      image: quay.io/acme/agent:v1
`,
				"op/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  image: quay.io/not/this:1\n",
			},
			want: map[string][]string{
				"quay.io/acme/operator:v1": {"op/Chart.yaml (helm.sh/images)"},
				"quay.io/acme/agent:v1":    {"op/Chart.yaml (artifacthub.io/images)", "op/Chart.yaml (helm.sh/images)"},
			},
		},
		{
			name: "chart archive",
			files: map[string]string{
				"charts/tiny-0.1.0.tgz": tgz(t, map[string]string{
					"tiny/Chart.yaml":         "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
					"tiny/values.yaml":        "tag: \"3.10\"\n",
					"tiny/templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tiny\nspec:\n  containers:\n    - name: p\n      image: registry.k8s.io/pause:{{ .Values.tag }}\n",
				}),
				"tools.tgz": tgz(t, map[string]string{"bin/tool": "#!/bin/sh\n", "deploy.yaml": "not: scanned\n"}),
				"notgz.tgz": "not gzip at all",
			},
			want: map[string][]string{
				"registry.k8s.io/pause:3.10": {"charts/tiny-0.1.0.tgz/tiny/templates/pod.yaml (Pod/tiny)"},
			},
		},
		{
			name: "image list with comments",
			files: map[string]string{"manifests/imageList": `# images needed at install
registry.k8s.io/pause:3.10

  quay.io/coreos/etcd:v3.5.15   # trailing comment
#nginx:ignored
alpine
`},
			want: map[string][]string{
				"registry.k8s.io/pause:3.10":      {"manifests/imageList:2"},
				"quay.io/coreos/etcd:v3.5.15":     {"manifests/imageList:4"},
				"docker.io/library/alpine:latest": {"manifests/imageList:6"},
			},
		},
		{
			name: "extra image lists",
			files: map[string]string{
				"extra.txt":         "nginx:1.27\n",
				"ignored/README.md": "image: nginx:9\n",
			},
			opts: Options{ImageLists: []string{"extra.txt"}},
			want: map[string][]string{
				"docker.io/library/nginx:1.27": {"extra.txt:1"},
			},
		},
		{
			name: "exclude patterns",
			files: map[string]string{"imageList": `nginx:1.27
docker.io/library/busybox:1
quay.io/a/b:1
quay.io/c/d:2
registry.k8s.io/pause:3.10
registry.k8s.io/etcd:3.5
ghcr.io/acme/keep:1
`},
			opts: Options{Exclude: []string{"docker.io/library/*", "quay.io/", "registry.k8s.io/pause:*", "registry.k8s.io/e*"}},
			want: map[string][]string{
				"ghcr.io/acme/keep:1": {"imageList:7"},
			},
		},
		{
			name: "dedup, FoundIn merged and sorted, normalisation",
			files: map[string]string{
				"imageList": "nginx\ndocker.io/library/nginx:latest\nindex.docker.io/library/nginx\n" +
					"nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000\n" +
					"ghcr.io/a/b:1@sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
				"b.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\nspec:\n  containers:\n    - name: n\n      image: nginx\n",
				"a.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n    - name: n\n      image: library/nginx:latest\n    - name: m\n      image: docker.io/nginx\n",
			},
			want: map[string][]string{
				"docker.io/library/nginx:latest": {"a.yaml (Pod/a)", "b.yaml (Pod/b)", "imageList:1", "imageList:2", "imageList:3"},
				"docker.io/library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000": {"imageList:4"},
				"ghcr.io/a/b:1@sha256:1111111111111111111111111111111111111111111111111111111111111111":           {"imageList:5"},
			},
		},
		{
			name: "templates, scripts and other files are skipped",
			files: map[string]string{
				"etc/kubeadm.yaml.tmpl": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: {{ .Registry }}\n",
				"scripts/init.sh":       "docker pull nginx:1\n",
				"notes.txt":             "image: nginx:2\n",
			},
			want: map[string][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			images, err := Find(inDir(dir, tt.paths, "."), inDirOptions(dir, tt.opts))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, img := range images {
				got[img.Ref] = img.FoundIn
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%v\nwant\n%v", got, tt.want)
			}
			if !sort.SliceIsSorted(images, func(i, j int) bool { return images[i].Ref < images[j].Ref }) {
				t.Errorf("not sorted by Ref: %v", images)
			}
		})
	}
}

// inDir joins each name to dir; def when names is empty.
func inDir(dir string, names []string, def ...string) []string {
	if len(names) == 0 {
		names = def
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}

func inDirOptions(dir string, opts Options) Options {
	opts.ValueFiles = inDir(dir, opts.ValueFiles)
	opts.ImageLists = inDir(dir, opts.ImageLists)
	if opts.Apps != nil {
		apps := map[string]App{}
		for k, v := range opts.Apps {
			apps[filepath.Join(dir, k)] = v
		}
		opts.Apps = apps
	}
	opts.BaseDir = dir
	return opts
}

func TestFindErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		paths []string
		opts  Options
		want  []string // substrings of the error
	}{
		{
			name:  "invalid YAML",
			files: map[string]string{"m/bad.yaml": "apiVersion: v1\nkind: Pod\n---\nkey: [unclosed\n"},
			want:  []string{"m/bad.yaml", "document 2", "invalid YAML"},
		},
		{
			name:  "invalid JSON",
			files: map[string]string{"bad.json": `{"apiVersion": "v1", "kind": "Pod"`},
			want:  []string{"bad.json", "document 1"},
		},
		{
			name:  "unresolved template in a manifest",
			files: map[string]string{"m/deploy.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: \"{{ .Values.x }}\"\n"},
			want:  []string{"m/deploy.yaml (Pod/p)", "templated but unresolved"},
		},
		{
			name:  "unquoted template in a manifest",
			files: map[string]string{"m/deploy.yaml": "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: c\n      image: {{ .Values.x }}\n"},
			want:  []string{"m/deploy.yaml", "template"},
		},
		{
			name:  "invalid reference in a manifest",
			files: map[string]string{"pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: Nginx:1\n"},
			want:  []string{"pod.yaml (Pod/p)", `"Nginx:1"`},
		},
		{
			name:  "image that is not a string",
			files: map[string]string{"pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: 12\n"},
			want:  []string{"pod.yaml (Pod/p)", `container "c"`},
		},
		{
			name:  "invalid reference in an image list",
			files: map[string]string{"manifests/imageList": "# ok\nnginx:1\n\nnot a/ref\n"},
			want:  []string{"manifests/imageList:4", "invalid image reference"},
		},
		{
			name: "chart render failure",
			files: map[string]string{
				"broken/Chart.yaml":         "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
				"broken/templates/pod.yaml": "image: {{ required \"image.tag is required\" .Values.image.tag }}\n",
				"broken/values.yaml":        "image: {}\n",
			},
			want: []string{"chart ", "broken", "image.tag is required"},
		},
		{
			name: "unresolved template rendered by a chart",
			files: map[string]string{
				"tpl/Chart.yaml":         "apiVersion: v2\nname: tpl\nversion: 0.1.0\n",
				"tpl/templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: '{{ \"{{\" }} .Values.x }}'\n",
			},
			want: []string{"tpl/templates/pod.yaml (Pod/p)", "templated but unresolved"},
		},
		{
			name: "dependency missing from charts/",
			files: map[string]string{
				"deps/Chart.yaml": "apiVersion: v2\nname: deps\nversion: 0.1.0\ndependencies:\n  - name: gone\n    version: 1.0.0\n    repository: https://charts.example.com\n",
			},
			want: []string{"chart ", "deps", "gone"},
		},
		{
			name:  "values file that is not YAML",
			files: map[string]string{"values.txt": "a: [\n"},
			opts:  Options{ValueFiles: []string{"values.txt"}},
			want:  []string{"values.txt"},
		},
		{
			name:  "a file given that holds no images",
			files: map[string]string{"notes.txt": "nginx\n"},
			paths: []string{"notes.txt"},
			want:  []string{"notes.txt", "not a Helm chart"},
		},
		{
			name:  "missing path",
			paths: []string{"nowhere"},
			want:  []string{"nowhere"},
		},
		{
			name: "bad exclude pattern",
			opts: Options{Exclude: []string{"["}},
			want: []string{`exclude pattern "["`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			images, err := Find(inDir(dir, tt.paths, "."), inDirOptions(dir, tt.opts))
			if err == nil {
				t.Fatalf("no error; found %v", images)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestFindExample runs on the example build context of the repository.
func TestFindExample(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "platform")
	images, err := Find([]string{dir}, Options{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, img := range images {
		got[img.Ref] = img.FoundIn
	}
	want := map[string][]string{
		"docker.io/library/nginx:1.27.3":          {"charts/web/templates/deployment.yaml (Deployment/hoist)"},
		"quay.io/prometheus/node-exporter:v1.8.2": {"manifests/monitoring/node-exporter.yaml (DaemonSet/node-exporter)"},
		"registry.k8s.io/pause:3.10":              {"rootfs/manifests/imageList:2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// Without BaseDir, FoundIn shows the paths as given.
func TestFindPathsAsGiven(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"imageList": "nginx\n"})
	images, err := Find([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.ToSlash(filepath.Join(dir, "imageList")) + ":1"
	if len(images) != 1 || len(images[0].FoundIn) != 1 || images[0].FoundIn[0] != want {
		t.Errorf("got %v, want FoundIn %s", images, want)
	}
}

func FuzzManifests(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: nginx\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: PodList\n    items: [{apiVersion: v1, kind: Pod, spec: {initContainers: [{image: 3}]}}]\n"))
	f.Add([]byte("---\na: 1\n---\n- x\n---\napiVersion: batch/v1\nkind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{image: 'a/b:c@sha256:0'}]}}}}}\n"))
	f.Add([]byte(`{"apiVersion": "v1", "kind": "Pod", "spec": {"ephemeralContainers": [{"image": "{{ x }}"}]}}`))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - image: {{ .Values.x }}\n"))
	// Custom resources, operator arguments, possible references.
	f.Add([]byte("apiVersion: x.io/v1\nkind: Db\nspec: {image: {registry: quay.io, repository: a/b, tag: v1}, sidecar: {image: 'quay.io/c/d'}}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - image: op:1\n      args: [--solver-image=x/y:1, --reloader, quay.io/r/l:2, --repo-server=svc:8081, -]\n      env: [{name: RELATED_IMAGE_A, value: 'quay.io/a@sha256:0'}]\n  volumes: [{name: v, image: {reference: 7}}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\ndata: {a: 'run quay.io/x/y:v1. and node-role.kubernetes.io/x:NoSchedule'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &finder{found: records{}, skipped: records{}, possible: records{}}
		err := d.manifests("fuzz.yaml", data)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.yaml") {
			t.Errorf("error does not name the file: %v", err)
		}
		for ref, where := range d.found {
			if ref == "" || len(where) == 0 {
				t.Errorf("empty image record %q %v", ref, where)
			}
		}
	})
}

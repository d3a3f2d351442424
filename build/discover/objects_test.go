package discover

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
)

const objectsDir = "testdata/objects"

// sourcesOf maps each image to its sources, checking on the way that
// FoundIn and Kinds are what the sources say, sorted and each once.
func sourcesOf(t *testing.T, images []Image) map[string][]Source {
	t.Helper()
	out := map[string][]Source{}
	for _, img := range images {
		var places []string
		var kinds []Kind
		for _, s := range img.Sources {
			if len(places) == 0 || places[len(places)-1] != s.FoundIn {
				places = append(places, s.FoundIn)
			}
			kinds = append(kinds, s.Kind)
		}
		sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
		kinds = compactKinds(kinds)
		if !reflect.DeepEqual(img.FoundIn, places) || !reflect.DeepEqual(img.Kinds, kinds) {
			t.Errorf("%s: FoundIn %v, Kinds %v; sources %v", img.Ref, img.FoundIn, img.Kinds, img.Sources)
		}
		out[img.Ref] = img.Sources
	}
	return out
}

func compactKinds(kinds []Kind) []Kind {
	var out []Kind
	for _, k := range kinds {
		if len(out) == 0 || out[len(out)-1] != k {
			out = append(out, k)
		}
	}
	return out
}

func checkSources(t *testing.T, what string, images []Image, want map[string][]Source) {
	t.Helper()
	got := sourcesOf(t, images)
	if want == nil {
		want = map[string][]Source{}
	}
	for ref, w := range want {
		if !reflect.DeepEqual(got[ref], w) {
			t.Errorf("%s %s:\n got  %v\n want %v", what, ref, got[ref], w)
		}
	}
	for ref, g := range got {
		if _, ok := want[ref]; !ok {
			t.Errorf("%s: unexpected %s %v", what, ref, g)
		}
	}
}

func TestSearchObjects(t *testing.T) {
	paths := []string{
		filepath.Join(objectsDir, "operator.yaml"),
		filepath.Join(objectsDir, "resources.yaml"),
		filepath.Join(objectsDir, "configmap.yaml"),
	}
	r, err := Search(paths, Options{BaseDir: objectsDir})
	if err != nil {
		t.Fatal(err)
	}
	const (
		op       = "operator.yaml (Deployment/widget-operator)"
		manager  = "spec.template.spec.containers[0]"
		model    = "operator.yaml (Pod/model-server)"
		monitor  = "resources.yaml (Monitor/main)"
		database = "resources.yaml (Database/orders)"
		cache    = "resources.yaml (Cache/sessions)"
		pipeline = "resources.yaml (Pipeline/build)"
		settings = "configmap.yaml (ConfigMap/settings)"
	)
	checkSources(t, "image", r.Images, map[string][]Source{
		"ghcr.io/acme/widget-operator:v0.9.0": {
			{op, KindPod, manager + ".image"},
			{model, KindPod, "spec.containers[0].image"},
		},
		"quay.io/acme/models:v1":                     {{model, KindPod, "spec.volumes[0].image.reference"}},
		"quay.io/acme/config-reloader:v0.75.0":       {{op, KindArgument, manager + ".args[0]"}},
		"docker.io/acme/solver:v1.15.0":              {{op, KindArgument, manager + ".args[1]"}},
		"registry.example.com:5000/acme/reloader:v2": {{op, KindArgument, manager + ".args[2]"}},
		"docker.io/acme/kubectl:1.31":                {{op, KindArgument, manager + ".args[4]"}},
		"quay.io/acme/agent@sha256:2222222222222222222222222222222222222222222222222222222222222222": {
			{op, KindArgument, manager + ".env[0].value"},
		},
		"quay.io/acme/monitor:v2.54.0":       {{monitor, KindCustomResource, "spec.image"}},
		"ghcr.io/acme/postgres:16.4":         {{database, KindCustomResource, "spec.image"}},
		"docker.io/acme/pg-exporter:v0.15.0": {{database, KindCustomResource, "spec.exporter"}},
		"registry.example.com/tools/backup@sha256:3333333333333333333333333333333333333333333333333333333333333333": {
			{database, KindCustomResource, "spec.backup"},
		},
		"quay.io/acme/cache:7.2.5": {{cache, KindCustomResource, "spec"}},
		"gcr.io/acme/builder:1.0":  {{pipeline, KindCustomResource, "spec.steps[0].image"}},
	})
	checkSources(t, "possible", r.Possible, map[string][]Source{
		// Flags and fields for an image, without a tag: the operator adds one.
		"quay.io/acme/thanos":                {{op, KindPossible, manager + ".args[8]"}},
		"quay.io/acme/unpinned":              {{op, KindPossible, manager + ".env[1].value"}},
		"docker.io/library/ubuntu-2204-kube": {{pipeline, KindPossible, "spec.machine.image"}},
		// Fully qualified references outside any image field.
		"quay.io/acme/positional:v1":     {{op, KindPossible, manager + ".args[12]"}},
		"ghcr.io/acme/hint:v3":           {{op, KindPossible, manager + ".env[2].value"}},
		"quay.io/acme/from-config:v1":    {{settings, KindPossible, "data.reloader"}},
		"quay.io/acme/script:1.0":        {{settings, KindPossible, `data["setup.sh"]`}},
		"localhost:5000/acme/script:1.0": {{settings, KindPossible, `data["setup.sh"]`}},
	})
	checkSources(t, "skipped", r.Skipped, nil)

	// Find is Search's images.
	images, err := Find(paths, Options{BaseDir: objectsDir})
	if err != nil || !reflect.DeepEqual(images, r.Images) {
		t.Errorf("Find: %v, %v", images, err)
	}
}

func TestSearchCharts(t *testing.T) {
	dir := filepath.Join(objectsDir, "charts")
	const (
		web     = "tested/templates/deployment.yaml (Deployment/hoist-web)"
		migrate = "tested/templates/migrate.yaml (Job/hoist-migrate)"
		conn    = "tested/templates/tests/connection.yaml (Pod/hoist-test-connection)"
		legacy  = "tested/templates/tests/connection.yaml (Pod/hoist-test-legacy)"
		chartY  = "annotated/Chart.yaml"
	)
	annotated := map[string][]Source{
		"quay.io/acme/db-operator:v1": {
			{chartY + " (artifacthub.io/images)", KindAnnotation, ""},
			{chartY + " (helm.sh/images)", KindAnnotation, ""},
		},
		"docker.io/acme/db:16.4.0": {
			{chartY + " (artifacthub.io/images)", KindAnnotation, ""},
			{chartY + " (images)", KindAnnotation, ""},
		},
		"docker.io/acme/os-shell:12-r30": {{chartY + " (images)", KindAnnotation, ""}},
		// A library chart renders nothing of its own; its templates render
		// through the chart that includes them.
		"docker.io/acme/from-lib:2": {{"uses-lib/templates/pod.yaml (Pod/hoist-uses-lib)", KindPod, "spec.containers[0].image"}},
	}

	t.Run("test hooks skipped", func(t *testing.T) {
		r, err := Search([]string{dir}, Options{BaseDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		checkSources(t, "image", r.Images, merged2(annotated, map[string][]Source{
			// Also in a test, but bundled through the Deployment.
			"docker.io/acme/web:1.0": {{web, KindPod, "spec.template.spec.containers[0].image"}},
			// A test that is also a pre-install hook runs at install.
			"docker.io/acme/migrate:3": {{migrate, KindPod, "spec.template.spec.containers[0].image"}},
		}))
		checkSources(t, "skipped", r.Skipped, map[string][]Source{
			"docker.io/acme/curl:8.9":        {{conn, KindPod, "spec.containers[0].image"}},
			"docker.io/library/busybox:1.36": {{legacy, KindPod, "spec.containers[0].image"}},
		})
		// Nothing in a skipped test is worth a warning.
		checkSources(t, "possible", r.Possible, nil)
	})

	t.Run("--include-tests", func(t *testing.T) {
		r, err := Search([]string{dir}, Options{BaseDir: dir, IncludeTests: true})
		if err != nil {
			t.Fatal(err)
		}
		checkSources(t, "image", r.Images, merged2(annotated, map[string][]Source{
			"docker.io/acme/web:1.0": {
				{web, KindPod, "spec.template.spec.containers[0].image"},
				{conn, KindPod, "spec.containers[1].image"},
			},
			"docker.io/acme/migrate:3":       {{migrate, KindPod, "spec.template.spec.containers[0].image"}},
			"docker.io/acme/curl:8.9":        {{conn, KindPod, "spec.containers[0].image"}},
			"docker.io/library/busybox:1.36": {{legacy, KindPod, "spec.containers[0].image"}},
		}))
		checkSources(t, "skipped", r.Skipped, nil)
		checkSources(t, "possible", r.Possible, map[string][]Source{
			"quay.io/acme/test-only:1": {{conn, KindPossible, "spec.containers[0].env[0].value"}},
		})
	})

	t.Run("library chart alone", func(t *testing.T) {
		r, err := Search([]string{filepath.Join(dir, "lib")}, Options{BaseDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Images)+len(r.Possible)+len(r.Skipped) != 0 {
			t.Errorf("a library chart found %+v", r)
		}
	})

	// A test hook in a plain manifest is applied as any object: hoist
	// applies manifests whatever their Helm annotations say.
	t.Run("test hook in a manifest", func(t *testing.T) {
		tmp := t.TempDir()
		writeFiles(t, tmp, map[string]string{"pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers:\n    - name: c\n      image: docker.io/acme/curl:8.9\n"})
		r, err := Search([]string{tmp}, Options{BaseDir: tmp})
		if err != nil {
			t.Fatal(err)
		}
		checkSources(t, "image", r.Images, map[string][]Source{"docker.io/acme/curl:8.9": {{"pod.yaml (Pod/t)", KindPod, "spec.containers[0].image"}}})
		checkSources(t, "skipped", r.Skipped, nil)
	})
}

func merged2(maps ...map[string][]Source) map[string][]Source {
	out := map[string][]Source{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Excluded images are neither bundled nor warned about.
func TestSearchExclude(t *testing.T) {
	r, err := Search([]string{objectsDir + "/operator.yaml"}, Options{BaseDir: objectsDir, Exclude: []string{"quay.io/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]Image{r.Images, r.Possible, r.Skipped} {
		for _, img := range set {
			if strings.HasPrefix(img.Ref, "quay.io/") {
				t.Errorf("excluded %s listed: %v", img.Ref, img.Sources)
			}
		}
	}
	if len(r.Images) == 0 || len(r.Possible) == 0 {
		t.Errorf("exclusion dropped too much: %+v", r)
	}
}

// TestImageAnnotationErrors: a malformed helm.sh/images or
// artifacthub.io/images annotation is an error naming the Chart.yaml;
// Bitnami's unprefixed images key, which another chart may use for
// something else, is a warning and adds nothing.
func TestImageAnnotationErrors(t *testing.T) {
	for _, tt := range []struct {
		name, annotations string
		warn              bool
		want              []string
	}{
		{
			name:        "Bitnami's images as a plain string",
			annotations: "  images: docker.io/acme/db:16\n",
			warn:        true,
			want:        []string{"bad/Chart.yaml", "annotation images", "want a YAML list of {name, image}", "ignored"},
		},
		{
			name:        "an images entry without an image",
			annotations: "  images: |\n    - name: db\n      image: docker.io/acme/db:16\n    - name: shell\n",
			warn:        true,
			want:        []string{"bad/Chart.yaml (images)", `entry 2 ("shell") has no image`, "ignored"},
		},
		{
			name:        "a helm.sh/images entry without an image",
			annotations: "  helm.sh/images: |\n    - name: db\n      image: docker.io/acme/db:16\n    - name: shell\n",
			want:        []string{"bad/Chart.yaml (helm.sh/images)", `entry 2 ("shell") has no image`},
		},
		{
			name:        "an invalid reference",
			annotations: "  artifacthub.io/images: |\n    - name: db\n      image: Acme/DB\n",
			want:        []string{"bad/Chart.yaml (artifacthub.io/images)", `invalid image reference "Acme/DB"`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"bad/Chart.yaml": "apiVersion: v2\nname: bad\nversion: 0.1.0\nannotations:\n" + tt.annotations})
			var warnings []string
			r, err := Search([]string{dir}, Options{BaseDir: dir, Warn: func(m string) { warnings = append(warnings, m) }})
			got := fmt.Sprint(err)
			if tt.warn {
				if err != nil || len(warnings) != 1 || len(r.Images) != 0 {
					t.Fatalf("want one warning and no image: error %v, warnings %q, images %v", err, warnings, r.Images)
				}
				got = warnings[0]
			} else if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q does not contain %q", got, w)
				}
			}
		})
	}
}

func TestQualified(t *testing.T) {
	for s, want := range map[string]string{
		"quay.io/org/name:v1":                           "quay.io/org/name:v1",
		"registry.example.com:5000/a/b:1":               "registry.example.com:5000/a/b:1",
		"localhost/a:1":                                 "localhost/a:1",
		"docker.io/nginx:1.27":                          "docker.io/library/nginx:1.27",
		"ghcr.io/a/b@sha256:" + strings.Repeat("0", 64): "ghcr.io/a/b@sha256:" + strings.Repeat("0", 64),
		"svc:8081":                    "",
		"acme/app:v1":                 "", // no registry host
		"quay.io/org/name":            "", // no tag
		"quay.io:443":                 "", // no path
		"https://quay.io/org/name:v1": "",
		"node-role.kubernetes.io/control-plane:x": "", // a label or taint key
		"example.com/taint:NoSchedule":            "",
		"0.0.0.0:8080":                            "",
		"Quay.io/Org/Name:v1":                     "",
		"":                                        "",
	} {
		named, ok := qualified(s)
		got := ""
		if ok {
			got = named.String()
		}
		if got != want {
			t.Errorf("qualified(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestNamesImage(t *testing.T) {
	for name, want := range map[string]bool{
		"image":                      true,
		"acme-http01-solver-image":   true,
		"thanos-default-base-image":  true,
		"configReloaderImage":        true,
		"sidecar_image":              true,
		"web.image":                  true,
		"image-pull-policy":          false,
		"image-tag":                  false,
		"imageRegistry":              false,
		"prometheus-config-reloader": false,
		"images":                     false,
		"":                           false,
	} {
		if got := namesImage(name); got != want {
			t.Errorf("namesImage(%q) = %v", name, got)
		}
	}
}

func TestSplitFlag(t *testing.T) {
	type flag struct {
		name, value string
		inline      bool
	}
	for s, want := range map[string]flag{
		"--a=b":       {"a", "b", true},
		"-a=b=c":      {"a", "b=c", true},
		"--image":     {"image", "", false},
		"--x=":        {"x", "", true},
		"---a=b":      {},
		"--":          {},
		"-":           {},
		"-1":          {},
		"--=x":        {},
		"plain":       {},
		"quay.io/a:1": {},
	} {
		var got flag
		got.name, got.value, got.inline = splitFlag(s)
		if got != want {
			t.Errorf("splitFlag(%q) = %+v, want %+v", s, got, want)
		}
	}
}

// FuzzObjects checks what any object gives: errors that name the file,
// possible and skipped images never also bundled, and kinds that exist.
func FuzzObjects(f *testing.F) {
	for _, name := range []string{"operator.yaml", "resources.yaml", "configmap.yaml", "charts/tested/templates/tests/connection.yaml"} {
		data, err := readTestdata(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, true, false)
	}
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {annotations: {helm.sh/hook: 'test, pre-install'}}\nspec: {containers: [{image: a:1, args: ['--x-image', '--y']}]}\n"), true, true)
	f.Add([]byte("apiVersion: v1\nkind: X\nspec: {repository: a, tag: '', digest: 'sha256:1', registry: '/'}\n"), false, false)
	f.Fuzz(func(t *testing.T, data []byte, fromChart, includeTests bool) {
		d := &finder{opts: Options{IncludeTests: includeTests}, found: records{}, skipped: records{}, possible: records{}}
		if err := d.decode("fuzz.yaml", data, fromChart); err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		r := d.result()
		bundled := map[string]bool{}
		for _, img := range r.Images {
			bundled[img.Ref] = true
		}
		for _, set := range [][]Image{r.Images, r.Possible, r.Skipped} {
			for _, img := range set {
				if img.Ref == "" || len(img.Sources) == 0 || len(img.FoundIn) == 0 {
					t.Errorf("empty record %+v", img)
				}
				for _, k := range img.Kinds {
					switch k {
					case KindPod, KindCustomResource, KindArgument, KindPossible:
					default:
						t.Errorf("%s: kind %q", img.Ref, k)
					}
				}
			}
		}
		for _, img := range append(r.Possible, r.Skipped...) {
			if bundled[img.Ref] {
				t.Errorf("%s both bundled and not", img.Ref)
			}
		}
	})
}

// FuzzImageAnnotations checks the annotation parser: an error names the
// Chart.yaml, and what it records are references.
func FuzzImageAnnotations(f *testing.F) {
	f.Add("- name: a\n  image: quay.io/a/b:1\n")
	f.Add("- name: a\n  image: docker.io/bitnami/a:1.2.3-debian-12-r4\n  whitelisted: true\n")
	f.Add("docker.io/a:1")
	f.Add("- name: a\n")
	f.Add("- {{ .Chart.AppVersion }}")
	f.Fuzz(func(t *testing.T, value string) {
		d := &finder{found: records{}, skipped: records{}, possible: records{}}
		c := &chart.Chart{Metadata: &chart.Metadata{Name: "c", Annotations: map[string]string{"images": value}}}
		err := d.annotations(c, func(name string) string { return name })
		if err != nil && !strings.HasPrefix(err.Error(), "c/Chart.yaml") {
			t.Errorf("error does not name the Chart.yaml: %v", err)
		}
		for ref, sources := range d.found {
			for src := range sources {
				if ref == "" || src.Kind != KindAnnotation || src.FoundIn != "c/Chart.yaml (images)" {
					t.Errorf("record %q %+v", ref, src)
				}
			}
		}
	})
}

func readTestdata(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(objectsDir, name))
}

func TestResultWarnings(t *testing.T) {
	r := &Result{
		Possible: []Image{{Ref: "quay.io/a/b:1", Sources: []Source{
			{FoundIn: "cm.yaml (ConfigMap/x)", Kind: KindPossible, Field: "data.a"},
			{FoundIn: "cm.yaml (ConfigMap/y)", Kind: KindPossible, Field: "data.b"},
		}}},
		Skipped: []Image{{Ref: "docker.io/acme/curl:8", Sources: []Source{{FoundIn: "c/templates/t.yaml (Pod/t)", Kind: KindPod, Field: "spec.containers[0].image"}}}},
	}
	want := []string{
		"possible image, not bundled: quay.io/a/b:1 in cm.yaml (ConfigMap/x) data.a, cm.yaml (ConfigMap/y) data.b; if the cluster runs it, list it in an image list (--image-list) or an IMAGE instruction",
		"not bundled, only Helm test hooks run it: docker.io/acme/curl:8 in c/templates/t.yaml (Pod/t) spec.containers[0].image; --include-tests bundles it",
	}
	if got := r.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

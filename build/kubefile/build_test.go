package kubefile_test

// Real buildah builds of what the planner decides for sealer's Kubefiles:
// they need root (fixture.Store skips without it).

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/test/fixture"
)

func TestMain(m *testing.M) { fixture.Main(m) }

// built is an image as an independent reader sees it.
type built struct {
	meta   *metadata.Metadata
	cmd    []string // the config's docker CMD
	files  map[string]string
	stderr string
}

func buildImage(t *testing.T, store *clusterimage.Store, name string, files map[string]string, opts build.Options) built {
	t.Helper()
	var out, stderr bytes.Buffer
	opts.ContextDir, opts.Tags, opts.Out, opts.Err = fixture.Context(t, files), []string{name}, &out, &stderr
	if _, err := build.Build(context.Background(), store, opts); err != nil {
		t.Fatalf("build %s: %v\n%s%s", name, err, out.String(), stderr.String())
	}
	img := fixture.SavedImage(t, store, name)
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.Decode([]byte(manifest.Annotations[metadata.Annotation]))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return built{meta: meta, cmd: cfg.Config.Cmd, files: fixture.Rootfs(t, mutate.Extract(img)), stderr: stderr.String()}
}

// TestBuildCmd: CMD runs at install whatever the base, recorded in the
// metadata; children of a hoist image inherit it, add to it, or drop it.
func TestBuildCmd(t *testing.T) {
	store := fixture.Store(t)
	parent := buildImage(t, store, "test/cmd-parent:v1", map[string]string{
		"Kubefile":         "FROM scratch\nCOPY manifests/ manifests/\nCMD kubectl apply -f manifests/\n",
		"manifests/a.yaml": "kind: Namespace\n",
	}, build.Options{})
	if want := []string{"kubectl apply -f manifests/"}; !reflect.DeepEqual(parent.meta.Launch.Cmds, want) || !reflect.DeepEqual(parent.meta.Launch.Cmd, want) {
		t.Errorf("FROM scratch with only COPY: launch = %+v", parent.meta.Launch)
	}
	// Docker's CMD is kept in the config as well.
	if want := []string{"/bin/sh", "-c", "kubectl apply -f manifests/"}; !reflect.DeepEqual(parent.cmd, want) {
		t.Errorf("config CMD = %q, want %q", parent.cmd, want)
	}
	if parent.files["manifests/a.yaml"] != "kind: Namespace\n" {
		t.Errorf("files = %v", parent.files)
	}

	for _, tc := range []struct {
		name, kubefile string
		imageType      metadata.ImageType
		want           []string
	}{
		{"child without CMD inherits", "FROM test/cmd-parent:v1\nCOPY b.yaml manifests/\n", "", []string{"kubectl apply -f manifests/"}},
		{"child with a CMD adds to it", "FROM test/cmd-parent:v1\nCMD [\"kubectl get pods -A\"]\n", "", []string{"kubectl apply -f manifests/", "kubectl get pods -A"}},
		{"child with CMD [] overrides it", "FROM test/cmd-parent:v1\nCMD []\nCMD kubectl get pods -A\n", "", []string{"kubectl get pods -A"}},
		{"app child runs its own only", "FROM test/cmd-parent:v1\nCOPY b.yaml manifests/\n", metadata.TypeApp, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			child := buildImage(t, store, "test/cmd-child:v1", map[string]string{"Kubefile": tc.kubefile, "b.yaml": "kind: ConfigMap\n"}, build.Options{Type: tc.imageType})
			if !reflect.DeepEqual(child.meta.Launch.Cmds, tc.want) || !reflect.DeepEqual(child.meta.Launch.Cmd, tc.want) {
				t.Errorf("launch = %+v, want cmds and cmd %q", child.meta.Launch, tc.want)
			}
		})
	}
}

// TestBuildSourcesGiveTheSameFile builds the case of sealer's e2e fixture
// build_with_appcmds (testdata/appcmds, written for hoist): the later
// source's file is the one in the image, as in sealer.
func TestBuildSourcesGiveTheSameFile(t *testing.T) {
	store := fixture.Store(t)
	var out, stderr bytes.Buffer
	if _, err := build.Build(context.Background(), store, build.Options{ContextDir: "testdata/appcmds", Tags: []string{"test/appcmds:v1"}, Out: &out, Err: &stderr}); err != nil {
		t.Fatalf("build: %v\n%s%s", err, out.String(), stderr.String())
	}
	img := fixture.SavedImage(t, store, "test/appcmds:v1")
	files := fixture.Rootfs(t, mutate.Extract(img))
	if got := files["apps/mixed/setup.sh"]; got != "#!/bin/sh\necho setup from more/\n" {
		t.Errorf("apps/mixed/setup.sh = %q, want more/'s", got)
	}
	for _, f := range []string{"apps/manifests/namespace.yaml", "apps/manifests/configmap.yaml", "apps/scripts/01-first.sh", "apps/scripts/02-second.sh"} {
		if _, ok := files[f]; !ok {
			t.Errorf("%s is missing", f)
		}
	}
	if !strings.Contains(stderr.String(), "testdata/appcmds/Kubefile:8: warning: app mixed: local://more replaces apps/mixed/setup.sh from local://setup.sh") {
		t.Errorf("stderr = %q", stderr.String())
	}
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.Decode([]byte(manifest.Annotations[metadata.Annotation]))
	if err != nil {
		t.Fatal(err)
	}
	if a := meta.App("mixed"); a == nil || a.Type != metadata.AppShell || !reflect.DeepEqual(a.Cmds, []string{"sh setup.sh"}) {
		t.Errorf("app mixed = %+v", a)
	}
	if !reflect.DeepEqual(meta.Launch.Apps, []string{"mixed", "scripts"}) {
		t.Errorf("launch = %+v", meta.Launch)
	}
}

// TestBuildSealerLayout: sealer's application/apps/, from the build context
// or a COPY destination, ends in /apps/, as apps.
func TestBuildSealerLayout(t *testing.T) {
	store := fixture.Store(t)
	img := buildImage(t, store, "test/layout:v1", map[string]string{
		"Kubefile":                    "FROM scratch\nCOPY . .\nCOPY db.yaml application/apps/db/\nLAUNCH [\"db\", \"web\"]\n",
		"application/apps/web/a.yaml": "kind: Namespace\n",
		"etc/x.conf":                  "x\n",
		"db.yaml":                     "kind: StatefulSet\n",
	}, build.Options{})
	for name, want := range map[string]string{"apps/web/a.yaml": "kind: Namespace\n", "apps/db/db.yaml": "kind: StatefulSet\n", "etc/x.conf": "x\n"} {
		if got, ok := img.files[name]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	for name := range img.files {
		if strings.HasPrefix(name, "application/") {
			t.Errorf("%s is still in sealer's layout", name)
		}
	}
	if img.meta.App("web") == nil || img.meta.App("db") == nil || !reflect.DeepEqual(img.meta.Launch.Apps, []string{"db", "web"}) {
		t.Errorf("metadata = %+v", img.meta)
	}
}

// TestBuildContextReplacesSealerBase: a sealer Kubefile builds, unchanged,
// on another image given with --build-context; without it, its FROM line
// fails before anything is pulled.
func TestBuildContextReplacesSealerBase(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")
	files := map[string]string{"Kubefile": "FROM docker.io/sealerio/kubernetes:v1.22.15\nRUN echo hi > /hi.txt\nCOPY --from=docker.io/sealerio/kubernetes:v1.22.15 /bin/busybox /copied\nCMD kubectl get nodes\n"}
	img := buildImage(t, store, "test/on-hoist:v1", files, build.Options{BuildContexts: map[string]string{"docker.io/sealerio/kubernetes:v1.22.15": "test/base:v1"}})
	if img.files["hi.txt"] != "hi\n" || img.files["copied"] == "" || img.files["bin/busybox"] == "" {
		t.Errorf("not built on test/base:v1: %d files, hi.txt %q", len(img.files), img.files["hi.txt"])
	}
	if !reflect.DeepEqual(img.meta.Launch.Cmds, []string{"kubectl get nodes"}) {
		t.Errorf("launch = %+v", img.meta.Launch)
	}

	var out bytes.Buffer
	_, err := build.Build(context.Background(), store, build.Options{ContextDir: fixture.Context(t, files), Out: &out, Err: &out})
	if err == nil || !strings.Contains(err.Error(), "Kubefile:1: FROM docker.io/sealerio/kubernetes:v1.22.15: a sealer image") || strings.Contains(err.Error(), "pulling") {
		t.Errorf("without --build-context: %v", err)
	}
}

// TestBuildRefusesSealerImages: an image sealer built is known by its
// labels or annotations once in the store, whatever its name.
func TestBuildRefusesSealerImages(t *testing.T) {
	store := fixture.Store(t)
	for _, tc := range []struct {
		name string
		opts build.Options
		why  string
	}{
		{"test/sealer-label:v1", build.Options{Labels: []string{"io.sealer.version=v0.11.0"}}, "its label io.sealer.version=v0.11.0 says sealer built it"},
		{"test/sealer-spec:v1", build.Options{Annotations: []string{`sealer.image.extension={"type":"kube-installer"}`}}, "its annotation sealer.image.extension is sealer's image spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buildImage(t, store, tc.name, map[string]string{"Kubefile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "a\n"}, tc.opts)
			ctx := fixture.Context(t, map[string]string{"Kubefile": "# built by sealer\nFROM " + tc.name + "\nCOPY b.txt /b.txt\n", "b.txt": "b\n"})
			want := "Kubefile:2: FROM " + tc.name + ": a sealer image (" + tc.why + "), which hoist cannot build on"
			_, err := build.Build(context.Background(), store, build.Options{ContextDir: ctx})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("build: %v, want %q", err, want)
			}
			if _, err := build.DryRun(context.Background(), store, build.Options{ContextDir: ctx}); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("dry run: %v, want %q", err, want)
			}
		})
	}
}

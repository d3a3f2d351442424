package build_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/test/fixture"
)

func TestBuildRealImage(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")

	ctx := fixture.Context(t, map[string]string{
		"Kubefile": `FROM test/base:v1
ARG GREETING=hello
ENV PodCIDR=100.64.0.0/10
LABEL acme.team=platform
WORKDIR /opt/acme
COPY etc/ /etc/acme/
RUN echo "$GREETING from RUN" > /opt/acme/run.txt
APP web local://charts/web
APP mon manifests
LAUNCH ["mon", "web"]
`,
		"etc/config.yaml":                      "key: value\n",
		"charts/web/Chart.yaml":                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":               "replicas: 1\n",
		"charts/web/templates/deployment.yaml": "kind: Deployment\n",
		"manifests/ns.yaml":                    "kind: Namespace\n",
	})
	var out bytes.Buffer
	res, err := Build(context.Background(), store, Options{
		ContextDir: ctx, Tags: []string{"test/app:v1"}, BuildArgs: map[string]string{"GREETING": "hi"},
		Labels: []string{"extra=1"}, Annotations: []string{"acme.note=x"}, Out: &out, Err: &out,
	})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}

	// Read the image back with an independent reader: save it as an OCI
	// archive and open it with go-containerregistry.
	img := fixture.SavedImage(t, store, "test/app:v1")
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.WorkingDir != "/opt/acme" || cfg.Config.Labels["acme.team"] != "platform" || cfg.Config.Labels["extra"] != "1" {
		t.Errorf("config = %+v", cfg.Config)
	}
	if cfg.Config.Labels[metadata.TypeLabel] != "cluster" || !contains(cfg.Config.Env, "PodCIDR=100.64.0.0/10") {
		t.Errorf("labels %v env %v", cfg.Config.Labels, cfg.Config.Env)
	}
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest.Annotations["acme.note"] != "x" {
		t.Errorf("annotations = %v", manifest.Annotations)
	}
	meta, err := metadata.Decode([]byte(manifest.Annotations[metadata.Annotation]))
	if err != nil {
		t.Fatalf("metadata annotation: %v", err)
	}
	if meta.App("web") == nil || meta.App("web").Type != "helm" || meta.App("mon").Type != "manifests" ||
		!reflect.DeepEqual(meta.Launch.Apps, []string{"mon", "web"}) || meta.Env["PodCIDR"] != "100.64.0.0/10" {
		t.Errorf("metadata = %+v", meta)
	}
	files := fixture.Rootfs(t, mutate.Extract(img))
	for name, want := range map[string]string{
		"opt/acme/run.txt":                   "hi from RUN\n",
		"etc/acme/config.yaml":               "key: value\n",
		"apps/web/Chart.yaml":                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"apps/web/templates/deployment.yaml": "kind: Deployment\n",
		"apps/mon/ns.yaml":                   "kind: Namespace\n",
	} {
		if got, ok := files[name]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if _, ok := files["bin/busybox"]; !ok {
		t.Errorf("the base image's busybox is missing")
	}
	if res.ID == "" || len(res.Plans) != 1 {
		t.Errorf("result = %+v", res)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLayerCache(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")
	ctx := fixture.Context(t, map[string]string{
		"Kubefile": "FROM test/base:v1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy.txt\nCOPY b.txt /b.txt\nRUN echo done > /done.txt\n",
		"a.txt":    "a\n",
		"b.txt":    "b\n",
	})
	build := func(noCache bool) (string, string) {
		var out bytes.Buffer
		res, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/cache:v1"}, NoCache: noCache, Out: &out, Err: &out})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out.String())
		}
		return res.ID, out.String()
	}
	first, _ := build(false)
	// Unchanged, the build cache gives the image; the layers are cached
	// too: a change to the Kubefile's comments (not a step) makes buildah
	// run, every step from its cache.
	second, out := build(false)
	if !strings.Contains(out, "--> Using cache "+first) || second != first {
		t.Errorf("rebuild: id %s vs %s\n%s", second, first, out)
	}
	kf := filepath.Join(ctx, "Kubefile")
	data, _ := os.ReadFile(kf)
	os.WriteFile(kf, append([]byte("# a comment\n"), data...), 0o644)
	second, out = build(false)
	// Steps: FROM, 2 COPY, 2 RUN, and the metadata LABEL buildah adds.
	if hits := strings.Count(out, "Using cache"); hits < 5 || second != first {
		t.Errorf("rebuild: %d cache hits, id %s vs %s\n%s", hits, second, first, out)
	}
	os.WriteFile(filepath.Join(ctx, "b.txt"), []byte("changed\n"), 0o644)
	third, out := build(false)
	if third == first {
		t.Errorf("a changed file did not change the image")
	}
	// Only the steps before the changed COPY come from the cache.
	if hits := strings.Count(out, "Using cache"); hits != 2 {
		t.Errorf("after changing b.txt: %d cache hits, want 2 (COPY a.txt, RUN)\n%s", hits, out)
	}
	_, out = build(true)
	if strings.Contains(out, "Using cache") {
		t.Errorf("--no-cache used the cache:\n%s", out)
	}
}

func TestMultiStageAndBuildArgs(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")
	ctx := fixture.Context(t, map[string]string{
		"Kubefile": `ARG BASE=test/base:v1
FROM $BASE AS builder
ARG VERSION=0
RUN echo "version $VERSION" > /artifact
FROM scratch
COPY --from=builder /artifact /artifact
`,
	})
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/multi:v1"}, BuildArgs: map[string]string{"VERSION": "7"}}); err != nil {
		t.Fatal(err)
	}
	files := fixture.Rootfs(t, mutate.Extract(fixture.SavedImage(t, store, "test/multi:v1")))
	if files["artifact"] != "version 7\n" || len(files) != 1 {
		t.Errorf("rootfs = %v", files)
	}
	// --target stops at the named stage: the builder, with busybox.
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/builder:v1"}, Target: "builder"}); err != nil {
		t.Fatal(err)
	}
	files = fixture.Rootfs(t, mutate.Extract(fixture.SavedImage(t, store, "test/builder:v1")))
	if files["artifact"] != "version 0\n" || files["bin/busybox"] == "" {
		t.Errorf("--target builder: artifact %q, busybox present %v", files["artifact"], files["bin/busybox"] != "")
	}
}

func TestChildLaunchesParentApp(t *testing.T) {
	store := fixture.Store(t)
	parent := fixture.Context(t, map[string]string{
		"Kubefile":    "FROM scratch\nENV FromParent=yes\nCNI calico calico.yaml\nAPP web web.yaml\nLAUNCH web\nCMDS [\"echo parent\"]\n",
		"calico.yaml": "kind: DaemonSet\n",
		"web.yaml":    "kind: Deployment\n",
	})
	if _, err := Build(context.Background(), store, Options{ContextDir: parent, Tags: []string{"test/parent:v1"}}); err != nil {
		t.Fatal(err)
	}
	child := fixture.Context(t, map[string]string{
		"Kubefile":   "FROM test/parent:v1\nAPP extra extra.yaml\nLAUNCH calico web extra\n",
		"extra.yaml": "kind: ConfigMap\n",
	})
	res, err := Build(context.Background(), store, Options{ContextDir: child, Tags: []string{"test/child:v1"}, Pull: PullNever})
	if err != nil {
		t.Fatal(err)
	}
	d, err := store.Inspect(context.Background(), "test/child:v1")
	if err != nil {
		t.Fatal(err)
	}
	m := d.Metadata
	if m == nil || len(m.Apps) != 3 || !reflect.DeepEqual(m.Launch.Apps, []string{"calico", "web", "extra"}) ||
		len(m.Launch.Cmds) != 0 || !reflect.DeepEqual(m.CNI, []string{"calico"}) || m.Env["FromParent"] != "yes" {
		t.Errorf("child metadata = %+v", m)
	}
	files := fixture.Rootfs(t, mutate.Extract(fixture.SavedImage(t, store, "test/child:v1")))
	if files["apps/web/web.yaml"] == "" || files["apps/extra/extra.yaml"] == "" {
		t.Errorf("rootfs = %v", files)
	}
	if res.Plans[0].Base != "test/parent:v1" {
		t.Errorf("base = %q", res.Plans[0].Base)
	}
}

func TestMissingBaseWithPullNever(t *testing.T) {
	store := fixture.Store(t)
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM example.invalid/none:v1\n"})
	_, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/x:v1"}, Pull: PullNever})
	if err == nil || !strings.Contains(err.Error(), "FROM example.invalid/none:v1") || !strings.Contains(err.Error(), "--pull=never") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
	}
	fixture.AssertClean(t, store)
}

func TestForeignPlatformRunNeedsBinfmt(t *testing.T) {
	store := fixture.Store(t)
	foreign := kubefile.Platform{OS: "linux", Arch: "s390x"}
	// A kernel with no binfmt handler registered, whatever this machine has.
	binfmt := t.TempDir()
	defer SetBinfmtDir(binfmt)()
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nRUN true\n"})
	_, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/x:v1"}, Platforms: []kubefile.Platform{foreign}})
	if err == nil || !strings.Contains(err.Error(), "needs binfmt support for s390x") {
		t.Fatalf("err = %v", err)
	}
	// The check reads the handler the kernel lists, enabled or not.
	for content, want := range map[string]bool{"enabled\ninterpreter /usr/bin/qemu-s390x-static\n": true, "disabled\n": false} {
		os.WriteFile(filepath.Join(binfmt, "qemu-s390x"), []byte(content), 0o644)
		if got := BinfmtSupports("s390x"); got != want {
			t.Errorf("handler %q: supports = %v", content, got)
		}
	}
}

func TestMultiPlatformIndex(t *testing.T) {
	store := fixture.Store(t)
	ctx := fixture.Context(t, map[string]string{
		"Kubefile":       "FROM scratch\nCOPY bin/${ARCH}/tool /bin/tool\nAPP web web.yaml\n",
		"bin/amd64/tool": "amd64 tool\n",
		"bin/arm64/tool": "arm64 tool\n",
		"web.yaml":       "kind: Namespace\n",
	})
	platforms := []kubefile.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/multi:v1"}, Platforms: platforms}); err != nil {
		t.Fatal(err)
	}
	d, err := store.Inspect(context.Background(), "test/multi:v1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Platforms, []string{"linux/amd64", "linux/arm64"}) || d.Metadata == nil || d.Metadata.App("web") == nil {
		t.Fatalf("inspect = %+v", d)
	}
	idx := fixture.SavedIndex(t, store, "test/multi:v1")
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 2 {
		t.Fatalf("index: %v %+v", err, im)
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		files := fixture.Rootfs(t, mutate.Extract(img))
		if want := desc.Platform.Architecture + " tool\n"; files["bin/tool"] != want {
			t.Errorf("%s: bin/tool = %q, want %q", desc.Platform.Architecture, files["bin/tool"], want)
		}
	}
}

func TestInterruptedBuild(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM test/base:v1\nRUN sleep 60\n"})
	c, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := Build(c, store, Options{ContextDir: ctx, Tags: []string{"test/slow:v1"}, Out: &out, Err: &out})
		done <- err
	}()
	// Cancel once the RUN step is running.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "RUN sleep 60") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the build did not stop when cancelled")
	}
	fixture.AssertClean(t, store)
	if _, err := store.Inspect(context.Background(), "test/slow:v1"); err == nil {
		t.Errorf("an interrupted build left an image")
	}
	// The next build works.
	os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM test/base:v1\nRUN true\n"), 0o644)
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/slow:v1"}}); err != nil {
		t.Fatalf("build after interrupt: %v", err)
	}
}

func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; CI runs as root")
	}
	root := fixture.Root(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", root).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", root).Run() })
	store, err := clusterimage.Open(root, clusterimage.OpenOptions{Driver: clusterimage.DriverVFS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	big := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY big /big\n", "big": big})
	_, err = Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/big:v1"}})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v", err)
	}
	if _, err := store.List(context.Background(), true); err != nil {
		t.Errorf("the store does not list after a full disk: %v", err)
	}
	// Once there is space again, the next build works and cleans up what
	// the failed one could not remove without space.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", root).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	ctx = fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY small /small\n", "small": "x"})
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/small:v1"}}); err != nil {
		t.Fatalf("build after a full disk: %v", err)
	}
	fixture.AssertClean(t, store)
}

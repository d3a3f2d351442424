package build_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/test/fixture"
)

// built is what one build did, as its output and events tell.
type built struct {
	id      string
	cached  bool // the build cache gave the image
	buildah bool // buildah ran
	out     string
}

func buildOnce(t *testing.T, store *clusterimage.Store, opts Options) built {
	t.Helper()
	rec := &recorder{}
	var out bytes.Buffer
	opts.Out, opts.Err, opts.Reporter = &out, &out, rec
	res, err := Build(context.Background(), store, opts)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	b := built{id: res.ID, out: out.String()}
	b.cached = strings.Contains(b.out, "--> Using cache "+res.ID+": nothing that goes into the build changed")
	for _, e := range rec.events {
		if e.Step == StepBuildah {
			b.buildah = true
		}
	}
	if b.cached == b.buildah {
		t.Fatalf("cached %v and buildah ran %v:\n%s", b.cached, b.buildah, b.out)
	}
	return b
}

// containersFile is the store's record of working containers: buildah
// rewrites it for every container it creates or removes.
func containersFile(t *testing.T, store *clusterimage.Store) os.FileInfo {
	t.Helper()
	var files []string
	for _, dir := range []string{store.Storage.GraphRoot(), store.Storage.RunRoot()} {
		found, _ := filepath.Glob(filepath.Join(dir, "*-containers", "*containers.json"))
		files = append(files, found...)
	}
	if len(files) != 1 {
		t.Fatalf("the store's containers files: %v", files)
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// TestCachedRebuildSkipsBuildah: a rebuild of unchanged inputs gives the
// same image, named with the new build's tags, without a working
// container; --no-cache, or the image gone from the store, build again.
func TestCachedRebuildSkipsBuildah(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")
	ctx := fixture.Context(t, map[string]string{
		"Kubefile": "FROM test/base:v1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy.txt\nAPP web web.yaml\n",
		"a.txt":    "a\n",
		"web.yaml": "kind: Namespace\n",
	})
	opts := Options{ContextDir: ctx, Tags: []string{"test/cached:v1"}}
	first := buildOnce(t, store, opts)
	if first.cached {
		t.Fatalf("the first build came from the cache")
	}
	before := containersFile(t, store)
	opts.Tags = []string{"test/cached:v1", "test/cached:v2"}
	second := buildOnce(t, store, opts)
	if !second.cached || second.id != first.id || strings.Contains(second.out, "COMMIT") {
		t.Fatalf("rebuild: cached %v, id %s vs %s\n%s", second.cached, second.id, first.id, second.out)
	}
	if !sameFile(before, containersFile(t, store)) {
		t.Errorf("a cached rebuild touched the store's working containers")
	}
	for _, tag := range opts.Tags {
		d, err := store.Inspect(context.Background(), tag)
		if err != nil || d.ID != first.id {
			t.Errorf("%s: %v %+v", tag, err, d)
		}
	}
	// Quiet: the ID only, no line about the cache.
	opts.Quiet = true
	var out bytes.Buffer
	opts.Out = &out
	if res, err := Build(context.Background(), store, opts); err != nil || res.ID != first.id || out.Len() != 0 {
		t.Errorf("quiet rebuild: %v %v %q", res, err, out.String())
	}
	opts.Quiet, opts.Out = false, nil

	opts.NoCache = true
	fresh := buildOnce(t, store, opts)
	if fresh.cached {
		t.Errorf("--no-cache reused the cached image")
	}
	if sameFile(before, containersFile(t, store)) {
		t.Errorf("buildah ran without a working container being recorded: the check above proves nothing")
	}
	opts.NoCache = false
	// The next build reuses the newest image, the one --no-cache made
	// (buildah's timestamps make it another), not the older one.
	if b := buildOnce(t, store, opts); !b.cached || b.id != fresh.id {
		t.Errorf("after --no-cache: cached %v, %s, want %s", b.cached, b.id, fresh.id)
	}

	// The image removed, its entry finds nothing: the build runs.
	id := buildOnce(t, store, opts).id
	if _, err := store.Remove(context.Background(), []string{id}, false, true); err != nil {
		t.Fatal(err)
	}
	if b := buildOnce(t, store, opts); b.cached {
		t.Errorf("reused an image no longer in the store")
	}
	if b := buildOnce(t, store, opts); !b.cached {
		t.Errorf("the rebuild after a removal was not cached")
	}
}

// TestBuildCacheInvalidation changes each input of the build in turn: the
// build after each change runs buildah (and the one after that is cached
// again: the key is stable for the new inputs).
func TestBuildCacheInvalidation(t *testing.T) {
	store := fixture.Store(t)
	src := fixture.Registry(t, nil)
	fixture.PushRandom(t, src+"/test/one:v1", 1024, 1)
	fixture.PushRandom(t, src+"/test/two:v1", 1024, 1)
	// A base image of our own, so that the test can move its tag.
	baseCtx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY base.txt /base.txt\n", "base.txt": "base 1\n"})
	buildBase := func() {
		if _, err := Build(context.Background(), store, Options{ContextDir: baseCtx, Tags: []string{"test/base:v1"}, Type: metadata.TypeApp}); err != nil {
			t.Fatal(err)
		}
	}
	buildBase()
	ctx := fixture.Context(t, map[string]string{
		"Kubefile":                     "FROM test/base:v1\nARG GREETING=hello\nLABEL greeting=${GREETING}\nCOPY a.txt tool.sh /\nAPP web local://charts/web\n",
		"a.txt":                        "a\n",
		"tool.sh":                      "echo tool\n",
		"charts/web/Chart.yaml":        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":       "name: web\n",
		"charts/web/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n",
		"images.txt":                   src + "/test/one:v1\n",
		"prod.yaml":                    "name: prod\n",
		"notes/ignored.txt":            "ignored\n",
		".dockerignore":                "notes\n",
	})
	write := func(name, content string) func(*Options) {
		return func(*Options) {
			if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	opts := Options{ContextDir: ctx, Tags: []string{"test/inv:v1"}, TLSNoVerify: true}
	if b := buildOnce(t, store, opts); b.cached {
		t.Fatalf("the first build came from the cache")
	}
	if b := buildOnce(t, store, opts); !b.cached {
		t.Fatalf("an unchanged rebuild was not cached:\n%s", b.out)
	}
	for _, change := range []struct {
		name   string
		change func(*Options)
	}{
		{"Kubefile", write("Kubefile", "FROM test/base:v1\nARG GREETING=hello\nLABEL greeting=${GREETING}\nCOPY a.txt tool.sh /\nAPP web local://charts/web\nENV X=1\n")},
		{"context file content", write("a.txt", "b\n")},
		{"context file mode", func(*Options) {
			if err := os.Chmod(filepath.Join(ctx, "tool.sh"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"new context file", write("b.txt", "b\n")},
		{"ignore rules", write(".dockerignore", "notes\nb.txt\n")},
		{"app source", write("charts/web/values.yaml", "name: web2\n")},
		{"build arg", func(o *Options) { o.BuildArgs = map[string]string{"GREETING": "hi"} }},
		{"label", func(o *Options) { o.Labels = []string{"team=a"} }},
		{"annotation", func(o *Options) { o.Annotations = []string{"note=a"} }},
		{"type", func(o *Options) { o.Type = metadata.TypeApp }},
		{"kube version", func(o *Options) { o.KubeVersion = "1.30.2" }},
		{"api versions", func(o *Options) { o.APIVersions = []string{"monitoring.coreos.com/v1"} }},
		{"include tests", func(o *Options) { o.IncludeTests = true }},
		{"values file", func(o *Options) { o.ValueFiles = []string{"web=" + filepath.Join(ctx, "prod.yaml")} }},
		{"values file content", write("prod.yaml", "name: prod2\n")},
		{"set", func(o *Options) { o.Set = []string{"web:name=set"} }},
		{"image list", func(o *Options) { o.ImageLists = []string{filepath.Join(ctx, "images.txt")} }},
		{"image list content", write("images.txt", src+"/test/one:v1\n"+src+"/test/two:v1\n")},
		{"exclude image", func(o *Options) { o.ExcludeImages = []string{src + "/test/two:v1"} }},
		{"base image digest", func(*Options) {
			os.WriteFile(filepath.Join(baseCtx, "base.txt"), []byte("base 2\n"), 0o644)
			buildBase()
		}},
		{"format version", func(*Options) { t.Cleanup(SetCacheFormat("test-next")) }},
		{"hoist version", func(o *Options) { o.Version = "9.9.9" }},
	} {
		change.change(&opts)
		if b := buildOnce(t, store, opts); b.cached {
			t.Errorf("%s: changed, and the build came from the cache", change.name)
		}
		if b := buildOnce(t, store, opts); !b.cached {
			t.Errorf("%s: the rebuild after the change was not cached:\n%s", change.name, b.out)
		}
	}
	// A file the ignore file excludes is not part of the build.
	write("notes/ignored.txt", "changed\n")(&opts)
	if b := buildOnce(t, store, opts); !b.cached {
		t.Errorf("a change to an ignored file invalidated the cache")
	}
}

// TestBuildCachePlatform: the same Kubefile for another platform is
// another image.
func TestBuildCachePlatform(t *testing.T) {
	store := fixture.Store(t)
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "a\n"})
	opts := Options{ContextDir: ctx, Tags: []string{"test/pl:v1"}}
	host := buildOnce(t, store, opts)
	other := kubefile.Platform{OS: "linux", Arch: "arm64"}
	if kubefile.HostPlatform().Arch == "arm64" {
		other.Arch = "amd64"
	}
	opts.Platforms = []kubefile.Platform{other}
	if b := buildOnce(t, store, opts); b.cached || b.id == host.id {
		t.Errorf("--platform %s came from the cache (%s)", other, b.id)
	}
	if b := buildOnce(t, store, opts); !b.cached {
		t.Errorf("--platform %s: the rebuild was not cached", other)
	}
	// An index of both: cached as a whole, under its name.
	opts.Platforms = []kubefile.Platform{kubefile.HostPlatform(), other}
	index := buildOnce(t, store, opts)
	if index.cached {
		t.Errorf("the index came from the cache")
	}
	if b := buildOnce(t, store, opts); !b.cached || b.id != index.id {
		t.Errorf("the index rebuild: cached %v, %s vs %s", b.cached, b.id, index.id)
	}
	if d, err := store.Inspect(context.Background(), "test/pl:v1"); err != nil || d.ID != index.id || len(d.Platforms) != 2 {
		t.Errorf("test/pl:v1 = %+v, %v", d, err)
	}
}

// TestBuildCacheMovedTag: a bundled image's tag that moved upstream is
// fetched again with --pull always; by default the cached image keeps the
// digest it bundled, as documented.
func TestBuildCacheMovedTag(t *testing.T) {
	store := fixture.Store(t)
	src := fixture.Registry(t, nil)
	ref := src + "/test/moving:v1"
	fixture.PushRandom(t, ref, 1024, 1)
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nIMAGE " + ref + "\n"})
	opts := Options{ContextDir: ctx, Tags: []string{"test/moved:v1"}, TLSNoVerify: true}
	first := buildOnce(t, store, opts)
	digestOf := func(id string) string {
		d, err := store.Inspect(context.Background(), id)
		if err != nil || d.Metadata == nil || len(d.Metadata.Images) != 1 {
			t.Fatalf("inspect %s: %v %+v", id, err, d)
		}
		return d.Metadata.Images[0].Digest
	}
	old := digestOf(first.id)
	opts.Pull = PullAlways
	if b := buildOnce(t, store, opts); !b.cached {
		t.Errorf("--pull always, nothing moved: not cached")
	}
	fixture.PushRandom(t, ref, 1024, 1)
	opts.Pull = PullMissing
	if b := buildOnce(t, store, opts); !b.cached || digestOf(b.id) != old {
		t.Errorf("without --pull always, a moved tag should keep the cached image")
	}
	opts.Pull = PullAlways
	moved := buildOnce(t, store, opts)
	if moved.cached || digestOf(moved.id) == old {
		t.Errorf("--pull always: a moved tag kept the cached image (cached %v)", moved.cached)
	}
	if b := buildOnce(t, store, opts); !b.cached || b.id != moved.id {
		t.Errorf("--pull always after the move: the rebuild was not cached")
	}
}

// TestBuildCacheUncoverable: a Dockerfile reading an image by --from has
// no key: it always runs buildah. From a stage, it has one.
func TestBuildCacheUncoverable(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "test/base:v1")
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY --from=test/base:v1 /bin/busybox /busybox\n"})
	opts := Options{ContextDir: ctx, Tags: []string{"test/from:v1"}}
	buildOnce(t, store, opts)
	if b := buildOnce(t, store, opts); b.cached {
		t.Errorf("COPY --from=IMAGE came from the build cache")
	}
	stages := fixture.Context(t, map[string]string{"Kubefile": "FROM test/base:v1 AS builder\nRUN echo built > /artifact\nFROM scratch\nCOPY --from=builder /artifact /artifact\n"})
	opts.ContextDir = stages
	buildOnce(t, store, opts)
	if b := buildOnce(t, store, opts); !b.cached {
		t.Errorf("COPY --from=STAGE: the rebuild was not cached")
	}
}

// TestBuildCacheContextLink: a context directory named through a link is
// hashed through it: a change behind the link invalidates.
func TestBuildCacheContextLink(t *testing.T) {
	store := fixture.Store(t)
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "a\n"})
	link := filepath.Join(t.TempDir(), "ctx")
	if err := os.Symlink(ctx, link); err != nil {
		t.Fatal(err)
	}
	opts := Options{ContextDir: link, File: filepath.Join(ctx, "Kubefile"), Tags: []string{"test/link:v1"}}
	buildOnce(t, store, opts)
	os.WriteFile(filepath.Join(ctx, "a.txt"), []byte("b\n"), 0o644)
	if b := buildOnce(t, store, opts); b.cached {
		t.Errorf("a change behind the context's link came from the cache")
	}
}

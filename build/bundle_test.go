package build_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/registry"
	"github.com/hoistdev/hoist/test/fixture"
)

// chartNeeding is a chart whose deployment needs the two images, one of
// them only as an initContainer, with repository and tag as separate values.
func chartNeeding(main, initRepo, initTag string) map[string]string {
	return map[string]string{
		"charts/web/Chart.yaml":  "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml": fmt.Sprintf("image: %s\ninit:\n  repository: %s\n  tag: %q\n", main, initRepo, initTag),
		"charts/web/templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
        - name: init
          image: "{{ .Values.init.repository }}:{{ .Values.init.tag }}"
      containers:
        - name: web
          image: {{ .Values.image }}
`,
	}
}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestBundleImagesFromTwoRegistries(t *testing.T) {
	store := fixture.Store(t)
	a := fixture.Registry(t, nil)
	b := fixture.Registry(t, nil)
	// The same repository path in two registries, with different content.
	imgA := fixture.PushRandom(t, a+"/library/app:v1", 2048, 2)
	imgB := fixture.PushRandom(t, b+"/library/app:v1", 2048, 2)
	idx := fixture.PushRandomIndex(t, b+"/tools/multi:v3", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})

	files := chartNeeding(a+"/library/app:v1", b+"/library/app", "v1")
	files["Kubefile"] = "FROM scratch\nAPP web charts/web\nIMAGE " + b + "/tools/multi:v3\nLAUNCH web\n"
	ctx := fixture.Context(t, files)
	res, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/bundle:v1"}, TLSNoVerify: true})
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]string{
		a + "/library/app:v1": digestOf(t, imgA),
		b + "/library/app:v1": digestOf(t, imgB),
		b + "/tools/multi:v3": digestOf(t, idx),
	}
	d, err := store.Inspect(context.Background(), "test/bundle:v1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, img := range d.Metadata.Images {
		got[img.Ref] = img.Digest
		if img.FoundIn == "" || img.Platform == "" {
			t.Errorf("record without place or platform: %+v", img)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metadata images:\n got %v\nwant %v", got, want)
	}
	if res.ID != d.ID {
		t.Errorf("result id %s, inspect %s", res.ID, d.ID)
	}
	// A rebuild that changes nothing gives the same image, registry layer
	// included.
	before, _ := store.Storage.Layers()
	again, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/bundle:v1"}, TLSNoVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := store.Storage.Layers()
	if again.ID != res.ID || len(after) != len(before) {
		t.Errorf("rebuild: id %s (was %s), %d layers (was %d)", again.ID, res.ID, len(after), len(before))
	}

	// Serve the image's registry/ folder and pull every image by its
	// original name, in both request forms.
	root := fixture.Root(t)
	fixture.ExtractImage(t, fixture.SavedImage(t, store, "test/bundle:v1"), root)
	// Readable by all, as a registry's own storage: 0644 files, 0755
	// folders (the blob cache once wrote them 0600).
	filepath.WalkDir(root+"/registry", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = fs.ModeDir | 0o755
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
		}
		return nil
	})
	srv, err := registry.Start(context.Background(), root+"/registry", "127.0.0.1:0", "", "", registry.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	for ref, digest := range want {
		host, rest, _ := strings.Cut(ref, "/")
		repo, tag, _ := strings.Cut(rest, ":")
		for _, path := range []string{
			"/v2/" + registry.EncodeHost(host) + "/" + repo + "/manifests/" + tag,
			"/v2/" + repo + "/manifests/" + tag + "?ns=" + host,
		} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr+path, nil)
			req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != digest {
				t.Errorf("%s: %d %s, want %s", path, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), digest)
			}
		}
	}
	// And the whole image, layers included, through the host path form.
	r, _ := name.ParseReference(srv.Addr+"/"+registry.EncodeHost(a)+"/library/app:v1", name.Insecure)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := pulled.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
}

func TestBundleFailsOnMissingImage(t *testing.T) {
	store := fixture.Store(t)
	a := fixture.Registry(t, nil)
	fixture.PushRandom(t, a+"/library/app:v1", 512, 1)
	files := chartNeeding(a+"/library/app:v1", a+"/library/gone", "v2")
	files["Kubefile"] = "FROM scratch\nAPP web charts/web\n"
	ctx := fixture.Context(t, files)
	_, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/x:v1"}, TLSNoVerify: true})
	if err == nil || !strings.Contains(err.Error(), a+"/library/gone:v2 (needed by apps/web/templates/deploy.yaml") || strings.Contains(err.Error(), "library/app:v1 (needed") {
		t.Fatalf("err = %v", err)
	}
	if _, err := store.Inspect(context.Background(), "test/x:v1"); err == nil {
		t.Errorf("a failed build was tagged")
	}
	// --allow-missing builds, and records the image without a digest.
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/x:v1"}, TLSNoVerify: true, AllowMissing: true}); err != nil {
		t.Fatal(err)
	}
	d, _ := store.Inspect(context.Background(), "test/x:v1")
	for _, img := range d.Metadata.Images {
		if strings.Contains(img.Ref, "gone") != (img.Digest == "") {
			t.Errorf("record %+v", img)
		}
	}
}

func TestBundleInterruptedThenResumed(t *testing.T) {
	store := fixture.Store(t)
	var slow atomic.Bool
	slow.Store(true)
	stalled := make(chan struct{})
	var once sync.Once
	var blobGets sync.Map // digest -> count
	src := fixture.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
				n, _ := blobGets.LoadOrStore(d, new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
				if slow.Load() && strings.Contains(r.URL.Path, "/library/slow/") {
					once.Do(func() { close(stalled) })
					select {
					case <-r.Context().Done():
					case <-time.After(30 * time.Second):
					}
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	fast := fixture.PushRandom(t, src+"/library/fast:v1", 4096, 3)
	fixture.PushRandom(t, src+"/library/slow:v1", 4096, 1)
	files := chartNeeding(src+"/library/fast:v1", src+"/library/slow", "v1")
	files["Kubefile"] = "FROM scratch\nAPP web charts/web\n"
	ctx := fixture.Context(t, files)

	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Build(c, store, Options{ContextDir: ctx, Tags: []string{"test/r:v1"}, TLSNoVerify: true, Jobs: 1})
		done <- err
	}()
	select {
	case <-stalled:
	case <-time.After(60 * time.Second):
		t.Fatal("the build never reached the slow image")
	}
	// With one job, the fast image was fetched first; let its copy finish.
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted build: %v", err)
	}
	fixture.AssertClean(t, store)

	slow.Store(false)
	before := map[string]int32{}
	layers, _ := fast.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if n, ok := blobGets.Load(d.String()); ok {
			before[d.String()] = n.(*atomic.Int32).Load()
		}
	}
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/r:v1"}, TLSNoVerify: true}); err != nil {
		t.Fatalf("build after the interruption: %v", err)
	}
	for d, n := range before {
		if now, _ := blobGets.Load(d); now.(*atomic.Int32).Load() != n {
			t.Errorf("layer %s of the image fetched before the interruption was fetched again", d)
		}
	}
	if len(before) == 0 {
		t.Errorf("the fast image's layers were not fetched before the interruption")
	}
}

func TestBundleKeepsIndexForBuildPlatforms(t *testing.T) {
	store := fixture.Store(t)
	src := fixture.Registry(t, nil)
	idx := fixture.PushRandomIndex(t, src+"/tools/multi:v3",
		v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}, v1.Platform{OS: "linux", Architecture: "s390x"})
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nIMAGE " + src + "/tools/multi:v3\n"})
	platforms := []kubefile.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/m:v1"}, TLSNoVerify: true, Platforms: platforms}); err != nil {
		t.Fatal(err)
	}
	d, err := store.Inspect(context.Background(), "test/m:v1")
	if err != nil {
		t.Fatal(err)
	}
	rec := d.Metadata.Images[0]
	if rec.Digest != digestOf(t, idx) || rec.Platform != "linux/amd64,linux/arm64" {
		t.Errorf("record %+v, want the index digest %s", rec, digestOf(t, idx))
	}
}

// TestBundleOnVFS covers the store driver without staged layers: the
// registry layer is then written through PutLayer.
func TestBundleOnVFS(t *testing.T) {
	fixture.Store(t) // skips when not root
	store, err := clusterimage.Open(fixture.Root(t), clusterimage.OpenOptions{Driver: clusterimage.DriverVFS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	src := fixture.Registry(t, nil)
	img := fixture.PushRandom(t, src+"/library/app:v1", 4096, 2)
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nIMAGE " + src + "/library/app:v1\n"})
	if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/vfs:v1"}, TLSNoVerify: true}); err != nil {
		t.Fatal(err)
	}
	root := fixture.Root(t)
	fixture.ExtractImage(t, fixture.SavedImage(t, store, "test/vfs:v1"), root)
	srv, err := registry.Start(context.Background(), root+"/registry", "127.0.0.1:0", "", "", registry.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	r, _ := name.ParseReference(srv.Addr+"/"+registry.EncodeHost(src)+"/library/app:v1", name.Insecure)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, pulled) != digestOf(t, img) {
		t.Errorf("digest %s, want %s", digestOf(t, pulled), digestOf(t, img))
	}
}

// TestBundleAllMissing: with --allow-missing, a build whose bundled images
// are all missing builds too, recording them without a digest, on either
// driver (overlay stages the registry layer, vfs writes it as a tar).
func TestBundleAllMissing(t *testing.T) {
	fixture.Store(t) // skips when not root
	src := fixture.Registry(t, nil)
	ctx := fixture.Context(t, map[string]string{"Kubefile": "FROM scratch\nIMAGE " + src + "/library/gone:v1 " + src + "/library/lost:v2\n"})
	for _, driver := range []string{clusterimage.DriverOverlay, clusterimage.DriverVFS} {
		t.Run(driver, func(t *testing.T) {
			store, err := clusterimage.Open(fixture.Root(t), clusterimage.OpenOptions{Driver: driver})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			var warnings strings.Builder
			if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"test/none:v1"}, TLSNoVerify: true, AllowMissing: true, Err: &warnings}); err != nil {
				t.Fatal(err)
			}
			d, err := store.Inspect(context.Background(), "test/none:v1")
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Metadata.Images) != 2 {
				t.Fatalf("records %+v", d.Metadata.Images)
			}
			for _, img := range d.Metadata.Images {
				if img.Digest != "" || !strings.Contains(warnings.String(), img.Ref) {
					t.Errorf("record %+v; warnings:\n%s", img, warnings.String())
				}
			}
		})
	}
}

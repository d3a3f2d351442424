package clusterimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/archive/archivetest"
	"github.com/hoistdev/hoist/test/fixture"
)

var plainHTTP = clusterimage.CopyOptions{TLSVerify: false}

// buildImage builds a small hoist image with an app.
func buildImage(t *testing.T, store *clusterimage.Store, tag string, platforms ...kubefile.Platform) {
	t.Helper()
	ctx := fixture.Context(t, map[string]string{
		"Kubefile":       "FROM scratch\nCOPY bin/${ARCH}/tool /bin/tool\nAPP web web.yaml\nLAUNCH web\n",
		"bin/amd64/tool": "amd64\n", "bin/arm64/tool": "arm64\n",
		"web.yaml": "kind: Namespace\n",
	})
	if _, err := build.Build(context.Background(), store, build.Options{ContextDir: ctx, Tags: []string{tag}, Platforms: platforms}); err != nil {
		t.Fatal(err)
	}
}

func digestOf(t *testing.T, store *clusterimage.Store, name string) string {
	t.Helper()
	d, err := store.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// registryServer is a real OCI registry on loopback; wrap lets a test deny
// or require credentials.
func registryServer(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestTagAndRemove(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/a:v1")
	ctx := context.Background()
	if err := store.Tag("test/a:v1", "test/a:v2"); err != nil {
		t.Fatal(err)
	}
	if err := store.Tag("test/a:v1", "Not A Name"); err == nil || !strings.Contains(err.Error(), "not a valid image name") {
		t.Errorf("bad name: %v", err)
	}
	reports, err := store.Remove(ctx, []string{"test/a:v1"}, false, false)
	if err != nil || len(reports) != 1 || reports[0].Removed || !reflect.DeepEqual(reports[0].Untagged, []string{"localhost/test/a:v1"}) {
		t.Fatalf("rmi of one of two names: %+v %v", reports, err)
	}
	d, err := store.Inspect(ctx, "test/a:v2")
	if err != nil || !reflect.DeepEqual(d.Names, []string{"localhost/test/a:v2"}) {
		t.Fatalf("after rmi: %+v %v", d, err)
	}
	reports, err = store.Remove(ctx, []string{"test/a:v2"}, false, false)
	if err != nil || !reports[0].Removed {
		t.Fatalf("rmi of the last name: %+v %v", reports, err)
	}
	if _, err := store.Inspect(ctx, "test/a:v2"); err == nil || !strings.Contains(err.Error(), "image not known") {
		t.Errorf("inspect after rmi: %v", err)
	}
	if _, err := store.Remove(ctx, []string{"test/nope:v1"}, false, false); err == nil {
		t.Errorf("rmi of an unknown image succeeded")
	}
	buildImage(t, store, "test/b:v1")
	buildImage(t, store, "test/c:v1")
	if _, err := store.Remove(ctx, nil, true, false); err != nil {
		t.Fatal(err)
	}
	if list, err := store.List(ctx, true); err != nil || len(list) != 0 {
		t.Errorf("after rmi --all: %+v %v", list, err)
	}
}

func TestSaveLoadKeepsDigest(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/app:v1")
	ctx := context.Background()
	want := digestOf(t, store, "test/app:v1")
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := store.Save(ctx, "test/app:v1", "", archive, clusterimage.CopyOptions{TLSVerify: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Remove(ctx, []string{"test/app:v1"}, false, false); err != nil {
		t.Fatal(err)
	}
	names, err := store.Load(ctx, archive, clusterimage.CopyOptions{})
	if err != nil || !reflect.DeepEqual(names, []string{"localhost/test/app:v1"}) {
		t.Fatalf("load: %v %v", names, err)
	}
	if got := digestOf(t, store, "test/app:v1"); got != want {
		t.Errorf("digest after save and load %s, want %s", got, want)
	}
	d, _ := store.Inspect(ctx, "test/app:v1")
	if d.Metadata == nil || d.Metadata.App("web") == nil {
		t.Errorf("metadata lost: %+v", d.Metadata)
	}

	// docker-archive round trip (the metadata survives as a label).
	darchive := filepath.Join(t.TempDir(), "app-docker.tar")
	if err := store.Save(ctx, "test/app:v1", clusterimage.FormatDockerArchive, darchive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	store.Remove(ctx, []string{"test/app:v1"}, false, false)
	if _, err := store.Load(ctx, darchive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if d, err := store.Inspect(ctx, "test/app:v1"); err != nil || d.Metadata == nil || d.Metadata.App("web") == nil {
		t.Errorf("docker-archive: %+v %v", d, err)
	}
}

func TestLoadDockerSaveTar(t *testing.T) {
	store := fixture.Store(t)
	// A tar as `docker save` writes it, made by go-containerregistry.
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag("docker.io/acme/random:v1")
	archive := filepath.Join(t.TempDir(), "docker-save.tar")
	f, _ := os.Create(archive)
	if err := tarball.Write(ref, img, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	names, err := store.Load(context.Background(), archive, clusterimage.CopyOptions{})
	if err != nil || !reflect.DeepEqual(names, []string{"docker.io/acme/random:v1"}) {
		t.Fatalf("load: %v %v", names, err)
	}
	d, err := store.Inspect(context.Background(), "acme/random:v1")
	if err != nil || d.Metadata != nil {
		t.Errorf("inspect: %+v %v", d, err)
	}
}

func TestLoadBadArchives(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/app:v1")
	ctx := context.Background()
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := store.Save(ctx, "test/app:v1", "", archive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(archive)
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.tar")
	os.WriteFile(truncated, data[:len(data)/2+100], 0o644)
	corrupted := filepath.Join(dir, "corrupted.tar")
	bad := append([]byte{}, data...)
	for i := 600; i < 1100 && i < len(bad); i++ { // inside the first entry
		bad[i] ^= 0xff
	}
	os.WriteFile(corrupted, bad, 0o644)
	notTar := filepath.Join(dir, "notes.txt")
	os.WriteFile(notTar, []byte(strings.Repeat("not an archive\n", 100)), 0o644)
	before, _ := store.List(ctx, true)
	for file, want := range map[string]string{
		truncated:                         "truncated or corrupted",
		corrupted:                         "loading " + corrupted,
		notTar:                            "loading " + notTar,
		filepath.Join(dir, "missing.tar"): "no such file",
	} {
		_, err := store.Load(ctx, file, clusterimage.CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", filepath.Base(file), err)
		}
	}
	after, _ := store.List(ctx, true)
	if len(after) != len(before) {
		t.Errorf("a failed load changed the store: %d images, had %d", len(after), len(before))
	}
	fixture.AssertClean(t, store)
}

func TestPushPullKeepsDigest(t *testing.T) {
	store := fixture.Store(t)
	host := registryServer(t, nil)
	buildImage(t, store, "test/app:v1")
	ctx := context.Background()
	dest := host + "/acme/app:v1"
	if err := store.Push(ctx, "test/app:v1", dest, plainHTTP); err != nil {
		t.Fatal(err)
	}
	// What the registry holds is the digest a pull gives back.
	if err := store.Tag("test/app:v1", dest); err != nil {
		t.Fatal(err)
	}
	store.Remove(ctx, nil, true, true)
	if _, err := store.Pull(ctx, dest, "", plainHTTP); err != nil {
		t.Fatal(err)
	}
	pulled := digestOf(t, store, dest)
	if err := store.Push(ctx, dest, "", plainHTTP); err != nil {
		t.Fatal(err)
	}
	store.Remove(ctx, nil, true, true)
	if _, err := store.Pull(ctx, dest, "", plainHTTP); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, store, dest); got != pulled {
		t.Errorf("digest after push and pull %s, want %s", got, pulled)
	}
	if d, _ := store.Inspect(ctx, dest); d.Metadata == nil || d.Metadata.App("web") == nil {
		t.Errorf("metadata lost through the registry")
	}
}

func TestIndexPushPullWhole(t *testing.T) {
	store := fixture.Store(t)
	host := registryServer(t, nil)
	buildImage(t, store, "test/multi:v1", kubefile.Platform{OS: "linux", Arch: "amd64"}, kubefile.Platform{OS: "linux", Arch: "arm64"})
	ctx := context.Background()

	// A built index saves whole and loads back with its digest.
	built := digestOf(t, store, "test/multi:v1")
	archive := filepath.Join(t.TempDir(), "multi.tar")
	if err := store.Save(ctx, "test/multi:v1", "", archive, plainHTTP); err != nil {
		t.Fatal(err)
	}
	store.Remove(ctx, nil, true, true)
	if _, err := store.Load(ctx, archive, plainHTTP); err != nil {
		t.Fatal(err)
	}
	if d, err := store.Inspect(ctx, "test/multi:v1"); err != nil || d.Digest != built || len(d.Platforms) != 2 {
		t.Fatalf("loaded index: %+v %v (want digest %s)", d, err, built)
	}

	// Pushed and pulled whole, it keeps the digest the registry gave it.
	dest := host + "/acme/multi:v1"
	if err := store.Push(ctx, "test/multi:v1", dest, plainHTTP); err != nil {
		t.Fatal(err)
	}
	store.Remove(ctx, nil, true, true)
	if _, err := store.Pull(ctx, dest, "", plainHTTP); err != nil {
		t.Fatal(err)
	}
	d, err := store.Inspect(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Platforms, []string{"linux/amd64", "linux/arm64"}) || len(d.Manifests) != 2 || d.Metadata == nil {
		t.Errorf("pulled index: %+v", d)
	}
	pulled := d.Digest
	if err := store.Push(ctx, dest, "", plainHTTP); err != nil {
		t.Fatal(err)
	}
	store.Remove(ctx, nil, true, true)
	if _, err := store.Pull(ctx, dest, "", plainHTTP); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, store, dest); got != pulled {
		t.Errorf("index digest after push and pull %s, want %s", got, pulled)
	}

	// One platform only, on request.
	store.Remove(ctx, nil, true, true)
	if _, err := store.Pull(ctx, dest, "linux/arm64", plainHTTP); err != nil {
		t.Fatal(err)
	}
	if d, err := store.Inspect(ctx, dest); err != nil || !reflect.DeepEqual(d.Platforms, []string{"linux/arm64"}) {
		t.Errorf("pull --platform: %+v %v", d, err)
	}
}

func TestRegistryErrors(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/app:v1")
	ctx := context.Background()
	deny := registryServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, `{"errors":[{"code":"DENIED","message":"push denied"}]}`, http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"unreachable push", func() error { return store.Push(ctx, "test/app:v1", "127.0.0.1:1/acme/app:v1", plainHTTP) }, "127.0.0.1:1"},
		{"unreachable pull", func() error { _, err := store.Pull(ctx, "127.0.0.1:1/acme/app:v1", "", plainHTTP); return err }, "127.0.0.1:1"},
		{"denied push", func() error { return store.Push(ctx, "test/app:v1", deny+"/acme/app:v1", plainHTTP) }, "denied"},
		{"missing image", func() error { _, err := store.Pull(ctx, deny+"/acme/none:v1", "", plainHTTP); return err }, "pulling " + deny + "/acme/none:v1"},
		{"invalid push name", func() error { return store.Push(ctx, "test/app:v1", "acme/App:v1", plainHTTP) }, "not a valid image name"},
		{"invalid pull name", func() error { _, err := store.Pull(ctx, "a:b:c", "", plainHTTP); return err }, "not a valid image name"},
		{"unknown image", func() error { return store.Push(ctx, "test/none:v1", deny+"/x:v1", plainHTTP) }, "test/none:v1: image not known"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	fixture.AssertClean(t, store)
}

func TestStorageDriverRemembered(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: containers/storage (CI runs as root)")
	}
	root := fixture.Root(t)
	s, err := clusterimage.Open(root, clusterimage.OpenOptions{Driver: clusterimage.DriverVFS})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = clusterimage.Open(root, clusterimage.OpenOptions{})
	if err != nil || s.Driver != clusterimage.DriverVFS {
		t.Fatalf("reopened with %v, %v", s, err)
	}
	s.Close()
	if _, err := clusterimage.Open(root, clusterimage.OpenOptions{Driver: clusterimage.DriverOverlay}); err == nil || !strings.Contains(err.Error(), "uses the vfs storage driver") {
		t.Errorf("switching drivers: %v", err)
	}
	if _, err := clusterimage.Open(t.TempDir(), clusterimage.OpenOptions{Driver: "btrfs"}); err == nil {
		t.Errorf("unknown driver accepted")
	}
	for _, f := range []string{"config/policy.json", "config/registries.conf"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestSkopeoReadsSavedImage checks the saved archive with another tool of
// the field (skopeo, installed by make deps).
func TestSkopeoReadsSavedImage(t *testing.T) {
	store := fixture.Store(t)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is not installed (make deps installs it)")
	}
	buildImage(t, store, "test/app:v1")
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := store.Save(context.Background(), "test/app:v1", "", archive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(skopeo, "inspect", "oci-archive:"+archive).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var info struct {
		Digest string
		Labels map[string]string
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Labels["io.hoist.image.type"] != "cluster" || info.Digest != digestOf(t, store, "test/app:v1") {
		t.Errorf("skopeo sees %+v", info)
	}
}

// TestLoadWritesOnlyInsideTheStore: an entry below a symlink that leads out
// of the archive is refused before anything unpacks it, whatever else the
// archive holds, and the same archives without it still load.
func TestLoadWritesOnlyInsideTheStore(t *testing.T) {
	store := fixture.Store(t)
	ctx := context.Background()
	images := map[string][]archivetest.Entry{
		"oci-archive": archivetest.OCIArchive(t, "test/esc:v1"),
		"index":       archivetest.IndexArchive(t, "test/esc-index:v1", nil),
		"docker save": archivetest.DockerSave(t, "docker.io/acme/esc:v1"),
	}
	for name, good := range images {
		for _, where := range []string{"alone", "before", "after"} {
			t.Run(name+" "+where, func(t *testing.T) {
				outside := t.TempDir()
				escape := []archivetest.Entry{
					{Name: "esc", Type: tar.TypeSymlink, Link: outside},
					{Name: "esc/file", Body: "written outside the store\n"},
				}
				entries := escape
				switch where {
				case "before":
					entries = append(append([]archivetest.Entry{}, escape...), good...)
				case "after":
					entries = append(append([]archivetest.Entry{}, good...), escape...)
				}
				_, err := store.Load(ctx, archivetest.WriteTar(t, entries...), clusterimage.CopyOptions{})
				if err == nil || !strings.Contains(err.Error(), `"esc"`) || strings.Contains(err.Error(), "\n") {
					t.Errorf("err = %v, want one line naming the entry \"esc\"", err)
				}
				if files, _ := os.ReadDir(outside); len(files) != 0 {
					t.Fatalf("load wrote %s outside the store", filepath.Join(outside, files[0].Name()))
				}
			})
		}
	}
	if list, _ := store.List(ctx, true); len(list) != 0 {
		t.Errorf("refused archives stored %d images", len(list))
	}
	for name, good := range images {
		if names, err := store.Load(ctx, archivetest.WriteTar(t, good...), clusterimage.CopyOptions{}); err != nil || len(names) != 1 {
			t.Errorf("%s without the escape: %v %v", name, names, err)
		}
	}
	fixture.AssertClean(t, store)
}

// TestLoadArchiveWithoutImage: an archive that holds no image is an error
// that says so, not a load of nothing.
func TestLoadArchiveWithoutImage(t *testing.T) {
	store := fixture.Store(t)
	for name, tc := range map[string]struct {
		entries []archivetest.Entry
		want    string
	}{
		"no layout":                {[]archivetest.Entry{{Name: "notes.txt", Body: "hello\n"}}, "holds no image"},
		"empty manifest.json":      {[]archivetest.Entry{{Name: "manifest.json", Body: "[]"}}, "manifest.json lists no image"},
		"index.json without image": {[]archivetest.Entry{archivetest.OCILayout, archivetest.IndexJSON(t)}, "index.json lists no image"},
	} {
		t.Run(name, func(t *testing.T) {
			names, err := store.Load(context.Background(), archivetest.WriteTar(t, tc.entries...), clusterimage.CopyOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("names %v, err = %v, want %q", names, err, tc.want)
			}
		})
	}
}

// TestLoadCraftedIndexArchives: what hoist reads itself of an index
// archive is checked before use: no panic, an error naming the culprit.
func TestLoadCraftedIndexArchives(t *testing.T) {
	store := fixture.Store(t)
	instance := func(d digest.Digest) func([]imgspecv1.Descriptor) []imgspecv1.Descriptor {
		return func(descs []imgspecv1.Descriptor) []imgspecv1.Descriptor {
			descs[0].Digest = d
			return descs
		}
	}
	missing := digest.FromString("not in the archive")
	twoIndexes := append(archivetest.IndexArchive(t, "test/a:v1", nil), archivetest.IndexJSON(t))
	for name, tc := range map[string]struct {
		entries []archivetest.Entry
		want    string
	}{
		"short instance digest":     {archivetest.IndexArchive(t, "test/x:v1", instance("sha256:abc")), `"sha256:abc"`},
		"instance digest without :": {archivetest.IndexArchive(t, "test/x:v1", instance("sha256abc")), `"sha256abc"`},
		"instance digest leaving":   {archivetest.IndexArchive(t, "test/x:v1", instance("sha256:../../../etc/passwd")), `sha256:../../../etc/passwd`},
		"missing instance":          {archivetest.IndexArchive(t, "test/x:v1", instance(missing)), missing.String() + " is not in the archive"},
		"no instance":               {archivetest.IndexArchive(t, "test/x:v1", func([]imgspecv1.Descriptor) []imgspecv1.Descriptor { return nil }), "lists no image"},
		"two index.json":            {twoIndexes, `"index.json"`},
		"index.json short digest":   {[]archivetest.Entry{archivetest.OCILayout, archivetest.IndexJSON(t, imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageIndex, Digest: "sha256:abc", Size: 2})}, `"sha256:abc"`},
		"index.json missing blob":   {[]archivetest.Entry{archivetest.OCILayout, archivetest.IndexJSON(t, imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageIndex, Digest: missing, Size: 2})}, missing.String() + " is not in the archive"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := store.Load(context.Background(), archivetest.WriteTar(t, tc.entries...), clusterimage.CopyOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
	if list, _ := store.List(context.Background(), true); len(list) != 0 {
		t.Errorf("refused archives stored %d images", len(list))
	}
}

// TestLoadLayoutDirectory: an OCI layout directory is checked as an archive
// is: its blobs are files of the layout, not links to elsewhere.
func TestLoadLayoutDirectory(t *testing.T) {
	store := fixture.Store(t)
	ctx := context.Background()
	layout := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		if err := clusterimage.Untar(archivetest.WriteTar(t, archivetest.OCIArchive(t, "test/dir:v1")...), dir); err != nil {
			t.Fatal(err)
		}
		var idx imgspecv1.Index
		data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
		json.Unmarshal(data, &idx)
		return dir, filepath.Join("blobs", "sha256", idx.Manifests[0].Digest.Encoded())
	}
	t.Run("good", func(t *testing.T) {
		dir, _ := layout(t)
		if names, err := store.Load(ctx, dir, clusterimage.CopyOptions{}); err != nil || len(names) != 1 {
			t.Errorf("load: %v %v", names, err)
		}
	})
	t.Run("blob linked elsewhere", func(t *testing.T) {
		dir, manifest := layout(t)
		elsewhere := filepath.Join(t.TempDir(), "manifest")
		os.Rename(filepath.Join(dir, manifest), elsewhere)
		os.Symlink(elsewhere, filepath.Join(dir, manifest))
		if _, err := store.Load(ctx, dir, clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), manifest) {
			t.Errorf("err = %v, want it to name %s", err, manifest)
		}
	})
	t.Run("blob linked to /dev/zero", func(t *testing.T) {
		dir, manifest := layout(t)
		os.Remove(filepath.Join(dir, manifest))
		os.Symlink("/dev/zero", filepath.Join(dir, manifest))
		if _, err := store.Load(ctx, dir, clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), manifest) {
			t.Errorf("err = %v, want it to name %s", err, manifest)
		}
	})
	t.Run("blob a fifo", func(t *testing.T) {
		dir, manifest := layout(t)
		os.Remove(filepath.Join(dir, manifest))
		if err := syscall.Mkfifo(filepath.Join(dir, manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Load(ctx, dir, clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), manifest) {
			t.Errorf("err = %v, want it to name %s", err, manifest)
		}
	})
	t.Run("index.json linked to /dev/zero", func(t *testing.T) {
		dir, _ := layout(t)
		os.Remove(filepath.Join(dir, "index.json"))
		os.Symlink("/dev/zero", filepath.Join(dir, "index.json"))
		if _, err := store.Load(ctx, dir, clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), "index.json") {
			t.Errorf("err = %v, want it to name index.json", err)
		}
	})
	t.Run("huge index.json", func(t *testing.T) {
		dir, _ := layout(t)
		data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
		// Valid JSON, padded past the limit.
		padded := append(data[:len(data)-1:len(data)-1], []byte(`,"x":"`+strings.Repeat("x", 5<<20)+`"}`)...)
		os.WriteFile(filepath.Join(dir, "index.json"), padded, 0o644)
		if _, err := store.Load(ctx, dir, clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("err = %v, want a size limit", err)
		}
	})
}

// TestLoadSweepsScratchDirs: an index archive is unpacked in a load-*
// directory of the store's tmp, removed after a failure too, and those of
// killed runs go on the next load.
func TestLoadSweepsScratchDirs(t *testing.T) {
	store := fixture.Store(t)
	ctx := context.Background()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(store.TmpDir(), fmt.Sprintf("load-%d-killed", cmd.Process.Pid))
	if err := os.MkdirAll(filepath.Join(stale, "blobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	// An index whose second image's layer does not match its digest: the
	// archive was unpacked, and the first image copied, before the failure.
	broken := archivetest.IndexArchive(t, "test/broken:v1", nil)
	layer := []byte(broken[5].Body) // oci-layout, then amd64's config, layer, manifest, then arm64's
	layer[len(layer)-1024] ^= 0xff
	broken[5].Body = string(layer)
	if _, err := store.Load(ctx, archivetest.WriteTar(t, broken...), clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), "arm64") {
		t.Errorf("corrupted layer: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed run's %s is still there: %v", filepath.Base(stale), err)
	}
	if left, _ := filepath.Glob(filepath.Join(store.TmpDir(), "load-*")); len(left) != 0 {
		t.Errorf("a failed load left %v", left)
	}
	if _, err := store.Load(ctx, archivetest.WriteTar(t, archivetest.IndexArchive(t, "test/idx:v1", nil)...), clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(store.TmpDir(), "load-*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// createdIn runs fn and returns the names it created in dir (an inotify
// watch sees those removed again too).
func createdIn(t *testing.T, dir string, fn func()) []string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	fn()
	var names []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 {
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("reading inotify: %v", err)
			}
			return names
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			// struct inotify_event: wd, mask, cookie, len, then the name.
			length := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+length]
			names = append(names, string(bytes.TrimRight(name, "\x00")))
			off += unix.SizeofInotifyEvent + length
		}
	}
}

// TestLoadReadsArchivesInPlace: an oci-archive of one image, whole or
// split, is loaded without being unpacked under the store's tmp/ first
// (containers/image's oci-archive transport unpacked it into
// "container_images_oci...", the split load into "load-..."): only the
// store's own staging of blobs is there. An index is still unpacked (the
// control that the watch sees it). TestSaveDeltaLayer loads differential
// archives the same way.
func TestLoadReadsArchivesInPlace(t *testing.T) {
	store := fixture.Store(t)
	ctx := context.Background()
	buildImage(t, store, "test/inplace:v1")
	dir := t.TempDir()
	whole, split := filepath.Join(dir, "whole.tar"), filepath.Join(dir, "split.tar")
	if err := store.SaveArchive(ctx, "test/inplace:v1", whole, clusterimage.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveArchive(ctx, "test/inplace:v1", split, clusterimage.SaveOptions{SplitSize: 4096}); err != nil {
		t.Fatal(err)
	}
	id := func(s *clusterimage.Store) string {
		t.Helper()
		img, err := s.Inspect(ctx, "test/inplace:v1")
		if err != nil {
			t.Fatal(err)
		}
		return img.ID
	}
	want := id(store)
	unpacked := func(names []string) []string {
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, "container_images_oci") || strings.HasPrefix(n, "load-") {
				out = append(out, n)
			}
		}
		return out
	}
	for _, path := range []string{whole, split + ".json"} {
		target := fixture.Store(t)
		var names []string
		created := createdIn(t, target.TmpDir(), func() {
			var err error
			if names, err = target.Load(ctx, path, clusterimage.CopyOptions{}); err != nil {
				t.Fatal(err)
			}
		})
		if got := unpacked(created); len(got) != 0 {
			t.Errorf("%s: unpacked into %v", filepath.Base(path), got)
		}
		if !reflect.DeepEqual(names, []string{"localhost/test/inplace:v1"}) || id(target) != want {
			t.Errorf("%s: loaded %v", filepath.Base(path), names)
		}
	}
	target := fixture.Store(t)
	created := createdIn(t, target.TmpDir(), func() {
		if _, err := target.Load(ctx, archivetest.WriteTar(t, archivetest.IndexArchive(t, "test/idx:v1", nil)...), clusterimage.CopyOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if len(unpacked(created)) == 0 {
		t.Errorf("the index was loaded without being unpacked? created %v", created)
	}
}

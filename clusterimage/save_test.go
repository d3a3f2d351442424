package clusterimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/archive"
	"github.com/hoistdev/hoist/test/fixture"
)

// archiveManifest is the manifest of a saved single-image oci-archive, read
// from the tar (or, for a split archive, from its parts).
func archiveManifest(t *testing.T, r io.Reader) (imgspecv1.Manifest, map[string]int64) {
	t.Helper()
	files := map[string][]byte{}
	sizes := map[string]int64{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
		sizes[h.Name] = h.Size
	}
	var idx imgspecv1.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	var m imgspecv1.Manifest
	if err := json.Unmarshal(files[archive.BlobName(idx.Manifests[0].Digest)], &m); err != nil {
		t.Fatal(err)
	}
	return m, sizes
}

func openFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// storeState is what a failed load must leave as it was: the images and
// every layer of the store.
func storeState(t *testing.T, store *clusterimage.Store) []string {
	t.Helper()
	var out []string
	imgs, err := store.Storage.Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		out = append(out, "image "+img.ID+" "+strings.Join(img.Names, ","))
	}
	layers, err := store.Storage.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		out = append(out, "layer "+l.ID)
	}
	sort.Strings(out)
	return out
}

// TestSaveCompressions: every compression loads, into another store, as the
// same image: same ID (the config's digest, and so the same diff IDs),
// labels and hoist metadata; uncompressed, the same manifest digest too.
// skopeo, a reader of the field, copies each archive, which checks every
// blob against its digest.
func TestSaveCompressions(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/app:v1")
	ctx := context.Background()
	want, err := store.Inspect(ctx, "test/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is not installed (make deps installs it)")
	}
	for _, tc := range []struct{ compress, mediaType string }{
		{"", imgspecv1.MediaTypeImageLayerZstd}, // the default
		{clusterimage.CompressZstd, imgspecv1.MediaTypeImageLayerZstd},
		{clusterimage.CompressGzip, imgspecv1.MediaTypeImageLayerGzip},
		{clusterimage.CompressNone, imgspecv1.MediaTypeImageLayer},
	} {
		t.Run("compress="+tc.compress, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.tar")
			if err := store.SaveArchive(ctx, "test/app:v1", path, clusterimage.SaveOptions{Compress: tc.compress}); err != nil {
				t.Fatal(err)
			}
			m, _ := archiveManifest(t, openFile(t, path))
			for i, l := range m.Layers {
				if l.MediaType != tc.mediaType {
					t.Errorf("layer %d: %s, want %s", i, l.MediaType, tc.mediaType)
				}
			}
			if m.Annotations["io.hoist.image.metadata"] == "" {
				t.Errorf("the manifest lost the metadata annotation: %v", m.Annotations)
			}
			other := fixture.Store(t)
			names, err := other.Load(ctx, path, clusterimage.CopyOptions{})
			if err != nil || !reflect.DeepEqual(names, []string{"localhost/test/app:v1"}) {
				t.Fatalf("load: %v %v", names, err)
			}
			got, err := other.Inspect(ctx, "test/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != want.ID || !reflect.DeepEqual(got.Labels, want.Labels) || !reflect.DeepEqual(got.Metadata, want.Metadata) {
				t.Errorf("loaded %s %v %+v, want %s %v %+v", got.ID, got.Labels, got.Metadata, want.ID, want.Labels, want.Metadata)
			}
			if tc.compress == clusterimage.CompressNone && got.Digest != want.Digest {
				t.Errorf("uncompressed: digest %s, want %s", got.Digest, want.Digest)
			}
			out, err := exec.Command(skopeo, "copy", "-q", "oci-archive:"+path, "oci:"+filepath.Join(t.TempDir(), "copy")).CombinedOutput()
			if err != nil {
				t.Errorf("skopeo copy: %v: %s", err, out)
			}
		})
	}
	if err := store.SaveArchive(ctx, "test/app:v1", filepath.Join(t.TempDir(), "x.tar"), clusterimage.SaveOptions{Compress: "lz4"}); err == nil || !strings.Contains(err.Error(), `--compress "lz4"`) {
		t.Errorf("--compress lz4: %v", err)
	}
	if err := store.SaveArchive(ctx, "test/app:v1", filepath.Join(t.TempDir(), "x.tar"), clusterimage.SaveOptions{Format: clusterimage.FormatDockerArchive, Compress: clusterimage.CompressGzip}); err == nil || !strings.Contains(err.Error(), "docker-archive") {
		t.Errorf("docker-archive with gzip: %v", err)
	}
}

// TestSaveSplit: a split archive loads from its first part or from its
// manifest; a corrupted or missing part is refused by name, and the store
// is left as it was.
func TestSaveSplit(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/app:v1")
	ctx := context.Background()
	want := digestOf(t, store, "test/app:v1")
	dir := t.TempDir()
	path := filepath.Join(dir, "app.tar")
	if err := store.SaveArchive(ctx, "test/app:v1", path, clusterimage.SaveOptions{Compress: clusterimage.CompressNone, SplitSize: 1000}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path + ".json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := archive.ParseSplitManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Parts) < 3 || m.Parts[0].Name != "app.tar.000" || m.Parts[1].Name != "app.tar.001" {
		t.Fatalf("parts: %+v", m.Parts)
	}
	for _, p := range m.Parts[:len(m.Parts)-1] {
		if p.Size != 1000 {
			t.Errorf("part %s: %d bytes, want 1000", p.Name, p.Size)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a split save wrote %s too: %v", path, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The parts, put together, are the archive a plain save writes.
	parts, err := archive.OpenSplit(path + ".json")
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := archiveManifest(t, parts.Reader())
	parts.Close()
	if manifest.Annotations["io.hoist.image.metadata"] == "" {
		t.Errorf("split archive's manifest: %+v", manifest)
	}
	for _, input := range []string{path + ".000", path + ".json"} {
		other := fixture.Store(t)
		if _, err := other.Load(ctx, input, clusterimage.CopyOptions{}); err != nil {
			t.Fatalf("load %s: %v", filepath.Base(input), err)
		}
		if got := digestOf(t, other, "test/app:v1"); got != want {
			t.Errorf("load %s: digest %s, want %s", filepath.Base(input), got, want)
		}
	}

	corrupt := func(t *testing.T, change func(dir string)) (string, error) {
		t.Helper()
		copyDir := t.TempDir()
		for _, p := range append([]string{"app.tar.json"}, partNames(m)...) {
			data, _ := os.ReadFile(filepath.Join(dir, p))
			os.WriteFile(filepath.Join(copyDir, p), data, 0o644)
		}
		change(copyDir)
		other := fixture.Store(t)
		before := storeState(t, other)
		_, err := other.Load(ctx, filepath.Join(copyDir, "app.tar.000"), clusterimage.CopyOptions{})
		if after := storeState(t, other); !reflect.DeepEqual(before, after) {
			t.Errorf("the failed load changed the store: %v, then %v", before, after)
		}
		return copyDir, err
	}
	t.Run("corrupted part", func(t *testing.T) {
		_, err := corrupt(t, func(d string) {
			p := filepath.Join(d, "app.tar.001")
			data, _ := os.ReadFile(p)
			data[10] ^= 0xff
			os.WriteFile(p, data, 0o644)
		})
		if err == nil || !strings.Contains(err.Error(), "part app.tar.001 is corrupted") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing part", func(t *testing.T) {
		last := m.Parts[len(m.Parts)-1].Name
		_, err := corrupt(t, func(d string) { os.Remove(filepath.Join(d, last)) })
		if err == nil || !strings.Contains(err.Error(), "part "+last+": missing") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("truncated part", func(t *testing.T) {
		_, err := corrupt(t, func(d string) { os.Truncate(filepath.Join(d, "app.tar.002"), 10) })
		if err == nil || !strings.Contains(err.Error(), "part app.tar.002 is 10 bytes, not") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("part a symlink", func(t *testing.T) {
		_, err := corrupt(t, func(d string) {
			os.Remove(filepath.Join(d, "app.tar.001"))
			os.Symlink(filepath.Join(dir, "app.tar.001"), filepath.Join(d, "app.tar.001"))
		})
		if err == nil || !strings.Contains(err.Error(), "part app.tar.001: a symlink") {
			t.Errorf("err = %v", err)
		}
	})
}

func partNames(m *archive.SplitManifest) []string {
	var out []string
	for _, p := range m.Parts {
		out = append(out, p.Name)
	}
	return out
}

// TestSaveDifferential: an archive made --since an older image holds only
// the layers the older one lacks, loads onto it as the same image a full
// save gives, and is refused, changing nothing, where the older image is
// not in the store.
func TestSaveDifferential(t *testing.T) {
	store := fixture.Store(t)
	ctx := context.Background()
	buildImage(t, store, "test/old:v1")
	newCtx := fixture.Context(t, map[string]string{
		"Kubefile": "FROM localhost/test/old:v1\nCOPY extra /extra\n",
		"extra":    strings.Repeat("new data\n", 1000),
	})
	if _, err := build.Build(ctx, store, build.Options{ContextDir: newCtx, Tags: []string{"test/new:v2"}}); err != nil {
		t.Fatal(err)
	}
	want, err := store.Inspect(ctx, "test/new:v2")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	full, diff := filepath.Join(dir, "full.tar"), filepath.Join(dir, "diff.tar")
	if err := store.SaveArchive(ctx, "test/new:v2", full, clusterimage.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveArchive(ctx, "test/new:v2", diff, clusterimage.SaveOptions{Since: "test/old:v1"}); err != nil {
		t.Fatal(err)
	}
	fullManifest, _ := archiveManifest(t, openFile(t, full))
	diffManifest, sizes := archiveManifest(t, openFile(t, diff))
	if len(diffManifest.Layers) != len(fullManifest.Layers) {
		t.Fatalf("layers: %d in the differential archive, %d in the full one", len(diffManifest.Layers), len(fullManifest.Layers))
	}
	// The old image's layers are left out; the new one, a delta.
	checked, err := archive.Check(diff)
	if err != nil {
		t.Fatal(err)
	}
	if d := checked.Differential; d == nil || len(d.Omitted) != len(diffManifest.Layers)-1 || len(d.Deltas) != 1 || d.Deltas[0].Digest != diffManifest.Layers[len(diffManifest.Layers)-1].Digest {
		t.Fatalf("differential: %+v, layers %+v", d, diffManifest.Layers)
	}
	for _, l := range diffManifest.Layers {
		if _, ok := sizes[archive.BlobName(l.Digest)]; ok {
			t.Errorf("layer %s is in the archive as it is", l.Digest)
		}
	}

	// Onto the old image, in another store: the same image as the full
	// archive gives.
	target := fixture.Store(t)
	oldArchive := filepath.Join(dir, "old.tar")
	if err := store.SaveArchive(ctx, "test/old:v1", oldArchive, clusterimage.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := target.Load(ctx, oldArchive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := target.Load(ctx, diff, clusterimage.CopyOptions{}); err != nil {
		t.Fatalf("differential load: %v", err)
	}
	got, err := target.Inspect(ctx, "test/new:v2")
	if err != nil {
		t.Fatal(err)
	}
	fromFull := fixture.Store(t)
	if _, err := fromFull.Load(ctx, full, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	wantFull, _ := fromFull.Inspect(ctx, "test/new:v2")
	if got.ID != want.ID || got.ID != wantFull.ID || !reflect.DeepEqual(got.Labels, want.Labels) || !reflect.DeepEqual(got.Metadata, wantFull.Metadata) {
		t.Errorf("differential load gave %s %+v, the full one %s %+v", got.ID, got.Metadata, wantFull.ID, wantFull.Metadata)
	}

	// Without the old image: refused, nothing stored.
	bare := fixture.Store(t)
	before := storeState(t, bare)
	_, err = bare.Load(ctx, diff, clusterimage.CopyOptions{})
	oldID := digestID(t, store, "test/old:v1")
	if err == nil || !strings.Contains(err.Error(), "needs image localhost/test/old:v1 (sha256:"+oldID+") in the store: load it first") {
		t.Errorf("without the base: %v", err)
	}
	if after := storeState(t, bare); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused load changed the store: %v, then %v", before, after)
	}

	// Split and differential together.
	if err := store.SaveArchive(ctx, "test/new:v2", filepath.Join(dir, "both.tar"), clusterimage.SaveOptions{Since: "test/old:v1", SplitSize: 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := bare.Load(ctx, filepath.Join(dir, "both.tar.000"), clusterimage.CopyOptions{}); err == nil || !strings.Contains(err.Error(), "load it first") {
		t.Errorf("split differential without the base: %v", err)
	}
	target2 := fixture.Store(t)
	if _, err := target2.Load(ctx, oldArchive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := target2.Load(ctx, filepath.Join(dir, "both.tar.json"), clusterimage.CopyOptions{}); err != nil {
		t.Fatalf("split differential: %v", err)
	}
	if got := digestID(t, target2, "test/new:v2"); got != want.ID {
		t.Errorf("split differential: %s, want %s", got, want.ID)
	}
}

func digestID(t *testing.T, store *clusterimage.Store, name string) string {
	t.Helper()
	d, err := store.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// instanceIDs are the image IDs of an index's images, by platform.
func instanceIDs(t *testing.T, store *clusterimage.Store, name string) map[string]string {
	t.Helper()
	d, err := store.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range d.Manifests {
		imgs, err := store.Storage.ImagesByDigest(digest.Digest(m.Digest))
		if err != nil || len(imgs) != 1 {
			t.Fatalf("the %s image of %s: %v %v", m.Platform, name, imgs, err)
		}
		out[m.Platform] = imgs[0].ID
	}
	return out
}

// TestSaveIndexCompressed: an index is streamed too, its images' layers
// compressed: loaded, it is an index of the same images (IDs) for the same
// platforms, with the metadata; skopeo copies it whole.
func TestSaveIndexCompressed(t *testing.T) {
	store := fixture.Store(t)
	buildImage(t, store, "test/multi:v1", kubefile.Platform{OS: "linux", Arch: "amd64"}, kubefile.Platform{OS: "linux", Arch: "arm64"})
	ctx := context.Background()
	want := instanceIDs(t, store, "test/multi:v1")
	for _, compress := range []string{clusterimage.CompressZstd, clusterimage.CompressGzip} {
		t.Run(compress, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "multi.tar")
			if err := store.SaveArchive(ctx, "test/multi:v1", path, clusterimage.SaveOptions{Compress: compress, SplitSize: 2000}); err != nil {
				t.Fatal(err)
			}
			other := fixture.Store(t)
			names, err := other.Load(ctx, path+".000", clusterimage.CopyOptions{})
			if err != nil || !reflect.DeepEqual(names, []string{"localhost/test/multi:v1"}) {
				t.Fatalf("load: %v %v", names, err)
			}
			if got := instanceIDs(t, other, "test/multi:v1"); !reflect.DeepEqual(got, want) {
				t.Errorf("loaded index of %v, want %v", got, want)
			}
			if d, _ := other.Inspect(ctx, "test/multi:v1"); d.Metadata == nil || d.Metadata.App("web") == nil {
				t.Errorf("metadata lost: %+v", d.Metadata)
			}
			whole := filepath.Join(dir, "whole.tar")
			if err := store.SaveArchive(ctx, "test/multi:v1", whole, clusterimage.SaveOptions{Compress: compress}); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("skopeo", "copy", "-q", "--all", "oci-archive:"+whole, "oci:"+filepath.Join(dir, "copy")).CombinedOutput(); err != nil {
				t.Errorf("skopeo copy --all: %v: %s", err, out)
			}
		})
	}
	if err := store.SaveArchive(ctx, "test/multi:v1", filepath.Join(t.TempDir(), "x.tar"), clusterimage.SaveOptions{Since: "test/multi:v1"}); err == nil || !strings.Contains(err.Error(), "--since takes one platform's image") {
		t.Errorf("--since of an index: %v", err)
	}
}

// TestLoadCorruptedLayerChangesNothing: a compressed layer whose bytes do
// not match its digest (sizes right, so the check passes them) fails the
// load, and the store keeps no layer of it.
func TestLoadCorruptedLayerChangesNothing(t *testing.T) {
	store := fixture.Store(t)
	ctx := context.Background()
	buildImage(t, store, "test/old:v1")
	newCtx := fixture.Context(t, map[string]string{
		"Kubefile": "FROM localhost/test/old:v1\nCOPY extra /extra\n",
		"extra":    strings.Repeat("new data\n", 1000),
	})
	if _, err := build.Build(ctx, store, build.Options{ContextDir: newCtx, Tags: []string{"test/new:v2"}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "new.tar")
	if err := store.SaveArchive(ctx, "test/new:v2", path, clusterimage.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	m, _ := archiveManifest(t, openFile(t, path))
	last := m.Layers[len(m.Layers)-1]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The last layer's blob: find its header by name, flip a byte of its data.
	at := strings.Index(string(data), archive.BlobName(last.Digest))
	if at < 0 {
		t.Fatal("the last layer is not in the archive")
	}
	data[at+512+int(last.Size)/2] ^= 0xff
	os.WriteFile(path, data, 0o644)
	other := fixture.Store(t)
	before := storeState(t, other)
	if _, err := other.Load(ctx, path, clusterimage.CopyOptions{}); err == nil {
		t.Fatal("a corrupted layer loaded")
	}
	if after := storeState(t, other); !reflect.DeepEqual(before, after) {
		t.Errorf("the failed load changed the store: %v, then %v", before, after)
	}
}

// TestSaveDeltaLayer: a new version of a layer whose files the old image
// mostly has (as the registry layer of a rebuilt cluster image has the
// blobs of every image that did not change) goes into a differential
// archive as a delta about the size of what changed, and loads onto the
// old image as the same image, with either storage driver. A base whose
// files differ from those the delta was made against is refused, the store
// unchanged.
func TestSaveDeltaLayer(t *testing.T) {
	for _, driver := range []string{clusterimage.DriverOverlay, clusterimage.DriverVFS} {
		t.Run(driver, func(t *testing.T) { testSaveDeltaLayer(t, driver) })
	}
}

func testSaveDeltaLayer(t *testing.T, driver string) {
	ctx := context.Background()
	store := fixture.StoreWithDriver(t, driver)
	random := func(n int) string {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	kept, changed := random(400<<10), random(100<<10)
	files := map[string]string{
		"Kubefile":      "FROM scratch\nCOPY data /data\n",
		"data/kept":     kept,
		"data/also":     kept[:200<<10],
		"data/changing": changed,
		"data/small":    "small\n",
	}
	old := fixture.Context(t, files)
	if _, err := build.Build(ctx, store, build.Options{ContextDir: old, Tags: []string{"test/delta:v1"}}); err != nil {
		t.Fatal(err)
	}
	changed2, added := random(100<<10), random(50<<10)
	files["data/changing"], files["data/added"] = changed2, added
	if _, err := build.Build(ctx, store, build.Options{ContextDir: fixture.Context(t, files), Tags: []string{"test/delta:v2"}}); err != nil {
		t.Fatal(err)
	}
	want := digestID(t, store, "test/delta:v2")
	dir := t.TempDir()
	diff := filepath.Join(dir, "diff.tar")
	var progress bytes.Buffer
	if err := store.SaveArchive(ctx, "test/delta:v2", diff, clusterimage.SaveOptions{Since: "test/delta:v1", Compress: clusterimage.CompressNone, Copy: clusterimage.CopyOptions{Progress: &progress}}); err != nil {
		t.Fatal(err)
	}
	checked, err := archive.Check(diff)
	if err != nil {
		t.Fatal(err)
	}
	if d := checked.Differential; d == nil || len(d.Deltas) != 1 {
		t.Fatalf("differential: %+v", d)
	}
	delta := checked.Differential.Deltas[0]
	newData := int64(len(changed2) + len(added))
	if delta.Delta.Size < newData || delta.Delta.Size > newData+16<<10 || delta.Delta.MediaType != archive.DeltaMediaType {
		t.Errorf("the delta is %d bytes (%s), what changed %d", delta.Delta.Size, delta.Delta.MediaType, newData)
	}
	if !strings.Contains(progress.String(), "as a delta against localhost/test/delta:v1 (2 of its files referred to") {
		t.Errorf("progress: %s", progress.String())
	}
	// Compressed, the same delta.
	zdiff := filepath.Join(dir, "zdiff.tar")
	if err := store.SaveArchive(ctx, "test/delta:v2", zdiff, clusterimage.SaveOptions{Since: "test/delta:v1"}); err != nil {
		t.Fatal(err)
	}

	oldArchive := filepath.Join(dir, "old.tar")
	if err := store.SaveArchive(ctx, "test/delta:v1", oldArchive, clusterimage.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, archivePath := range []string{diff, zdiff} {
		target := fixture.StoreWithDriver(t, driver)
		if _, err := target.Load(ctx, oldArchive, clusterimage.CopyOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := target.Load(ctx, archivePath, clusterimage.CopyOptions{}); err != nil {
			t.Fatalf("%s: %v", filepath.Base(archivePath), err)
		}
		if got := digestID(t, target, "test/delta:v2"); got != want {
			t.Errorf("%s loaded as %s, want %s", filepath.Base(archivePath), got, want)
		}
	}

	// The base's file changed in the store (same size): refused, naming
	// the layer and the base, nothing stored.
	target := fixture.StoreWithDriver(t, driver)
	if _, err := target.Load(ctx, oldArchive, clusterimage.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	pattern := filepath.Join(target.Storage.GraphRoot(), "overlay", "*", "diff", "data", "kept")
	if driver == clusterimage.DriverVFS {
		pattern = filepath.Join(target.Storage.GraphRoot(), "vfs", "dir", "*", "data", "kept")
	}
	matches, _ := filepath.Glob(pattern)
	if len(matches) != 1 {
		t.Fatalf("%s: %v", pattern, matches)
	}
	if err := os.WriteFile(matches[0], []byte(random(len(kept))), 0o644); err != nil {
		t.Fatal(err)
	}
	before := storeState(t, target)
	_, err = target.Load(ctx, zdiff, clusterimage.CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "a delta against image localhost/test/delta:v1") || !strings.Contains(err.Error(), "the base's file data/kept of layer 0 differs from the one the delta was made against") {
		t.Errorf("changed base: %v", err)
	}
	if after := storeState(t, target); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused load changed the store: %v, then %v", before, after)
	}
}

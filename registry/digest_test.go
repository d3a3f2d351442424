package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"
)

// badDigests are digests a manifest, an index or a caller may carry that
// name no blob: each must be refused before it becomes a path.
var badDigests = []digest.Digest{
	"sha256abc",                      // no algorithm separator
	"sha256:abc",                     // short
	"sha256:",                        // empty
	":" + digest.FromString("x")[7:], // no algorithm
	"sha256:../../escaped",           // leaves the directory
	"sha256:" + digest.Digest(strings.Repeat("A", 64)), // upper case
	"md5:d41d8cd98f00b204e9800998ecf8427e",             // unknown algorithm
	"sha256:" + digest.Digest(strings.Repeat("a", 63)) + "/",
}

// entries lists what dir holds, below it, as relative paths.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestBlobDestRefusesBadDigests(t *testing.T) {
	ctx := context.Background()
	for _, bad := range badDigests {
		t.Run(string(bad), func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "cache", "blobs")
			dest, err := NewBlobReference(root, nil).NewImageDestination(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := entries(t, parent)
			_, err = dest.PutBlob(ctx, strings.NewReader("data"), types.BlobInfo{Digest: bad, Size: 4}, nil, false)
			if err == nil || !strings.Contains(err.Error(), string(bad)) {
				t.Errorf("PutBlob: err = %v, want it to name %s", err, bad)
			}
			reused, _, err := dest.TryReusingBlob(ctx, types.BlobInfo{Digest: bad, Size: 4}, nil, false)
			if reused || err == nil || !strings.Contains(err.Error(), string(bad)) {
				t.Errorf("TryReusingBlob: %v, err = %v, want it to name %s", reused, err, bad)
			}
			d := bad
			if err := dest.PutManifest(ctx, []byte("{}"), &d); err == nil || !strings.Contains(err.Error(), string(bad)) {
				t.Errorf("PutManifest: err = %v, want it to name %s", err, bad)
			}
			if after := entries(t, parent); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("refused digests changed the files: %v, was %v", after, before)
			}
		})
	}
}

// cacheManifest writes a manifest into the blob cache, whatever it names.
func cacheManifest(t *testing.T, cache, raw string) digest.Digest {
	t.Helper()
	d := digest.FromString(raw)
	if err := os.MkdirAll(filepath.Join(cache, "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(CachedBlob(cache, d), []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func imageManifest(config digest.Digest, layers ...digest.Digest) string {
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[`,
		imgspecv1.MediaTypeImageManifest, imgspecv1.MediaTypeImageConfig, config)
	for i, l := range layers {
		if i > 0 {
			m += ","
		}
		m += fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":2}`, imgspecv1.MediaTypeImageLayer, l)
	}
	return m + "]}"
}

func indexManifest(instances ...digest.Digest) string {
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[`, imgspecv1.MediaTypeImageIndex)
	for i, d := range instances {
		if i > 0 {
			m += ","
		}
		m += fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":2,"platform":{"os":"linux","architecture":"amd64"}}`, imgspecv1.MediaTypeImageManifest, d)
	}
	return m + "]}"
}

func TestExtractRefusesBadDigests(t *testing.T) {
	good := digest.FromString("{}")
	for _, bad := range badDigests {
		for _, tc := range []struct {
			name     string
			manifest string // "" for the bad digest pinned itself
		}{
			{"pinned", ""},
			{"config", imageManifest(bad, good)},
			{"layer", imageManifest(good, good, bad)},
			{"instance", indexManifest(bad)},
		} {
			t.Run(tc.name+" "+string(bad), func(t *testing.T) {
				parent := t.TempDir()
				cache, dst := filepath.Join(parent, "a", "b", "cache"), filepath.Join(parent, "a", "b", "registry")
				os.MkdirAll(filepath.Join(cache, "sha256"), 0o755)
				os.WriteFile(CachedBlob(cache, good), []byte("{}"), 0o644)
				pinned := bad
				if tc.manifest != "" {
					pinned = cacheManifest(t, cache, tc.manifest)
				}
				// What a digest leaving the cache would reach.
				os.WriteFile(filepath.Join(parent, "a", "b", "escaped"), []byte("{}"), 0o644)
				before := fmt.Sprint(entries(t, parent))
				err := Extract(cache, dst, []Pinned{{Repo: "docker.io/library/app", Digest: pinned, Tag: "v1"}})
				if err == nil || !strings.Contains(err.Error(), string(bad)) {
					t.Errorf("err = %v, want it to name %s", err, bad)
				}
				for _, p := range entries(t, parent) {
					if !strings.HasPrefix(p, filepath.Join("a", "b", "registry")) && !strings.Contains(before, p) {
						t.Errorf("Extract wrote %s, outside the registry directory", p)
					}
				}
			})
		}
	}
}

func TestExtractRefusesBadNames(t *testing.T) {
	cache := t.TempDir()
	d := cacheManifest(t, cache, imageManifest(digest.FromString("{}")))
	os.WriteFile(CachedBlob(cache, digest.FromString("{}")), []byte("{}"), 0o644)
	for _, p := range []Pinned{
		// Up to the directory above the registry directory, from the
		// repositories and from the tags.
		{Repo: "../../../../../escaped", Digest: d},
		{Repo: "docker.io/library/app", Digest: d, Tag: "../../../../../../../../../../escaped"},
		{Repo: "/abs/app", Digest: d},
	} {
		parent := t.TempDir()
		dst := filepath.Join(parent, "registry")
		err := Extract(cache, dst, []Pinned{p})
		if err == nil || !strings.Contains(err.Error(), "escaped") && !strings.Contains(err.Error(), "/abs/app") {
			t.Errorf("%+v: err = %v", p, err)
		}
		for _, e := range entries(t, parent) {
			if !strings.HasPrefix(e, "registry") {
				t.Errorf("%+v: Extract wrote %s, outside the registry directory", p, e)
			}
		}
	}
	for _, tag := range []string{".hidden", "a/b", strings.Repeat("t", 129), "-x", "v1:2"} {
		err := Extract(cache, filepath.Join(t.TempDir(), "registry"), []Pinned{{Repo: "docker.io/library/app", Digest: d, Tag: tag}})
		if err == nil || !strings.Contains(err.Error(), "is not a tag") {
			t.Errorf("tag %q: err = %v", tag, err)
		}
	}
	for _, tag := range []string{"v1.0", "latest", "_x", strings.Repeat("t", 128)} {
		if err := Extract(cache, filepath.Join(t.TempDir(), "registry"), []Pinned{{Repo: "docker.io/library/app", Digest: d, Tag: tag}}); err != nil {
			t.Errorf("tag %q refused: %v", tag, err)
		}
	}
}

// TestExtractNoImage: a registry directory of no image is an empty
// directory, not a missing one (a build whose images are all missing).
func TestExtractNoImage(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "registry")
	if err := Extract(t.TempDir(), dst, nil); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(dst); err != nil || !info.IsDir() {
		t.Errorf("no registry directory: %v", err)
	}
}

// FuzzReferencedBlobs: what Extract reads of a manifest from the cache, and
// the paths a digest becomes. Whatever the bytes, no panic, and every
// digest returned makes a path of the blob's own directory.
func FuzzReferencedBlobs(f *testing.F) {
	good := digest.FromString("{}")
	f.Add([]byte(imageManifest(good, good)), string(good))
	f.Add([]byte(indexManifest(good, good)), string(good))
	f.Add([]byte(`{"schemaVersion":1,"name":"x","tag":"v1","fsLayers":[{"blobSum":"sha256:abc"}],"history":[{"v1Compatibility":"{}"}]}`), "")
	for _, bad := range badDigests {
		f.Add([]byte(imageManifest(bad, good)), string(bad))
		f.Add([]byte(imageManifest(good, good, bad)), string(bad))
		f.Add([]byte(indexManifest(bad)), string(bad))
	}
	f.Fuzz(func(t *testing.T, raw []byte, d string) {
		inCache := func(d digest.Digest) {
			p, err := cachedBlob("/cache", d)
			if err != nil {
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", d)) {
					t.Errorf("error %v does not name %q", err, d)
				}
				return
			}
			if p != filepath.Join("/cache", d.Algorithm().String(), d.Encoded()) || filepath.Dir(filepath.Dir(p)) != "/cache" {
				t.Errorf("%q is cached at %s", d, p)
			}
			q, err := blobData("/registry", d)
			if err != nil || filepath.Base(q) != "data" || !strings.HasPrefix(q, "/registry/docker/registry/v2/blobs/") || strings.Count(q, "/") != 9 {
				t.Errorf("%q is stored at %s (%v)", d, q, err)
			}
		}
		inCache(digest.Digest(d))
		manifests, blobs, err := referencedBlobs(raw)
		if err != nil {
			return
		}
		for _, d := range append(manifests, blobs...) {
			if err := d.Validate(); err != nil {
				t.Errorf("referencedBlobs returned %q: %v", d, err)
			}
			inCache(d)
		}
	})
}

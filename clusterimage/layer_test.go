package clusterimage_test

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
	"go.podman.io/common/libimage"

	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/test/fixture"
	"github.com/hoistdev/hoist/tree"
)

// TestTreeLayerDigestedHere: a tree layer whose tar was not digested ahead
// is digested when added, and storage gives back exactly that tar.
func TestTreeLayerDigestedHere(t *testing.T) {
	store := fixture.Store(t)
	fixture.BaseImage(t, store, "base:v1")
	base, _, err := store.Runtime.LookupImage("base:v1", &libimage.LookupImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := fixture.Context(t, map[string]string{"docker/a/data": "blob a", "docker/b/data": "blob b", "links/x": "sha256:a"})
	layer := clusterimage.TreeLayer{
		Name:   "registry",
		Fill:   func(dir string) error { return tree.Link(src, dir) },
		Digest: func(string) (*clusterimage.Streamed, error) { return nil, errors.New("not streamed") },
	}
	id, err := store.AddTreeLayer(base.ID(), layer, "test", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err := store.Storage.Image(id)
	if err != nil {
		t.Fatal(err)
	}
	top, err := store.Storage.Layer(img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	diff, err := store.Storage.Diff("", top.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer diff.Close()
	got, err := digest.FromReader(diff)
	if err != nil {
		t.Fatal(err)
	}
	if got != top.UncompressedDigest {
		t.Errorf("storage gives back a tar of %s; the layer says %s", got, top.UncompressedDigest)
	}
}

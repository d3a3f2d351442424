package clusterimage

import (
	"context"
	"errors"
	"fmt"

	"go.podman.io/common/libimage"
	storageTransport "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/storage"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// MetadataOf returns the hoist metadata of an image, or nil when the image
// is not a hoist image. The manifest annotation is authoritative; the config
// label is read when the manifest has none (an image rebuilt by another tool
// keeps its labels).
func MetadataOf(ctx context.Context, img *libimage.Image) (*metadata.Metadata, error) {
	data, err := img.Inspect(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", img.ID(), err)
	}
	doc, ok := data.Annotations[metadata.Annotation]
	if !ok {
		doc, ok = data.Labels[metadata.Annotation]
	}
	if !ok {
		return nil, nil
	}
	m, err := metadata.Decode([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID(), err)
	}
	return m, nil
}

// CreateIndex makes an OCI index of the given images (one per platform) and
// names it with tags, replacing what the tags named before.
func (s *Store) CreateIndex(ctx context.Context, tags []string, ids []string) (string, error) {
	if len(tags) == 0 {
		return "", fmt.Errorf("a multi-platform build needs a name (-t) for its index")
	}
	for _, tag := range tags {
		if img, _, err := s.Runtime.LookupImage(tag, &libimage.LookupImageOptions{ManifestList: true}); err == nil {
			if err := img.Untag(tag); err != nil {
				return "", fmt.Errorf("replacing %s: %w", tag, err)
			}
		}
	}
	list, err := s.Runtime.CreateManifestList(tags[0])
	if err != nil {
		return "", fmt.Errorf("creating the index %s: %w", tags[0], err)
	}
	for _, id := range ids {
		// The reference names this store (driver, graph and run roots),
		// not the system's default one.
		ref, err := storageTransport.Transport.NewStoreReference(s.Storage, nil, id)
		if err != nil {
			return "", err
		}
		if _, err := list.Add(ctx, transports.ImageName(ref), &libimage.ManifestListAddOptions{}); err != nil {
			return "", fmt.Errorf("adding %s to the index %s: %w", id, tags[0], err)
		}
	}
	img, _, err := s.Runtime.LookupImage(tags[0], &libimage.LookupImageOptions{ManifestList: true})
	if err != nil {
		return "", err
	}
	for _, tag := range tags[1:] {
		if err := img.Tag(tag); err != nil {
			return "", err
		}
	}
	return list.ID(), nil
}

// Mounted is an image's tree, mounted read-only for apply.
type Mounted struct {
	Rootfs string
	Digest string // of the image's manifest (of this platform's instance, for an index)
	Meta   *metadata.Metadata
	img    *libimage.Image
}

// Unmount releases the mount.
func (m *Mounted) Unmount() error { return m.img.Unmount(false) }

// Mount mounts the image name (this machine's platform, for an index).
func (s *Store) Mount(ctx context.Context, name string) (*Mounted, error) {
	img, _, err := s.Runtime.LookupImage(name, &libimage.LookupImageOptions{})
	if errors.Is(err, storage.ErrImageUnknown) {
		return nil, fmt.Errorf("%s: image not known (hoist pull or hoist load it first)", name)
	}
	if err != nil {
		return nil, err
	}
	m := &Mounted{Digest: img.Digest().String(), img: img}
	if m.Meta, err = MetadataOf(ctx, img); err != nil {
		return nil, err
	}
	if m.Meta == nil {
		return nil, fmt.Errorf("%s is not a hoist image (no %s annotation)", name, metadata.Annotation)
	}
	if img.TopLayer() == "" {
		return nil, fmt.Errorf("%s: the image has no files", name)
	}
	if m.Rootfs, err = img.Mount(ctx, nil, ""); err != nil {
		return nil, fmt.Errorf("mounting %s: %w", name, err)
	}
	return m, nil
}

package clusterimage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/common/libimage"
	"go.podman.io/common/pkg/config"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	storageTransport "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/hoistdev/hoist/clusterimage/archive"
	"github.com/hoistdev/hoist/scratch"
	"github.com/hoistdev/hoist/tree"
)

// containers/storage cannot take an index in one copy (its destination
// holds single images), so an index comes in as its images, one by one, and
// then the index itself is stored byte for byte, with the image record
// libimage reads for manifest lists: the index keeps its digest.

// libimage's keys for a manifest list's image record.
const instancesKey = "instances.json"

// remoteIndex returns the raw index at a registry reference, or nil when
// the reference names a single image.
func (s *Store) remoteIndex(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) ([]byte, string, error) {
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return nil, "", err
	}
	defer src.Close()
	raw, mime, err := src.GetManifest(ctx, nil)
	if err != nil {
		return nil, "", err
	}
	if !manifest.MIMETypeIsMultiImage(mime) {
		return nil, "", nil
	}
	return raw, mime, nil
}

// pullIndex pulls every image of a registry index, then the index.
func (s *Store) pullIndex(ctx context.Context, name string, raw []byte, mime string, copts CopyOptions) (string, error) {
	list, err := manifest.ListFromBlob(raw, mime)
	if err != nil {
		return "", err
	}
	named, err := normalizedName(name)
	if err != nil {
		return "", err
	}
	instances := map[digest.Digest]string{}
	for _, d := range list.Instances() {
		opts := &libimage.PullOptions{}
		copts.apply(&opts.CopyOptions)
		imgs, err := s.Runtime.Pull(ctx, named.Name()+"@"+d.String(), config.PullPolicyAlways, opts)
		if err != nil {
			return "", fmt.Errorf("pulling %s@%s: %w", name, d, err)
		}
		instances[d] = imgs[0].ID()
	}
	return s.storeIndex(raw, instances, named.String())
}

// storeIndex records raw as an index image named name, whose instances
// are the given images.
func (s *Store) storeIndex(raw []byte, instances map[digest.Digest]string, name string) (string, error) {
	// The name moves to the new index, as a pull or load moves a tag.
	if img, _, err := s.Runtime.LookupImage(name, &libimage.LookupImageOptions{ManifestList: true}); err == nil {
		if err := img.Untag(name); err != nil {
			return "", err
		}
	}
	d, err := manifest.Digest(raw)
	if err != nil {
		return "", err
	}
	// libimage finds an index's images through transport references.
	refs := map[digest.Digest]string{}
	for d, id := range instances {
		ref, err := storageTransport.Transport.NewStoreReference(s.Storage, nil, id)
		if err != nil {
			return "", err
		}
		refs[d] = transports.ImageName(ref)
	}
	instancesJSON, err := json.Marshal(refs)
	if err != nil {
		return "", err
	}
	bigData := []storage.ImageBigDataOption{
		{Key: storage.ImageDigestManifestBigDataNamePrefix, Data: raw, Digest: d},
		{Key: instancesKey, Data: instancesJSON},
	}
	img, err := s.Storage.CreateImage("", []string{name}, "", "", &storage.ImageOptions{BigData: bigData})
	if err != nil {
		return "", fmt.Errorf("storing the index %s: %w", name, err)
	}
	return img.ID, nil
}

// loadIndexArchive loads an oci-archive holding an index (archive.Check
// said so): each of its images, then the index.
func (s *Store) loadIndexArchive(ctx context.Context, path string, copts CopyOptions) ([]string, error) {
	// Removed below, on failure too; one a killed load left is removed by
	// the next (scratch.Dir).
	dir, err := scratch.Dir(s.TmpDir(), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := Untar(path, dir); err != nil {
		return nil, err
	}
	return s.loadIndexDir(ctx, dir, copts)
}

// loadIndexDir loads an unpacked, checked oci-archive holding an index.
func (s *Store) loadIndexDir(ctx context.Context, dir string, copts CopyOptions) ([]string, error) {
	idx, err := archive.ReadIndex(func(name string) ([]byte, error) {
		data, err := archive.ReadJSON(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return data, nil
	})
	if err != nil {
		return nil, err
	}
	named, err := normalizedName(idx.Name)
	if err != nil {
		return nil, err
	}
	pc, err := s.policyContext()
	if err != nil {
		return nil, err
	}
	defer pc.Destroy()
	instances := map[digest.Digest]string{}
	for i, inst := range idx.Index.Manifests {
		// A layout of this one image, sharing the blobs: the store takes
		// single images only.
		one := filepath.Join(dir, fmt.Sprintf("instance-%d", i))
		if err := writeSingleLayout(one, dir, inst); err != nil {
			return nil, err
		}
		src, err := layout.NewReference(one, "")
		if err != nil {
			return nil, err
		}
		// The store wants a name for a new image: a temporary one, removed
		// once the image is found by digest. (The digest was validated:
		// its hex is at least 64 characters long.)
		temp, err := reference.ParseNormalizedNamed("localhost/hoist-load-instance:" + inst.Digest.Encoded()[:16])
		if err != nil {
			return nil, err
		}
		dest, err := storageTransport.Transport.NewStoreReference(s.Storage, temp.(reference.NamedTagged), "")
		if err != nil {
			return nil, err
		}
		_, err = copy.Image(ctx, pc, dest, src, &copy.Options{
			ReportWriter:   copts.Progress,
			SourceCtx:      s.SystemContext(),
			DestinationCtx: s.SystemContext(),
		})
		if err != nil {
			return nil, fmt.Errorf("loading the %s image of the index: %w", archive.Platform(inst.Platform), err)
		}
		imgs, err := s.Storage.ImagesByDigest(inst.Digest)
		if err != nil || len(imgs) == 0 {
			return nil, fmt.Errorf("the loaded image %s is not in the store: %v", inst.Digest, err)
		}
		instances[inst.Digest] = imgs[0].ID
		if img, _, err := s.Runtime.LookupImage(temp.String(), nil); err == nil {
			_ = img.Untag(temp.String())
		}
	}
	if _, err := s.storeIndex(idx.Raw, instances, named.String()); err != nil {
		return nil, err
	}
	return []string{named.String()}, nil
}

func writeSingleLayout(dir, shared string, desc imgspecv1.Descriptor) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join(shared, "blobs"), filepath.Join(dir, "blobs")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, imgspecv1.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	index, err := json.Marshal(imgspecv1.Index{
		Versioned: imgspecv1.Index{}.Versioned,
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{desc},
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644)
}

// Untar unpacks a tar archive (such as an oci-archive) into dir, every
// entry kept inside dir.
func Untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return tree.Extract(f, dir)
}

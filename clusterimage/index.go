package clusterimage

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/clusterimage/tree"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/common/libimage"
	"go.podman.io/common/pkg/config"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	storageTransport "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
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

// indexInArchive tells whether a tar archive is an OCI layout whose
// index.json names an index, reading only index.json.
func indexInArchive(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if filepath.Clean(h.Name) != "index.json" {
			continue
		}
		var top imgspecv1.Index
		if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&top); err != nil {
			return false, nil // not an OCI layout: the ordinary load reports it
		}
		return len(top.Manifests) == 1 && manifest.MIMETypeIsMultiImage(top.Manifests[0].MediaType), nil
	}
}

// loadIndexArchive loads an oci-archive holding an index: each of its
// images, then the index.
func (s *Store) loadIndexArchive(ctx context.Context, path string, copts CopyOptions) ([]string, error) {
	dir, err := os.MkdirTemp(s.TmpDir(), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := Untar(path, dir); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var top imgspecv1.Index
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	desc := top.Manifests[0]
	raw, err := os.ReadFile(blobPath(dir, desc.Digest))
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(raw) != desc.Digest {
		return nil, errors.New("the archive's index does not match its digest")
	}
	name := desc.Annotations[imgspecv1.AnnotationRefName]
	if name == "" {
		return nil, errors.New("the archive's index has no name (org.opencontainers.image.ref.name)")
	}
	named, err := normalizedName(name)
	if err != nil {
		return nil, err
	}
	var index imgspecv1.Index
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("the archive's index: %w", err)
	}
	policy, err := signature.NewPolicyFromFile(s.PolicyPath())
	if err != nil {
		return nil, err
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return nil, err
	}
	defer pc.Destroy()
	instances := map[digest.Digest]string{}
	for i, inst := range index.Manifests {
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
		// once the image is found by digest.
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
			return nil, fmt.Errorf("loading the %s image of the index: %w", platformString(inst.Platform), err)
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
	if _, err := s.storeIndex(raw, instances, named.String()); err != nil {
		return nil, err
	}
	return []string{named.String()}, nil
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
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

func platformString(p *imgspecv1.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
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

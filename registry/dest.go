package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"
)

// Writing into a registry directory through a Distribution server costs an
// HTTP round trip per blob and a second hash of every upload (the server
// checks what it stored). The layout destination below writes the same
// files directly: containers/image already verifies each blob's digest as
// it streams it, so every byte is written once and hashed once.

// NewLayoutReference is a containers/image reference that writes an image
// (or an index with its images) into the registry directory root, as the
// repository repo, tagged tag ("" for none).
//
// stored, when not nil, is told each blob (manifests included) the copy
// stores or finds in the directory, as soon as it is there.
func NewLayoutReference(root, repo, tag string, stored func(digest.Digest)) types.ImageReference {
	return &layoutRef{root: root, repo: repo, tag: tag, stored: stored}
}

// BlobPath is where the directory at root keeps a blob's data.
func BlobPath(root string, d digest.Digest) string { return blobData(root, d) }

type layoutTransport struct{}

func (layoutTransport) Name() string { return "hoist-registry-layout" }
func (layoutTransport) ParseReference(string) (types.ImageReference, error) {
	return nil, errors.New("hoist-registry-layout references are made in code")
}
func (layoutTransport) ValidatePolicyConfigurationScope(string) error { return nil }

type layoutRef struct {
	root, repo, tag string
	stored          func(digest.Digest)
}

func (r *layoutRef) notify(d digest.Digest) {
	if r.stored != nil {
		r.stored(d)
	}
}

func (r *layoutRef) Transport() types.ImageTransport { return layoutTransport{} }
func (r *layoutRef) StringWithinTransport() string {
	return r.root + ":" + r.repo + ":" + r.tag
}
func (r *layoutRef) DockerReference() reference.Named        { return nil }
func (r *layoutRef) PolicyConfigurationIdentity() string     { return r.root + ":" + r.repo }
func (r *layoutRef) PolicyConfigurationNamespaces() []string { return nil }
func (r *layoutRef) NewImage(context.Context, *types.SystemContext) (types.ImageCloser, error) {
	return nil, errors.New("hoist-registry-layout is a destination only")
}
func (r *layoutRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return nil, errors.New("hoist-registry-layout is a destination only")
}
func (r *layoutRef) NewImageDestination(context.Context, *types.SystemContext) (types.ImageDestination, error) {
	if err := os.MkdirAll(filepath.Join(r.root, v2, "blobs"), 0o755); err != nil {
		return nil, err
	}
	return &layoutDest{ref: r}, nil
}
func (r *layoutRef) DeleteImage(context.Context, *types.SystemContext) error {
	return errors.New("hoist-registry-layout does not delete")
}

type layoutDest struct {
	ref      *layoutRef
	manifest digest.Digest // the top-level manifest, tagged at commit
}

func (d *layoutDest) Reference() types.ImageReference { return d.ref }
func (d *layoutDest) Close() error                    { return nil }

// Any manifest type, lists included: the directory stores bytes as given.
func (d *layoutDest) SupportedManifestMIMETypes() []string { return nil }
func (d *layoutDest) SupportsSignatures(context.Context) error {
	return errors.New("a registry directory stores no signatures")
}
func (d *layoutDest) DesiredLayerCompression() types.LayerCompression { return types.PreserveOriginal }
func (d *layoutDest) AcceptsForeignLayerURLs() bool                   { return true }
func (d *layoutDest) MustMatchRuntimeOS() bool                        { return false }
func (d *layoutDest) IgnoresEmbeddedDockerReference() bool            { return true }
func (d *layoutDest) HasThreadSafePutBlob() bool                      { return true }

func (d *layoutDest) PutBlob(ctx context.Context, stream io.Reader, info types.BlobInfo, _ types.BlobInfoCache, _ bool) (types.BlobInfo, error) {
	tmp, err := os.CreateTemp(filepath.Join(d.ref.root, v2, "blobs"), ".upload-*")
	if err != nil {
		return types.BlobInfo{}, err
	}
	defer os.Remove(tmp.Name())
	// A known digest is checked by containers/image as it streams (the
	// read fails on a mismatch); only an unknown one is computed here.
	var digester digest.Digester
	// Writes of 1 MiB: the file's own ReadFrom would copy 32 KiB at a
	// time, a read and a write system call each, which for gigabytes of
	// blobs cost more than the data itself.
	bw := bufio.NewWriterSize(writerOnly{tmp}, 1<<20)
	w := io.Writer(bw)
	if info.Digest == "" {
		digester = digest.Canonical.Digester()
		w = io.MultiWriter(bw, digester.Hash())
	}
	size, err := io.Copy(w, stream)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return types.BlobInfo{}, err
	}
	d2 := info.Digest
	if digester != nil {
		d2 = digester.Digest()
	}
	if info.Size >= 0 && info.Size != size {
		return types.BlobInfo{}, fmt.Errorf("blob %s: %d bytes, expected %d", d2, size, info.Size)
	}
	if err := d.storeBlob(tmp.Name(), d2); err != nil {
		return types.BlobInfo{}, err
	}
	d.ref.notify(d2)
	return types.BlobInfo{Digest: d2, Size: size}, nil
}

func (d *layoutDest) storeBlob(tmp string, dg digest.Digest) error {
	final := blobData(d.ref.root, dg)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return writeLink(filepath.Join(repoDir(d.ref.root, d.ref.repo), "_layers", dg.Algorithm().String(), dg.Encoded(), "link"), dg)
}

func (d *layoutDest) TryReusingBlob(_ context.Context, info types.BlobInfo, _ types.BlobInfoCache, _ bool) (bool, types.BlobInfo, error) {
	if info.Digest == "" {
		return false, types.BlobInfo{}, nil
	}
	st, err := os.Stat(blobData(d.ref.root, info.Digest))
	if err != nil {
		return false, types.BlobInfo{}, nil
	}
	if err := writeLink(filepath.Join(repoDir(d.ref.root, d.ref.repo), "_layers", info.Digest.Algorithm().String(), info.Digest.Encoded(), "link"), info.Digest); err != nil {
		return false, types.BlobInfo{}, err
	}
	d.ref.notify(info.Digest)
	return true, types.BlobInfo{Digest: info.Digest, Size: st.Size()}, nil
}

func (d *layoutDest) PutManifest(_ context.Context, manifest []byte, instanceDigest *digest.Digest) error {
	dg := digest.FromBytes(manifest)
	if instanceDigest != nil && *instanceDigest != dg {
		return fmt.Errorf("manifest digest %s, expected %s", dg, *instanceDigest)
	}
	final := blobData(d.ref.root, dg)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(final); err != nil {
		tmp, err := os.CreateTemp(filepath.Dir(final), ".manifest-*")
		if err != nil {
			return err
		}
		if _, err := tmp.Write(manifest); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return err
		}
		tmp.Close()
		if err := os.Rename(tmp.Name(), final); err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	if instanceDigest == nil {
		d.manifest = dg
	}
	d.ref.notify(dg)
	return writeLink(filepath.Join(repoDir(d.ref.root, d.ref.repo), "_manifests", "revisions", dg.Algorithm().String(), dg.Encoded(), "link"), dg)
}

func (d *layoutDest) PutSignatures(_ context.Context, signatures [][]byte, _ *digest.Digest) error {
	if len(signatures) > 0 {
		return errors.New("a registry directory stores no signatures")
	}
	return nil
}

// Commit tags the image: the last step, so an interrupted copy leaves
// blobs (reused next time) but no tag pointing at an incomplete image.
func (d *layoutDest) Commit(context.Context, types.UnparsedImage) error {
	if d.ref.tag == "" || d.manifest == "" {
		return nil
	}
	tags := filepath.Join(repoDir(d.ref.root, d.ref.repo), "_manifests", "tags", d.ref.tag)
	if err := writeLink(filepath.Join(tags, "index", d.manifest.Algorithm().String(), d.manifest.Encoded(), "link"), d.manifest); err != nil {
		return err
	}
	return writeLink(filepath.Join(tags, "current", "link"), d.manifest)
}

// writerOnly hides a file's ReadFrom from bufio, which would hand the copy
// back to it.
type writerOnly struct{ io.Writer }

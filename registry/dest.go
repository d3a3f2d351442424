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
// checks what it stored). The blob destination below writes the same files
// directly: containers/image already verifies each blob's digest as it
// streams it, so every byte is written once and hashed once.
//
// It stores blobs only (manifests included), in a blob cache (CachedBlob),
// and no repository: Extract reads nothing else, and on some filesystems
// each directory or small file created costs as much as a megabyte of data
// (the repository links and blob directories were most of the files a pull
// made when the cache was a registry directory).

// NewBlobReference is a containers/image reference that writes the blobs of
// an image (or of an index and its images) into the blob cache root;
// Extract then makes a registry directory of them.
//
// stored, when not nil, is told each blob (manifests included) the copy
// stores or finds in the directory, as soon as it is there.
func NewBlobReference(root string, stored func(digest.Digest)) types.ImageReference {
	return &blobRef{root: root, stored: stored}
}

type blobTransport struct{}

func (blobTransport) Name() string { return "hoist-registry-blobs" }
func (blobTransport) ParseReference(string) (types.ImageReference, error) {
	return nil, errors.New("hoist-registry-blobs references are made in code")
}
func (blobTransport) ValidatePolicyConfigurationScope(string) error { return nil }

type blobRef struct {
	root   string
	stored func(digest.Digest)
}

func (r *blobRef) notify(d digest.Digest) {
	if r.stored != nil {
		r.stored(d)
	}
}

func (r *blobRef) Transport() types.ImageTransport         { return blobTransport{} }
func (r *blobRef) StringWithinTransport() string           { return r.root }
func (r *blobRef) DockerReference() reference.Named        { return nil }
func (r *blobRef) PolicyConfigurationIdentity() string     { return r.root }
func (r *blobRef) PolicyConfigurationNamespaces() []string { return nil }
func (r *blobRef) NewImage(context.Context, *types.SystemContext) (types.ImageCloser, error) {
	return nil, errors.New("hoist-registry-blobs is a destination only")
}
func (r *blobRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return nil, errors.New("hoist-registry-blobs is a destination only")
}
func (r *blobRef) NewImageDestination(context.Context, *types.SystemContext) (types.ImageDestination, error) {
	if err := os.MkdirAll(filepath.Join(r.root, digest.Canonical.String()), 0o755); err != nil {
		return nil, err
	}
	return &blobDest{ref: r}, nil
}
func (r *blobRef) DeleteImage(context.Context, *types.SystemContext) error {
	return errors.New("hoist-registry-blobs does not delete")
}

type blobDest struct {
	ref *blobRef
}

func (d *blobDest) Reference() types.ImageReference { return d.ref }
func (d *blobDest) Close() error                    { return nil }

// Any manifest type, lists included: the cache stores bytes as given.
func (d *blobDest) SupportedManifestMIMETypes() []string { return nil }
func (d *blobDest) SupportsSignatures(context.Context) error {
	return errors.New("the blob cache stores no signatures")
}
func (d *blobDest) DesiredLayerCompression() types.LayerCompression { return types.PreserveOriginal }
func (d *blobDest) AcceptsForeignLayerURLs() bool                   { return true }
func (d *blobDest) MustMatchRuntimeOS() bool                        { return false }
func (d *blobDest) IgnoresEmbeddedDockerReference() bool            { return true }
func (d *blobDest) HasThreadSafePutBlob() bool                      { return true }

func (d *blobDest) PutBlob(ctx context.Context, stream io.Reader, info types.BlobInfo, _ types.BlobInfoCache, _ bool) (types.BlobInfo, error) {
	// The source's digest names the file: checked before anything is
	// written (containers/image does not check the form of those a
	// manifest lists).
	if info.Digest != "" {
		if err := checkDigest(info.Digest); err != nil {
			return types.BlobInfo{}, fmt.Errorf("storing a blob: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Join(d.ref.root, digest.Canonical.String()), ".upload-*")
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
	// Manifests and configs are small: no megabyte for them.
	bufSize := 1 << 20
	if info.Size >= 0 && info.Size < int64(bufSize) {
		bufSize = max(int(info.Size), 4096)
	}
	bw := bufio.NewWriterSize(writerOnly{tmp}, bufSize)
	w := io.Writer(bw)
	if info.Digest == "" {
		digester = digest.Canonical.Digester()
		w = io.MultiWriter(bw, digester.Hash())
	}
	size, err := io.Copy(w, stream)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		// Readable by all, as in a registry's own storage: these files
		// are hard-linked into the image's registry/ layer.
		err = tmp.Chmod(blobMode)
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

func (d *blobDest) storeBlob(tmp string, dg digest.Digest) error {
	final, err := cachedBlob(d.ref.root, dg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func (d *blobDest) TryReusingBlob(_ context.Context, info types.BlobInfo, _ types.BlobInfoCache, _ bool) (bool, types.BlobInfo, error) {
	if info.Digest == "" {
		return false, types.BlobInfo{}, nil
	}
	path, err := cachedBlob(d.ref.root, info.Digest)
	if err != nil {
		return false, types.BlobInfo{}, fmt.Errorf("reusing a blob: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return false, types.BlobInfo{}, nil
	}
	d.ref.notify(info.Digest)
	return true, types.BlobInfo{Digest: info.Digest, Size: st.Size()}, nil
}

func (d *blobDest) PutManifest(_ context.Context, manifest []byte, instanceDigest *digest.Digest) error {
	if instanceDigest != nil {
		if err := checkDigest(*instanceDigest); err != nil {
			return fmt.Errorf("storing a manifest: %w", err)
		}
	}
	dg := digest.FromBytes(manifest)
	if instanceDigest != nil && *instanceDigest != dg {
		return fmt.Errorf("manifest digest %s, expected %s", dg, *instanceDigest)
	}
	final, err := cachedBlob(d.ref.root, dg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(final); err != nil {
		tmp, err := os.CreateTemp(filepath.Dir(final), ".manifest-*")
		if err != nil {
			return err
		}
		_, err = tmp.Write(manifest)
		if err == nil {
			err = tmp.Chmod(blobMode)
		}
		if err != nil {
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
	d.ref.notify(dg)
	return nil
}

func (d *blobDest) PutSignatures(_ context.Context, signatures [][]byte, _ *digest.Digest) error {
	if len(signatures) > 0 {
		return errors.New("the blob cache stores no signatures")
	}
	return nil
}

// Commit has nothing to do: the blobs are in place, and no tag is written
// (the build records the digest the copy returns).
func (d *blobDest) Commit(context.Context, types.UnparsedImage) error { return nil }

// writerOnly hides a file's ReadFrom from bufio, which would hand the copy
// back to it.
type writerOnly struct{ io.Writer }

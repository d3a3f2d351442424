package clusterimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/common/libimage"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	storageTransport "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"

	"github.com/hoistdev/hoist/clusterimage/archive"
)

// Loading an oci-archive in place: containers/image's oci-archive
// transport unpacks the whole archive into a temporary directory before it
// copies anything; a cluster image's archive is gigabytes, and a split one
// would be put together that way. Here the archive, once checked
// (archive.CheckTar, which records where each file's data is), is read
// where it lies: each blob a section of the file, or of the parts read as
// one, and a delta layer rebuilt from the base image as it is copied.

// loadInPlace loads the one image of a checked oci-archive read from r,
// named as libimage names an oci-archive's image: after its ref.name (or
// containerd's name) annotation, normalized, else by ID.
func (s *Store) loadInPlace(ctx context.Context, r io.ReaderAt, checked *archive.Checked, copts CopyOptions) ([]string, error) {
	src := &archiveSource{r: r, files: checked.Files}
	indexJSON, err := src.file("index.json", archive.MaxJSONSize)
	if err != nil {
		return nil, err
	}
	var idx imgspecv1.Index
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("index.json lists %d images: an archive hoist loads holds one image, or one index", len(idx.Manifests))
	}
	desc := idx.Manifests[0]
	if src.manifest, err = src.file(archive.BlobName(desc.Digest), archive.MaxJSONSize); err != nil {
		return nil, err
	}
	src.mime = desc.MediaType
	if src.mime == "" {
		src.mime = manifest.GuessMIMEType(src.manifest)
	}
	m, err := manifest.FromBlob(src.manifest, src.mime)
	if err != nil {
		return nil, fmt.Errorf("the image's manifest: %w", err)
	}
	if d := checked.Differential; d != nil && len(d.Deltas) > 0 {
		if src.base, err = s.openLayerFiles(d.Base.ID); err != nil {
			return nil, fmt.Errorf("the archive's base image %s: %w", d.Base.Name, err)
		}
		defer src.base.Close()
		src.differential = d
	}

	var storageName, imageName string
	if name := annotatedName(desc.Annotations); name != "" {
		named, err := libimage.NormalizeName(name)
		if err != nil {
			return nil, fmt.Errorf("the image's name %q: %w", name, err)
		}
		storageName, imageName = named.String(), named.String()
	} else {
		id := m.ConfigInfo().Digest.Encoded()
		storageName, imageName = "@"+id, "sha256:"+id
	}
	dest, err := storageTransport.Transport.ParseStoreReference(s.Storage, storageName)
	if err != nil {
		return nil, err
	}
	pc, err := s.policyContext()
	if err != nil {
		return nil, err
	}
	defer pc.Destroy()
	_, err = copy.Image(ctx, pc, dest, archiveRef{src}, &copy.Options{
		ReportWriter:   copts.Progress,
		SourceCtx:      s.SystemContext(),
		DestinationCtx: s.SystemContext(),
	})
	if err != nil {
		return nil, err
	}
	return []string{imageName}, nil
}

// annotatedName is the name an oci-archive gives its image, as libimage
// reads it.
func annotatedName(a map[string]string) string {
	if n := a["io.containerd.image.name"]; n != "" {
		return n
	}
	return a[imgspecv1.AnnotationRefName]
}

// archiveSource is the image of a checked archive as containers/image
// reads it.
type archiveSource struct {
	r        io.ReaderAt
	files    map[string]archive.Section
	manifest []byte
	mime     string
	// differential and base are set for an archive holding delta layers.
	differential *archive.Differential
	base         *layerFiles
}

// file reads a small file of the archive whole.
func (a *archiveSource) file(name string, limit int64) ([]byte, error) {
	sec, ok := a.files[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the archive", name)
	}
	if sec.Size > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	data := make([]byte, sec.Size)
	if _, err := a.r.ReadAt(data, sec.Offset); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

func (a *archiveSource) Reference() types.ImageReference { return archiveRef{a} }
func (a *archiveSource) Close() error                    { return nil }

func (a *archiveSource) GetManifest(_ context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance != nil {
		return nil, "", errors.New("the archive holds one image, not an index")
	}
	return a.manifest, a.mime, nil
}

// GetBlob gives a blob as a section of the archive (checked against its
// digest by the copy), or a delta layer rebuilt as it is read.
func (a *archiveSource) GetBlob(_ context.Context, info types.BlobInfo, _ types.BlobInfoCache) (io.ReadCloser, int64, error) {
	if sec, ok := a.files[archive.BlobName(info.Digest)]; ok {
		return io.NopCloser(io.NewSectionReader(a.r, sec.Offset, sec.Size)), sec.Size, nil
	}
	if a.differential != nil {
		for _, l := range a.differential.Deltas {
			if l.Digest == info.Digest {
				return a.rebuild(l), l.Size, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("blob %s is not in the archive", info.Digest)
}

// rebuild streams a delta layer rebuilt from the base image's files; the
// stream fails at its end unless the layer has the digest and size listed.
func (a *archiveSource) rebuild(l archive.DeltaLayer) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		err := a.writeRebuilt(pw, l)
		if err != nil {
			err = fmt.Errorf("layer %s, a delta against image %s: %w", l.Digest, a.differential.Base.Name, err)
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func (a *archiveSource) writeRebuilt(w io.Writer, l archive.DeltaLayer) error {
	sec, ok := a.files[archive.BlobName(l.Delta.Digest)]
	if !ok {
		return fmt.Errorf("its delta %s is not in the archive", l.Delta.Digest)
	}
	var delta io.Reader = io.NewSectionReader(a.r, sec.Offset, sec.Size)
	compression, _ := archive.DeltaCompression(l.Delta.MediaType)
	switch compression {
	case CompressZstd:
		dec, err := zstd.NewReader(delta)
		if err != nil {
			return err
		}
		defer dec.Close()
		delta = dec
	case CompressGzip:
		dec, err := gzip.NewReader(delta)
		if err != nil {
			return fmt.Errorf("the delta: %w", err)
		}
		delta = dec
	}
	h := &countingHash{h: digest.SHA256.Hash()}
	if err := archive.ReadDelta(io.MultiWriter(w, h), delta, a.base); err != nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, h.h); got != l.Digest || h.n != l.Size {
		b := a.differential.Base
		return fmt.Errorf("rebuilt, it is %s (%d bytes), not the %s (%d bytes) listed: image %s (sha256:%s) in the store is not the one the archive was made against", got, h.n, l.Digest, l.Size, b.Name, b.ID)
	}
	return nil
}

// HasThreadSafeGetBlob: sections of one file (or of parts) are read at
// their own offsets, and each delta layer from its own files.
func (a *archiveSource) HasThreadSafeGetBlob() bool { return true }

func (a *archiveSource) GetSignatures(context.Context, *digest.Digest) ([][]byte, error) {
	return nil, nil
}

func (a *archiveSource) LayerInfosForCopy(context.Context, *digest.Digest) ([]types.BlobInfo, error) {
	return nil, nil
}

// archiveRef names an archiveSource for containers/image; it is neither
// parsed from a string nor written to.
type archiveRef struct{ src *archiveSource }

func (r archiveRef) Transport() types.ImageTransport     { return archiveTransport{} }
func (r archiveRef) StringWithinTransport() string       { return "" }
func (r archiveRef) DockerReference() reference.Named    { return nil }
func (r archiveRef) PolicyConfigurationIdentity() string { return "" }
func (r archiveRef) PolicyConfigurationNamespaces() []string {
	return nil
}

func (r archiveRef) NewImage(ctx context.Context, sys *types.SystemContext) (types.ImageCloser, error) {
	return image.FromSource(ctx, sys, r.src)
}

func (r archiveRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return r.src, nil
}

func (r archiveRef) NewImageDestination(context.Context, *types.SystemContext) (types.ImageDestination, error) {
	return nil, errors.New("an archive being loaded is not written to")
}

func (r archiveRef) DeleteImage(context.Context, *types.SystemContext) error {
	return errors.New("an archive being loaded is not changed")
}

// archiveTransport is the transport of archiveRef.
type archiveTransport struct{}

func (archiveTransport) Name() string { return "hoist-archive" }

func (archiveTransport) ParseReference(string) (types.ImageReference, error) {
	return nil, errors.New("the hoist-archive transport names no image by a string")
}

func (archiveTransport) ValidatePolicyConfigurationScope(string) error { return nil }

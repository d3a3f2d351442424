package clusterimage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/common/libimage"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	storageTransport "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	storagearchive "go.podman.io/storage/pkg/archive"

	"github.com/hoistdev/hoist/clusterimage/archive"
)

// Compressions of save's layers.
const (
	CompressZstd = "zstd"
	CompressGzip = "gzip"
	CompressNone = "none"
)

// SaveOptions choose what save writes.
type SaveOptions struct {
	// Format is oci-archive (the default) or docker-archive.
	Format string
	// Compress is how an oci-archive's layers are compressed: zstd (the
	// default), gzip or none. docker-archive layers are never compressed.
	Compress string
	// SplitSize, when not zero, cuts the archive into parts of at most
	// this many bytes, with a manifest (see archive.SplitManifest).
	SplitSize int64
	// Since names an image of the store: the archive leaves out the layers
	// it has (a differential archive; see archive.Differential).
	Since string
	Copy  CopyOptions
}

// Save writes an image (or a whole index, with oci-archive) to an archive
// with uncompressed layers, keeping the image's manifest and digest. See
// SaveArchive for the other choices.
func (s *Store) Save(ctx context.Context, name, format, path string, copts CopyOptions) error {
	return s.SaveArchive(ctx, name, path, SaveOptions{Format: format, Compress: CompressNone, Copy: copts})
}

// SaveArchive writes an image to an archive. The file (or the parts and
// their manifest) appears only once complete: a failed save leaves nothing
// behind.
func (s *Store) SaveArchive(ctx context.Context, name, path string, o SaveOptions) error {
	if o.Format == "" {
		o.Format = FormatOCIArchive
	}
	if o.Format != FormatOCIArchive && o.Format != FormatDockerArchive {
		return fmt.Errorf("--format %q: use %s or %s", o.Format, FormatOCIArchive, FormatDockerArchive)
	}
	switch o.Compress {
	case "":
		o.Compress = CompressZstd
		if o.Format == FormatDockerArchive {
			o.Compress = CompressNone
		}
	case CompressZstd, CompressGzip, CompressNone:
	default:
		return fmt.Errorf("--compress %q: use %s, %s or %s", o.Compress, CompressZstd, CompressGzip, CompressNone)
	}
	if o.SplitSize < 0 {
		return fmt.Errorf("--split-size %d: a size is positive", o.SplitSize)
	}
	if o.Format == FormatDockerArchive && (o.Compress != CompressNone || o.SplitSize != 0 || o.Since != "") {
		return errors.New("--format docker-archive: its layers are not compressed, and it is neither split nor differential; use oci-archive for --compress, --split-size and --since")
	}
	img, err := s.lookup(name)
	if err != nil {
		return err
	}
	isList, _ := img.IsManifestList(ctx)
	if isList && o.Format == FormatDockerArchive {
		return fmt.Errorf("%s is an index of several platforms; only oci-archive holds it whole", name)
	}
	if isList && o.Since != "" {
		return fmt.Errorf("%s is an index of several platforms: --since takes one platform's image", name)
	}
	if o.Format == FormatDockerArchive {
		return s.saveDockerArchive(ctx, img, name, path, o.Copy)
	}
	var base *libimage.Image
	if o.Since != "" {
		if base, err = s.lookup(o.Since); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		if isList, _ := base.IsManifestList(ctx); isList {
			return fmt.Errorf("--since %s: an index; name one platform's image", o.Since)
		}
	}
	refName := name
	if strings.HasPrefix(img.ID(), strings.TrimPrefix(name, "sha256:")) {
		refName = "" // saved by ID: loaded without a name, as libimage does
	}
	if names := img.Names(); isList && len(names) > 0 {
		refName = names[0] // load names the index after it
	}
	w := newPartWriter(path, o.SplitSize)
	aw := &archiveWriter{s: s, t: &tarStream{w: w}, compress: o.Compress, progress: o.Copy.Progress, written: map[digest.Digest]imgspecv1.Descriptor{}, wroteBlob: map[digest.Digest]bool{}}
	if err := aw.write(ctx, img, isList, refName, base); err != nil {
		w.abort()
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := w.finish(); err != nil {
		w.abort()
		return fmt.Errorf("saving to %s: %w", path, err)
	}
	return nil
}

// archiveWriter streams images from the store as an oci-archive: each
// layer read from the store, compressed and written straight into the tar
// stream.
//
// The config, and so the image ID, diff IDs, labels and the metadata
// annotation, stay as stored; the manifest is the stored one, byte for
// byte, when layers stay uncompressed (the image keeps its digest), else
// the same manifest with the compressed layers' descriptors.
type archiveWriter struct {
	s        *Store
	t        *tarStream
	compress string
	// progress gets a line per layer (nil: nothing), where containers/image
	// drew its bars.
	progress io.Writer
	// inBase are the diff IDs of --since's image; diff lists those left
	// out.
	inBase map[digest.Digest]bool
	diff   *archive.Differential
	// baseFiles are the files of --since's image's layers: a layer it
	// lacks is written as a delta against them.
	baseFiles *layerFiles
	// written are the layers in the archive by diff ID (the images of an
	// index share layers; an image may hold one twice); wroteBlob the
	// configs and manifests.
	written   map[digest.Digest]imgspecv1.Descriptor
	wroteBlob map[digest.Digest]bool
}

// write writes the archive of img (an image, or an index with isList):
// blobs, then index.json naming it refName.
func (a *archiveWriter) write(ctx context.Context, img *libimage.Image, isList bool, refName string, base *libimage.Image) error {
	if base != nil {
		baseIDs, err := a.s.diffIDs(base.ID())
		if err != nil {
			return fmt.Errorf("--since %s: %w", base.ID(), err)
		}
		a.inBase = map[digest.Digest]bool{}
		for _, d := range baseIDs {
			a.inBase[d] = true
		}
		a.diff = &archive.Differential{MediaType: archive.DifferentialMediaType, Base: archive.Base{ID: base.ID()}}
		if names := base.Names(); len(names) > 0 {
			a.diff.Base.Name = names[0]
		}
		if a.baseFiles, err = a.s.openLayerFiles(base.ID()); err != nil {
			return fmt.Errorf("--since %s: %w", base.ID(), err)
		}
		defer a.baseFiles.Close()
	}
	if err := a.t.file(imgspecv1.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	var desc imgspecv1.Descriptor
	var err error
	if isList {
		desc, err = a.writeIndex(ctx, img.ID())
	} else {
		desc, err = a.writeImage(ctx, img.ID())
	}
	if err != nil {
		return err
	}
	if a.diff != nil && (len(a.diff.Omitted) > 0 || len(a.diff.Deltas) > 0) {
		data, err := json.Marshal(a.diff)
		if err != nil {
			return err
		}
		if err := a.t.file(archive.DifferentialFile, data); err != nil {
			return err
		}
	}
	if refName != "" {
		desc.Annotations = map[string]string{imgspecv1.AnnotationRefName: refName}
	}
	index, err := json.Marshal(imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex, Manifests: []imgspecv1.Descriptor{desc}})
	if err != nil {
		return err
	}
	if err := a.t.file("index.json", index); err != nil {
		return err
	}
	return a.t.close()
}

// source opens a stored image (or index) and reads its manifest.
func (a *archiveWriter) source(ctx context.Context, id string) (types.ImageSource, []byte, string, error) {
	ref, err := storageTransport.Transport.NewStoreReference(a.s.Storage, nil, id)
	if err != nil {
		return nil, nil, "", err
	}
	src, err := ref.NewImageSource(ctx, a.s.SystemContext())
	if err != nil {
		return nil, nil, "", err
	}
	raw, mime, err := src.GetManifest(ctx, nil)
	if err != nil {
		src.Close()
		return nil, nil, "", err
	}
	return src, raw, mime, nil
}

// blob writes a config, manifest or index, once.
func (a *archiveWriter) blob(data []byte) error {
	if a.wroteBlob[digest.FromBytes(data)] {
		return nil
	}
	d, err := a.t.blob(data)
	a.wroteBlob[d] = true
	return err
}

// writeIndex writes the images of a stored index, then the index: as
// stored when no image's manifest changed (it keeps its digest), else with
// the new manifests' descriptors, platforms and annotations kept.
func (a *archiveWriter) writeIndex(ctx context.Context, id string) (imgspecv1.Descriptor, error) {
	src, raw, mime, err := a.source(ctx, id)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	src.Close()
	if !manifest.MIMETypeIsMultiImage(mime) {
		return imgspecv1.Descriptor{}, fmt.Errorf("not an index: %s", mime)
	}
	var idx imgspecv1.Index // a Docker manifest list has the same shape
	if err := json.Unmarshal(raw, &idx); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	changed := mime != imgspecv1.MediaTypeImageIndex
	for i, inst := range idx.Manifests {
		imgs, err := a.s.Storage.ImagesByDigest(inst.Digest)
		if err != nil || len(imgs) == 0 {
			return imgspecv1.Descriptor{}, fmt.Errorf("the %s image of the index (%s) is not in the store: %v", archive.Platform(inst.Platform), inst.Digest, err)
		}
		desc, err := a.writeImage(ctx, imgs[0].ID)
		if err != nil {
			return imgspecv1.Descriptor{}, fmt.Errorf("the %s image: %w", archive.Platform(inst.Platform), err)
		}
		if desc.Digest != inst.Digest || desc.MediaType != inst.MediaType {
			changed = true
			idx.Manifests[i].MediaType, idx.Manifests[i].Digest, idx.Manifests[i].Size = desc.MediaType, desc.Digest, desc.Size
		}
	}
	if changed {
		idx.Versioned = imgspecs.Versioned{SchemaVersion: 2}
		idx.MediaType = imgspecv1.MediaTypeImageIndex
		if raw, err = json.Marshal(idx); err != nil {
			return imgspecv1.Descriptor{}, err
		}
	}
	if err := a.blob(raw); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	return imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, nil
}

// writeImage writes a stored image's layers, config and manifest, and
// returns the manifest's descriptor.
func (a *archiveWriter) writeImage(ctx context.Context, id string) (imgspecv1.Descriptor, error) {
	src, raw, mime, err := a.source(ctx, id)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	defer src.Close()
	if mime != imgspecv1.MediaTypeImageManifest && mime != manifest.DockerV2Schema2MediaType {
		return imgspecv1.Descriptor{}, fmt.Errorf("a manifest of type %s: only OCI and Docker schema 2 images are saved by layer", mime)
	}
	var m imgspecv1.Manifest // a Docker schema 2 manifest has the same shape
	if err := json.Unmarshal(raw, &m); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	configRaw, err := readBlob(ctx, src, m.Config.Digest)
	if err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("the config: %w", err)
	}
	var cfg imgspecv1.Image
	if err := json.Unmarshal(configRaw, &cfg); err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("the config: %w", err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(m.Layers) {
		return imgspecv1.Descriptor{}, fmt.Errorf("the config lists %d layers, the manifest %d", len(diffIDs), len(m.Layers))
	}
	// Kept as stored when nothing changes a layer's descriptor.
	keep := mime == imgspecv1.MediaTypeImageManifest && a.compress == CompressNone
	for i, l := range m.Layers {
		if l.Digest != diffIDs[i] || l.MediaType != imgspecv1.MediaTypeImageLayer {
			keep = false
		}
	}
	layers := make([]imgspecv1.Descriptor, len(m.Layers))
	for i, diffID := range diffIDs {
		desc, ok := a.written[diffID]
		if !ok {
			if desc, err = a.writeLayer(ctx, src, diffID); err != nil {
				return imgspecv1.Descriptor{}, fmt.Errorf("layer %d (%s): %w", i, diffID, err)
			}
			a.written[diffID] = desc
		}
		desc.Annotations = m.Layers[i].Annotations
		layers[i] = desc
	}
	if err := a.blob(configRaw); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	if !keep {
		m.Versioned = imgspecs.Versioned{SchemaVersion: 2}
		m.MediaType = imgspecv1.MediaTypeImageManifest
		m.Config.MediaType = imgspecv1.MediaTypeImageConfig
		m.Layers = layers
		if raw, err = json.Marshal(m); err != nil {
			return imgspecv1.Descriptor{}, err
		}
	}
	if err := a.blob(raw); err != nil {
		return imgspecv1.Descriptor{}, err
	}
	return imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, nil
}

// writeLayer writes one layer, or lists it as left out when --since's
// image has it (uncompressed, by diff ID: the store finds it so).
func (a *archiveWriter) writeLayer(ctx context.Context, src types.ImageSource, diffID digest.Digest) (imgspecv1.Descriptor, error) {
	desc := imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayer}
	if a.inBase[diffID] {
		size, err := a.s.layerSize(diffID)
		if err != nil {
			return desc, err
		}
		desc.Digest, desc.Size = diffID, size
		a.diff.Omitted = append(a.diff.Omitted, archive.OmittedLayer{Digest: diffID, Size: size})
		if a.progress != nil {
			fmt.Fprintf(a.progress, "Layer %s: in %s, left out\n", shortDigest(diffID), a.diff.Base.Name)
		}
		return desc, nil
	}
	if a.baseFiles != nil {
		return a.writeDelta(diffID)
	}
	var err error
	if desc.Digest, desc.Size, err = streamLayer(a.s, a.t, diffID, a.compress); err != nil {
		return desc, err
	}
	if a.progress != nil {
		fmt.Fprintf(a.progress, "Layer %s: written (%s, %d bytes)\n", shortDigest(diffID), a.compress, desc.Size)
	}
	switch a.compress {
	case CompressZstd:
		desc.MediaType = imgspecv1.MediaTypeImageLayerZstd
	case CompressGzip:
		desc.MediaType = imgspecv1.MediaTypeImageLayerGzip
	}
	return desc, nil
}

// writeDelta writes a layer --since's image lacks as a delta against that
// image's files, and lists it in the manifest uncompressed, by diff ID.
func (a *archiveWriter) writeDelta(diffID digest.Digest) (imgspecv1.Descriptor, error) {
	rc, err := a.s.layerStream(diffID)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	defer rc.Close()
	h := &countingHash{h: sha256.New()}
	pr, pw := io.Pipe()
	var refs int
	wrote := make(chan error, 1)
	go func() {
		var err error
		refs, err = archive.WriteDelta(pw, io.TeeReader(rc, h), a.baseFiles)
		pw.CloseWithError(err)
		wrote <- err
	}()
	blob, size, err := a.t.stream(pr, a.compress)
	pr.CloseWithError(errors.New("the archive was not written")) // ends the writer, should the stream have failed
	if werr := <-wrote; werr != nil {
		return imgspecv1.Descriptor{}, werr
	}
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	if got := digest.NewDigest(digest.SHA256, h.h); got != diffID {
		return imgspecv1.Descriptor{}, fmt.Errorf("the store gave a layer of digest %s", got)
	}
	mediaType := archive.DeltaMediaType
	if a.compress != CompressNone {
		mediaType += "+" + a.compress
	}
	a.diff.Deltas = append(a.diff.Deltas, archive.DeltaLayer{Digest: diffID, Size: h.n, Delta: imgspecv1.Descriptor{MediaType: mediaType, Digest: blob, Size: size}})
	if a.progress != nil {
		fmt.Fprintf(a.progress, "Layer %s: written as a delta against %s (%d of its files referred to; %s, %d bytes)\n", shortDigest(diffID), a.diff.Base.Name, refs, a.compress, size)
	}
	return imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayer, Digest: diffID, Size: h.n}, nil
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// streamLayer streams a layer from the store into the archive. The store
// gives it uncompressed; what it gives is checked against the diff ID, so
// that an archive never holds a layer other than the config lists.
func streamLayer(s *Store, t *tarStream, diffID digest.Digest, compress string) (digest.Digest, int64, error) {
	rc, err := s.layerStream(diffID)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	d, size, err := t.stream(io.TeeReader(rc, h), compress)
	if err != nil {
		return "", 0, err
	}
	if got := digest.NewDigest(digest.SHA256, h); got != diffID {
		return "", 0, fmt.Errorf("the store gave a layer of digest %s", got)
	}
	return d, size, nil
}

// layerStream reads a stored layer, uncompressed, straight from the store.
// containers/image's GetBlob would copy it to a temporary file first (to
// hold the store's lock for less time): here the lock is held while the
// layer streams into the archive, and nothing is staged on disk.
func (s *Store) layerStream(diffID digest.Digest) (io.ReadCloser, error) {
	layers, err := s.Storage.LayersByUncompressedDigest(diffID)
	if err != nil || len(layers) == 0 {
		return nil, fmt.Errorf("layer %s is not in the store: %v", diffID, err)
	}
	uncompressed := storagearchive.Uncompressed
	return s.Storage.Diff("", layers[0].ID, &storage.DiffOptions{Compression: &uncompressed})
}

func readBlob(ctx context.Context, src types.ImageSource, d digest.Digest) ([]byte, error) {
	rc, _, err := src.GetBlob(ctx, types.BlobInfo{Digest: d, Size: -1}, none.NoCache)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, archive.MaxJSONSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > archive.MaxJSONSize || digest.FromBytes(data) != d {
		return nil, fmt.Errorf("blob %s: not what the manifest lists", d)
	}
	return data, nil
}

// diffIDs are the uncompressed digests of an image's layers, bottom up,
// from the store's own records.
func (s *Store) diffIDs(id string) ([]digest.Digest, error) {
	img, err := s.Storage.Image(id)
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for layerID := img.TopLayer; layerID != ""; {
		l, err := s.Storage.Layer(layerID)
		if err != nil {
			return nil, err
		}
		out = append([]digest.Digest{l.UncompressedDigest}, out...)
		layerID = l.Parent
	}
	return out, nil
}

// layerSize is the uncompressed size of a stored layer.
func (s *Store) layerSize(diffID digest.Digest) (int64, error) {
	layers, err := s.Storage.LayersByUncompressedDigest(diffID)
	if err != nil || len(layers) == 0 {
		return 0, fmt.Errorf("layer %s is not in the store: %v", diffID, err)
	}
	return layers[0].UncompressedSize, nil
}

// shortDigest is a digest as image IDs are shown, 12 hexadecimal digits.
func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	return e[:min(12, len(e))]
}

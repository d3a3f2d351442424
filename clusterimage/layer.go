package clusterimage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbatts/tar-split/tar/asm"
	tarstorage "github.com/vbatts/tar-split/tar/storage"
	"go.podman.io/storage"
	drivers "go.podman.io/storage/drivers"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/stringid"

	"github.com/hoistdev/hoist/clusterimage/tree"
)

// AddDirLayer makes a new image from the image baseID plus one layer that
// holds the directory dir at path name in the rootfs, with labels and
// annotations set (replacing those of the same keys). It returns the new
// image's ID.
//
// The layer goes straight into the store: the directory is read once, as a
// tar stream that storage unpacks and digests. A buildah COPY would write it
// three times (into a container, into a diff, into the layer), which for the
// gigabytes of a registry layer is most of a build's time.
//
// key, when set, names the content: an image made before with the same key
// is returned instead of writing the layer again (a rebuild that changes
// nothing costs no copy).
func (s *Store) AddDirLayer(baseID, dir, name, createdBy, key string, labels, annotations map[string]string) (string, error) {
	if key != "" {
		images, err := s.Storage.Images()
		if err != nil {
			return "", err
		}
		for _, img := range images {
			var meta layerMetadata
			if json.Unmarshal([]byte(img.Metadata), &meta) == nil && meta.Key == key {
				return img.ID, nil
			}
		}
	}
	rawManifest, err := s.Storage.ImageBigData(baseID, storage.ImageDigestBigDataKey)
	if err != nil {
		return "", fmt.Errorf("reading the manifest of %s: %w", baseID, err)
	}
	var m imgspecv1.Manifest
	if err := json.Unmarshal(rawManifest, &m); err != nil || m.MediaType != imgspecv1.MediaTypeImageManifest {
		return "", fmt.Errorf("image %s does not have an OCI manifest", baseID)
	}
	rawConfig, err := s.Storage.ImageBigData(baseID, m.Config.Digest.String())
	if err != nil {
		return "", fmt.Errorf("reading the config of %s: %w", baseID, err)
	}
	var config imgspecv1.Image
	if err := json.Unmarshal(rawConfig, &config); err != nil {
		return "", fmt.Errorf("decoding the config of %s: %w", baseID, err)
	}
	base, err := s.Storage.Image(baseID)
	if err != nil {
		return "", err
	}

	layer, err := s.stagedLayer(base.TopLayer, dir, name)
	if errors.Is(err, storage.ErrNotSupported) { // vfs: no staged layers
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tree.Write(pw, dir, name, nil)) }()
		layer, _, err = s.Storage.PutLayer("", base.TopLayer, nil, "", false, nil, pr)
		pr.Close()
	}
	if err != nil {
		return "", fmt.Errorf("writing the %s layer: %w", name, err)
	}
	id, err := s.commitLayer(base, layer, m, config, createdBy, key, labels, annotations)
	if err != nil {
		_ = s.Storage.DeleteLayer(layer.ID)
		return "", err
	}
	return id, nil
}

// layerMetadata is kept in an image's storage metadata, a JSON object that
// containers/image also reads (and whose other fields it ignores).
type layerMetadata struct {
	Key string `json:"hoist-layer-key,omitempty"`
}

func (s *Store) commitLayer(base *storage.Image, layer *storage.Layer, m imgspecv1.Manifest, config imgspecv1.Image, createdBy, key string, labels, annotations map[string]string) (string, error) {
	now := time.Now().UTC()
	config.Created = &now
	config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, layer.UncompressedDigest)
	config.History = append(config.History, imgspecv1.History{Created: &now, CreatedBy: createdBy})
	if config.Config.Labels == nil {
		config.Config.Labels = map[string]string{}
	}
	maps.Copy(config.Config.Labels, labels)
	rawConfig, err := json.Marshal(config)
	if err != nil {
		return "", err
	}
	configDigest := digest.FromBytes(rawConfig)

	m.Config = imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: configDigest, Size: int64(len(rawConfig))}
	m.Layers = append(m.Layers, imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageLayer, Digest: layer.UncompressedDigest, Size: layer.UncompressedSize})
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	maps.Copy(m.Annotations, annotations)
	m.Annotations[imgspecv1.AnnotationCreated] = now.Format(time.RFC3339Nano)
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	manifestDigest := digest.FromBytes(rawManifest)

	// The records containers/image writes for an image, so that it and
	// every tool on the store read this one as their own.
	opts := &storage.ImageOptions{
		CreationDate: now,
		Digest:       manifestDigest,
		BigData: []storage.ImageBigDataOption{
			{Key: configDigest.String(), Data: rawConfig, Digest: configDigest},
			{Key: storage.ImageDigestManifestBigDataNamePrefix + "-" + manifestDigest.String(), Data: rawManifest, Digest: manifestDigest},
			{Key: storage.ImageDigestBigDataKey, Data: rawManifest, Digest: manifestDigest},
		},
	}
	meta, err := json.Marshal(layerMetadata{Key: key})
	if err != nil {
		return "", err
	}
	img, err := s.Storage.CreateImage(configDigest.Encoded(), nil, layer.ID, string(meta), opts)
	if errors.Is(err, storage.ErrDuplicateID) {
		// The same content built before: keep that image.
		_ = s.Storage.DeleteLayer(layer.ID)
		return configDigest.Encoded(), nil
	}
	if err != nil {
		return "", fmt.Errorf("creating the image: %w", err)
	}
	return img.ID, nil
}

// stagedLayer makes the layer from hard links to dir's files (the overlay
// driver moves a staged directory into place), so its data is not written
// again: only read once, to compute the layer digest and the tar-split
// record storage needs to give the exact tar back on save or push.
func (s *Store) stagedLayer(parent, dir, name string) (*storage.Layer, error) {
	differ := &linkDiffer{src: dir, name: name, tmp: s.TmpDir()}
	out, err := s.Storage.PrepareStagedLayer(nil, differ)
	if err != nil {
		return nil, err
	}
	layer, err := s.Storage.ApplyStagedLayer(storage.ApplyStagedLayerOptions{
		ID:          stringid.GenerateRandomID(),
		ParentLayer: parent,
		DiffOutput:  out,
		DiffOptions: &drivers.ApplyDiffWithDifferOpts{},
	})
	if err != nil {
		_ = s.Storage.CleanupStagedLayer(out)
		return nil, err
	}
	return layer, nil
}

// linkDiffer fills a staging directory with hard links to a directory's
// files (copies where the filesystem refuses links).
type linkDiffer struct{ src, name, tmp string }

func (l *linkDiffer) Close() error { return nil }

func (l *linkDiffer) ApplyDiff(dest string, _ *archive.TarOptions, _ *drivers.DifferOptions) (drivers.DriverWithDifferOutput, error) {
	if err := tree.Link(l.src, filepath.Join(dest, l.name)); err != nil {
		return drivers.DriverWithDifferOutput{}, err
	}
	split, err := os.CreateTemp(l.tmp, "tar-split-")
	if err != nil {
		return drivers.DriverWithDifferOutput{}, err
	}
	os.Remove(split.Name()) // storage reads it through the open file
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tree.Write(pw, l.src, l.name, nil)) }()
	stream, err := asm.NewInputTarStream(pr, tarstorage.NewJSONPacker(split), tarstorage.NewDiscardFilePutter())
	if err != nil {
		pr.Close()
		split.Close()
		return drivers.DriverWithDifferOutput{}, err
	}
	digester := digest.Canonical.Digester()
	size, err := io.Copy(digester.Hash(), stream)
	pr.Close()
	if err != nil {
		split.Close()
		return drivers.DriverWithDifferOutput{}, err
	}
	return drivers.DriverWithDifferOutput{
		Target:             dest,
		Size:               size,
		UncompressedDigest: digester.Digest(),
		TarSplit:           split,
		UIDs:               []uint32{0},
		GIDs:               []uint32{0},
	}, nil
}

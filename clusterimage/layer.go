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
	"go.podman.io/storage"
	drivers "go.podman.io/storage/drivers"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/stringid"

	"github.com/hoistdev/hoist/tree"
)

// TreeLayer is a layer holding one directory tree at path Name, written by
// Fill into the directory storage will keep (hard links, where Fill makes
// them, cost no data copy).
type TreeLayer struct {
	Name string
	Fill func(dir string) error
	// Digest, when set, gives the tree's tar digested ahead (tree.Stream),
	// so that the files are not read again; nil, or an error, and the tree
	// is read here.
	Digest func(dir string) (*Streamed, error)
}

// Streamed is a tree's tar digested ahead: its digest, size and tar-split
// record.
type Streamed struct {
	Digest   digest.Digest
	Size     int64
	TarSplit string // file of the tar-split record
}

// AddTreeLayer makes a new image from the image baseID plus the layer t,
// with labels and annotations set (replacing those of the same keys). It
// returns the new image's ID.
//
// The layer goes straight into the store: the tree is written once, into
// the directory storage keeps, and read once for its digest (or not at
// all, when t.Digest has it). A buildah COPY would write it three times
// (into a container, into a diff, into the layer), which for the gigabytes
// of a registry layer is most of a build's time.
//
// key, when set, names the content: an image made before with the same key
// is returned instead of writing the layer again (a rebuild that changes
// nothing costs no copy).
func (s *Store) AddTreeLayer(baseID string, t TreeLayer, createdBy, key string, labels, annotations map[string]string) (string, error) {
	return s.addLayer(baseID, key, func(parent string) (*storage.Layer, error) {
		layer, err := s.stagedLayer(parent, t)
		if errors.Is(err, storage.ErrNotSupported) { // vfs: no staged layers
			layer, err = s.putTreeLayer(parent, t)
		}
		if err != nil {
			return nil, fmt.Errorf("writing the %s layer: %w", t.Name, err)
		}
		return layer, nil
	}, createdBy, labels, annotations)
}

// StagedTree is a tree layer written into storage before the image it goes
// on exists: its files can be written while they arrive.
type StagedTree struct {
	store *Store
	out   *drivers.DriverWithDifferOutput
}

// StageTree writes the layer t into storage's staging area, running t.Fill
// (which may wait for its files) and t.Digest. A driver without staged
// layers (vfs) gives storage.ErrNotSupported.
func (s *Store) StageTree(t TreeLayer) (*StagedTree, error) {
	out, err := s.Storage.PrepareStagedLayer(nil, &linkDiffer{t: t, tmp: s.TmpDir()})
	if err != nil {
		return nil, err
	}
	return &StagedTree{store: s, out: out}, nil
}

// Discard removes a staged tree that will not be used.
func (st *StagedTree) Discard() {
	if st != nil && st.out != nil {
		_ = st.store.Storage.CleanupStagedLayer(st.out)
		st.out = nil
	}
}

// AddStagedLayer makes a new image from baseID plus the staged tree, as
// AddTreeLayer does; the staged tree is used up either way.
func (s *Store) AddStagedLayer(baseID string, st *StagedTree, createdBy, key string, labels, annotations map[string]string) (string, error) {
	defer st.Discard()
	return s.addLayer(baseID, key, func(parent string) (*storage.Layer, error) {
		layer, err := s.Storage.ApplyStagedLayer(storage.ApplyStagedLayerOptions{
			ID:          stringid.GenerateRandomID(),
			ParentLayer: parent,
			DiffOutput:  st.out,
			DiffOptions: &drivers.ApplyDiffWithDifferOpts{},
		})
		if err == nil {
			st.out = nil // storage owns it now
		}
		return layer, err
	}, createdBy, labels, annotations)
}

// addLayer makes the image: baseID plus the layer that makeLayer writes on
// top of its layers, unless an image with the same key exists.
func (s *Store) addLayer(baseID, key string, makeLayer func(parent string) (*storage.Layer, error), createdBy string, labels, annotations map[string]string) (string, error) {
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
	layer, err := makeLayer(base.TopLayer)
	if err != nil {
		return "", err
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
func (s *Store) stagedLayer(parent string, t TreeLayer) (*storage.Layer, error) {
	differ := &linkDiffer{t: t, tmp: s.TmpDir()}
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

// putTreeLayer writes the tree as a tar into storage, for drivers without
// staged layers (vfs).
func (s *Store) putTreeLayer(parent string, t TreeLayer) (*storage.Layer, error) {
	dir, err := os.MkdirTemp(s.TmpDir(), "tree-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := t.Fill(filepath.Join(dir, t.Name)); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tree.Write(pw, filepath.Join(dir, t.Name), t.Name, nil)) }()
	layer, _, err := s.Storage.PutLayer("", parent, nil, "", false, nil, pr)
	pr.Close()
	return layer, err
}

// linkDiffer fills a staging directory with the tree (hard links to a
// directory's files, copies where the filesystem refuses links).
type linkDiffer struct {
	t   TreeLayer
	tmp string
}

func (l *linkDiffer) Close() error { return nil }

func (l *linkDiffer) ApplyDiff(dest string, _ *archive.TarOptions, _ *drivers.DifferOptions) (drivers.DriverWithDifferOutput, error) {
	target := filepath.Join(dest, l.t.Name)
	if err := l.t.Fill(target); err != nil {
		return drivers.DriverWithDifferOutput{}, err
	}
	var st *Streamed
	var err error
	if l.t.Digest != nil {
		st, err = l.t.Digest(target)
	}
	if st == nil || err != nil {
		if st, err = l.digest(target); err != nil {
			return drivers.DriverWithDifferOutput{}, err
		}
		defer os.Remove(st.TarSplit) // storage reads it through the open file
	}
	split, err := os.Open(st.TarSplit)
	if err != nil {
		return drivers.DriverWithDifferOutput{}, err
	}
	return drivers.DriverWithDifferOutput{
		Target:             dest,
		Size:               st.Size,
		UncompressedDigest: st.Digest,
		TarSplit:           split,
		UIDs:               []uint32{0},
		GIDs:               []uint32{0},
	}, nil
}

// digest reads the tree at dir for its tar's digest and tar-split record,
// for a layer not digested ahead.
func (l *linkDiffer) digest(dir string) (*Streamed, error) {
	split, err := os.CreateTemp(l.tmp, "tar-split-")
	if err != nil {
		return nil, err
	}
	defer split.Close()
	d, size, err := tree.NewStream(l.t.Name, split).Finish(dir)
	if err != nil {
		os.Remove(split.Name())
		return nil, err
	}
	return &Streamed{Digest: d, Size: size, TarSplit: split.Name()}, nil
}

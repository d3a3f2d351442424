package clusterimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"go.podman.io/common/libimage"
	"go.podman.io/common/pkg/config"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/hoistdev/hoist/clusterimage/archive"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/scratch"
	"github.com/hoistdev/hoist/tree"
)

// Archive formats of save.
const (
	FormatOCIArchive    = "oci-archive"
	FormatDockerArchive = "docker-archive"
)

// Summary is one line of `hoist images`.
type Summary struct {
	ID      string    `json:"id"`
	Names   []string  `json:"names"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	Type    string    `json:"type"` // cluster, app, or "" for other images
	Index   bool      `json:"index"`
}

// Details is what `hoist inspect` shows.
type Details struct {
	ID          string             `json:"id"`
	Digest      string             `json:"digest"`
	Names       []string           `json:"names"`
	Platforms   []string           `json:"platforms"`
	Size        int64              `json:"size"`
	Created     time.Time          `json:"created"`
	Labels      map[string]string  `json:"labels"`
	Annotations map[string]string  `json:"annotations"`
	Metadata    *metadata.Metadata `json:"metadata"`
	// Manifests lists the images of an index, one per platform.
	Manifests []Instance `json:"manifests,omitempty"`
}

// Instance is one platform's image in an index.
type Instance struct {
	Digest   string `json:"digest"`
	Platform string `json:"platform"`
}

// CopyOptions tune transfers to and from registries and archives.
type CopyOptions struct {
	// Progress receives progress bars; nil for none.
	Progress io.Writer
	// TLSVerify false allows plain HTTP and unverified TLS, for registries
	// on loopback.
	TLSVerify bool
}

func (o CopyOptions) apply(c *libimage.CopyOptions) {
	c.Writer = o.Progress
	if !o.TLSVerify {
		c.InsecureSkipTLSVerify = types.OptionalBoolTrue
	}
}

// ValidateName checks that name is an image reference a user may give.
func ValidateName(name string) error {
	_, err := normalizedName(name)
	return err
}

// normalizedName is name in full (docker.io/library/nginx:latest).
func normalizedName(name string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid image name: %w", name, err)
	}
	return reference.TagNameOnly(named), nil
}

// lookup finds an image or index by name or ID.
func (s *Store) lookup(name string) (*libimage.Image, error) {
	img, _, err := s.Runtime.LookupImage(name, &libimage.LookupImageOptions{ManifestList: true})
	if errors.Is(err, storage.ErrImageUnknown) {
		return nil, fmt.Errorf("%s: image not known", name)
	}
	return img, err
}

// List returns the images of the store, newest first. Without all, images
// without a name are left out: in a hoist store they are the layer cache of
// builds (steps, and an image before its registry layer), not results.
func (s *Store) List(ctx context.Context, all bool) ([]Summary, error) {
	imgs, err := s.Runtime.ListImages(ctx, nil)
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, img := range imgs {
		if !all && len(img.Names()) == 0 {
			continue
		}
		sum := Summary{ID: img.ID(), Names: img.Names(), Digest: img.Digest().String(), Created: img.Created()}
		if sum.Names == nil {
			sum.Names = []string{}
		}
		sum.Index, _ = img.IsManifestList(ctx)
		if size, err := img.Size(); err == nil {
			sum.Size = size
		}
		if labels, err := img.Labels(ctx); err == nil {
			sum.Type = labels[metadata.TypeLabel]
		}
		out = append(out, sum)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Inspect describes an image or index.
func (s *Store) Inspect(ctx context.Context, name string) (*Details, error) {
	img, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	d := &Details{ID: img.ID(), Digest: img.Digest().String(), Names: img.Names(), Created: img.Created(), Platforms: []string{}}
	if d.Names == nil {
		d.Names = []string{}
	}
	if isList, _ := img.IsManifestList(ctx); isList {
		list, err := img.ToManifestList()
		if err != nil {
			return nil, err
		}
		data, err := list.Inspect()
		if err != nil {
			return nil, err
		}
		var first *libimage.Image
		for _, m := range data.Manifests {
			pl := m.Platform.OS + "/" + m.Platform.Architecture
			if m.Platform.Variant != "" {
				pl += "/" + m.Platform.Variant
			}
			d.Platforms = append(d.Platforms, pl)
			d.Manifests = append(d.Manifests, Instance{Digest: m.Digest.String(), Platform: pl})
			if inst, err := s.lookupDigest(m.Digest.String()); err == nil {
				if size, err := inst.Size(); err == nil {
					d.Size += size
				}
				if first == nil {
					first = inst
				}
			}
		}
		d.Annotations = data.Annotations
		if first != nil {
			// The instances share their metadata but for per-platform
			// files; show the first one's.
			if d.Metadata, err = MetadataOf(ctx, first); err != nil {
				return nil, err
			}
			if data, err := first.Inspect(ctx, nil); err == nil {
				d.Labels = data.Labels
			}
		}
		return d, nil
	}
	data, err := img.Inspect(ctx, &libimage.InspectOptions{WithSize: true})
	if err != nil {
		return nil, err
	}
	d.Size = data.Size
	d.Labels, d.Annotations = data.Labels, data.Annotations
	d.Platforms = []string{data.Os + "/" + data.Architecture}
	if d.Metadata, err = MetadataOf(ctx, img); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Store) lookupDigest(dgst string) (*libimage.Image, error) {
	imgs, err := s.Runtime.ListImages(context.Background(), &libimage.ListImagesOptions{Filters: []string{"digest=" + dgst}})
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no image with digest %s", dgst)
	}
	return imgs[0], nil
}

// Tag adds a name to an image.
func (s *Store) Tag(name, newName string) error {
	if err := ValidateName(newName); err != nil {
		return err
	}
	img, err := s.lookup(name)
	if err != nil {
		return err
	}
	return img.Tag(newName)
}

// RemoveReport says what rmi did to one image.
type RemoveReport struct {
	ID       string
	Untagged []string
	Removed  bool
}

// Remove removes names; an image goes with its last name, as in podman.
// all removes every image; force also removes images used by containers.
func (s *Store) Remove(ctx context.Context, names []string, all, force bool) ([]RemoveReport, error) {
	opts := &libimage.RemoveImagesOptions{Force: force}
	if all {
		names = nil
	} else if len(names) == 0 {
		return nil, errors.New("name at least one image, or use --all")
	}
	reports, errs := s.Runtime.RemoveImages(ctx, names, opts)
	var out []RemoveReport
	for _, r := range reports {
		out = append(out, RemoveReport{ID: r.ID, Untagged: r.Untagged, Removed: r.Removed})
	}
	return out, errors.Join(errs...)
}

// saveDockerArchive writes a docker-archive through libimage, which stages
// the archive's files in a directory first (oci-archives are streamed by
// hoist's own writer, save.go). The file appears only once complete: a
// failed save leaves nothing behind.
func (s *Store) saveDockerArchive(ctx context.Context, img *libimage.Image, name, path string, copts CopyOptions) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("saving to %s: %w", path, err)
	}
	tmp.Close()
	os.Remove(tmp.Name()) // the archive transports want to create the file
	defer os.Remove(tmp.Name())

	opts := &libimage.SaveOptions{}
	copts.apply(&opts.CopyOptions)
	saveName := name
	if strings.HasPrefix(img.ID(), strings.TrimPrefix(name, "sha256:")) {
		saveName = img.ID()
	}
	if err := s.Runtime.Save(ctx, []string{saveName}, FormatDockerArchive, tmp.Name(), opts); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving to %s: %w", path, err)
	}
	return nil
}

// Load reads an oci-archive (its layers uncompressed, gzip or zstd),
// docker-archive (docker save) or OCI layout, or a split archive (its
// manifest or first part), and returns the names it loaded. The archive is
// checked first (package archive): nothing is unpacked from one that could
// write outside the store, a split archive's parts must all match their
// digests, and a differential archive's base image must be in the store.
func (s *Store) Load(ctx context.Context, path string, copts CopyOptions) ([]string, error) {
	before, err := s.Storage.Layers()
	if err != nil {
		return nil, err
	}
	checked := &archive.Checked{}
	names, err := s.load(ctx, path, checked, copts)
	if err != nil {
		s.removeLeftLayers(before, checked.Layers)
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return names, nil
}

// load loads the archive at path, filling checked once it is checked.
func (s *Store) load(ctx context.Context, path string, checked *archive.Checked, copts CopyOptions) ([]string, error) {
	if manifest, ok := archive.SplitManifestPath(path); ok {
		return s.loadSplit(ctx, manifest, checked, copts)
	}
	c, err := archive.Check(path)
	if err != nil {
		return nil, err
	}
	*checked = *c
	if err := s.checkBase(checked.Differential); err != nil {
		return nil, err
	}
	if checked.Index {
		return s.loadIndexArchive(ctx, path, copts)
	}
	if _, ok := checked.Files["index.json"]; ok {
		// An oci-archive (docker save tars and layout directories are
		// libimage's).
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return s.loadInPlace(ctx, f, checked, copts)
	}
	return s.loadWithLibimage(ctx, path, copts)
}

// removeLeftLayers removes what a failed load left: containers/image
// commits each layer as soon as it can, so a layer that fails its digest
// leaves the ones before it in the store, in no image. Only layers that
// are new since the load began, of a digest the archive lists, and in no
// image are removed, children first: never a layer another command (a
// build at the same time) may be making.
func (s *Store) removeLeftLayers(before []storage.Layer, listed []digest.Digest) {
	if len(listed) == 0 {
		return
	}
	old := map[string]bool{}
	for _, l := range before {
		old[l.ID] = true
	}
	ours := map[digest.Digest]bool{}
	for _, d := range listed {
		ours[d] = true
	}
	used := map[string]bool{}
	if imgs, err := s.Storage.Images(); err == nil {
		for _, img := range imgs {
			for id := img.TopLayer; id != "" && !used[id]; {
				used[id] = true
				l, err := s.Storage.Layer(id)
				if err != nil {
					break
				}
				id = l.Parent
			}
		}
	} else {
		return
	}
	for range 100 { // a layer goes once its children have
		layers, err := s.Storage.Layers()
		if err != nil {
			return
		}
		removed := false
		for _, l := range layers {
			if old[l.ID] || used[l.ID] || !(ours[l.UncompressedDigest] || ours[l.CompressedDigest]) {
				continue
			}
			if s.Storage.DeleteLayer(l.ID) == nil {
				removed = true
			}
		}
		if !removed {
			return
		}
	}
}

// loadSplit loads a split archive: every part verified first, then the
// parts read in place, one after the other, as one archive.
func (s *Store) loadSplit(ctx context.Context, manifest string, checked *archive.Checked, copts CopyOptions) ([]string, error) {
	parts, err := archive.OpenSplit(manifest)
	if err != nil {
		return nil, err
	}
	defer parts.Close()
	c, err := archive.CheckTar(parts.Reader())
	if err != nil {
		return nil, err
	}
	*checked = *c
	if err := s.checkBase(checked.Differential); err != nil {
		return nil, err
	}
	if _, ok := checked.Files["index.json"]; ok && !checked.Index {
		// Read in place from the parts: nothing holds the whole archive.
		return s.loadInPlace(ctx, parts, checked, copts)
	}
	// An index (or a docker save tar) is unpacked, from the parts, into a
	// directory its images are loaded from.
	dir, err := scratch.Dir(s.TmpDir(), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := tree.Extract(parts.Reader(), dir); err != nil {
		return nil, err
	}
	if checked.Index {
		return s.loadIndexDir(ctx, dir, copts)
	}
	return s.loadWithLibimage(ctx, dir, copts)
}

// checkBase checks that the store holds what a differential archive left
// out: its base image, and the layers of it the archive lists.
func (s *Store) checkBase(d *archive.Differential) error {
	if d == nil {
		return nil
	}
	name := d.Base.Name
	if name == "" {
		name = "(no name)"
	}
	missing := fmt.Errorf("the archive is differential: it needs image %s (sha256:%s) in the store: load it first", name, d.Base.ID)
	if _, err := s.Storage.Image(d.Base.ID); err != nil {
		return missing
	}
	have, err := s.diffIDs(d.Base.ID)
	if err != nil {
		return err
	}
	for _, l := range d.Omitted {
		if !slices.Contains(have, l.Digest) {
			return fmt.Errorf("the archive is differential: image %s (sha256:%s) in the store lacks its layer %s", name, d.Base.ID, l.Digest)
		}
	}
	return nil
}

// loadWithLibimage loads a checked single-image archive or layout.
func (s *Store) loadWithLibimage(ctx context.Context, path string, copts CopyOptions) ([]string, error) {
	opts := &libimage.LoadOptions{}
	copts.apply(&opts.CopyOptions)
	names, err := s.Runtime.Load(ctx, path, opts)
	if err != nil {
		// libimage lists what every format said; the archive was read
		// whole above, so the problem is its content.
		first, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("not an image archive (oci-archive, docker-archive or OCI layout): %s", strings.TrimSuffix(first, ":"))
	}
	// libimage's docker-archive reader loads every image manifest.json
	// lists, and so succeeds for a list of none.
	if len(names) == 0 {
		return nil, errors.New("the archive holds no image")
	}
	return names, nil
}

// Push copies an image or a whole index to a registry (dest defaults to
// name).
func (s *Store) Push(ctx context.Context, name, dest string, copts CopyOptions) error {
	if dest == "" {
		dest = name
	}
	if err := ValidateName(strings.TrimPrefix(dest, "docker://")); err != nil {
		return err
	}
	if !strings.Contains(dest, "://") {
		dest = "docker://" + dest
	}
	img, err := s.lookup(name)
	if err != nil {
		return err
	}
	if isList, _ := img.IsManifestList(ctx); isList {
		list, err := img.ToManifestList()
		if err != nil {
			return err
		}
		opts := &libimage.ManifestListPushOptions{ImageListSelection: copy.CopyAllImages}
		copts.apply(&opts.CopyOptions)
		if _, err := list.Push(ctx, dest, opts); err != nil {
			return fmt.Errorf("pushing %s: %w", name, err)
		}
		return nil
	}
	opts := &libimage.PushOptions{}
	copts.apply(&opts.CopyOptions)
	if _, err := s.Runtime.Push(ctx, img.ID(), dest, opts); err != nil {
		return fmt.Errorf("pushing %s: %w", name, err)
	}
	return nil
}

// Pull copies an image from a registry. An index comes whole unless a
// platform is asked for.
func (s *Store) Pull(ctx context.Context, name, platform string, copts CopyOptions) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if platform == "" {
		named, err := normalizedName(name)
		if err != nil {
			return "", err
		}
		ref, err := docker.NewReference(named)
		if err != nil {
			return "", err
		}
		sys := s.SystemContext()
		if !copts.TLSVerify {
			sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		}
		raw, mime, err := s.remoteIndex(ctx, ref, sys)
		if err != nil {
			return "", fmt.Errorf("pulling %s: %w", name, err)
		}
		if raw != nil {
			return s.pullIndex(ctx, name, raw, mime, copts)
		}
	}
	opts := &libimage.PullOptions{}
	copts.apply(&opts.CopyOptions)
	if platform != "" {
		parts := strings.Split(platform, "/")
		if len(parts) < 2 || len(parts) > 3 {
			return "", fmt.Errorf("invalid platform %q: want os/arch[/variant]", platform)
		}
		opts.OS, opts.Architecture = parts[0], parts[1]
		if len(parts) == 3 {
			opts.Variant = parts[2]
		}
	}
	imgs, err := s.Runtime.Pull(ctx, name, config.PullPolicyAlways, opts)
	if err != nil {
		return "", fmt.Errorf("pulling %s: %w", name, err)
	}
	return imgs[0].ID(), nil
}

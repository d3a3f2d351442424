package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/manifest"

	"github.com/hoistdev/hoist/tree"
)

// Pinned is one image in a registry directory: its repository, the digest
// of its manifest (or index), and the tag that names it ("" for none).
type Pinned struct {
	Repo   string
	Digest digest.Digest
	Tag    string
}

const v2 = "docker/registry/v2"

// checkDigest refuses a digest that names no blob. Digests come from
// manifests, indexes and callers, and become paths: one that go-digest's
// Validate refuses (no ':', a short or upper-case hex, '/' or '..' in it,
// an unknown algorithm) would panic on slicing or lead out of the directory.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	return nil
}

func blobData(root string, d digest.Digest) (string, error) {
	if err := checkDigest(d); err != nil {
		return "", err
	}
	return filepath.Join(root, v2, "blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data"), nil
}

// BlobPath is where the registry directory at root keeps a blob's data
// (relative to it when root is ""). d must be a valid digest (the blob
// destination and Extract check theirs): for any other it is "", no path.
func BlobPath(root string, d digest.Digest) string {
	p, _ := blobData(root, d)
	return p
}

// CachedBlob is where the blob cache at dir keeps a blob: dir/<algorithm>/<hex>,
// the blobs directory of an OCI image layout. One file per blob and no
// directory per blob, unlike a registry directory: where the filesystem
// makes creating a directory cost as much as writing a megabyte (ext4 on
// the machine this was measured on), the cache is written at the cost of
// its data. d must be a valid digest, as for BlobPath: for any other it is
// "", no path.
func CachedBlob(dir string, d digest.Digest) string {
	p, _ := cachedBlob(dir, d)
	return p
}

func cachedBlob(dir string, d digest.Digest) (string, error) {
	if err := checkDigest(d); err != nil {
		return "", err
	}
	return filepath.Join(dir, d.Algorithm().String(), d.Encoded()), nil
}

// isTag tells whether tag is one whole tag of the reference grammar (no
// '/', no leading '.', at most 128 characters): it becomes a directory.
func isTag(tag string) bool { return reference.TagRegexp.FindString(tag) == tag }

// checkRepo refuses a repository that would not stay a path below the
// repositories directory.
func checkRepo(repo string) error {
	for _, part := range strings.Split(repo, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("repository %q is not a repository path", repo)
		}
	}
	return nil
}

func repoDir(root, repo string) string {
	return filepath.Join(root, v2, "repositories", filepath.FromSlash(repo))
}

// Extract writes into dst a registry directory holding exactly the given
// images of the blob cache src (see CachedBlob): their manifests, configs
// and layers (for an index, the instances src holds), and their tags. Blobs
// are hard links to src's where the filesystem allows, copies otherwise, so
// that extracting from a large cache costs no data copy.
//
// Images are extracted in parallel: the work is hundreds of small
// filesystem operations (directories, link files, links), each of which
// can cost the kernel more than copying a megabyte (inode allocation on
// ext4), so one writer would leave a core idle.
func Extract(src, dst string, images []Pinned) error {
	ch := make(chan Pinned, len(images))
	for _, img := range images {
		ch <- img
	}
	close(ch)
	return ExtractFrom(src, dst, ch, 8)
}

// ExtractFrom is Extract for images that arrive on a channel (as they are
// fetched), workers at a time; it returns once the channel is closed and
// every image received is in dst. dst is made even for no image: a build
// whose images are all missing (--allow-missing) still has a registry
// directory, an empty one.
func ExtractFrom(src, dst string, images <-chan Pinned, workers int) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		for range images { // the sender may not have a buffer for them all
		}
		return err
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for img := range images {
				if err := extractImage(src, dst, img); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// extractImage adds one image to dst.
func extractImage(src, dst string, img Pinned) error {
	if err := checkRepo(img.Repo); err != nil {
		return err
	}
	if img.Tag != "" && !isTag(img.Tag) {
		return fmt.Errorf("%s: tag %q is not a tag", img.Repo, img.Tag)
	}
	if err := extractManifest(src, dst, img.Repo, img.Digest, true); err != nil {
		return fmt.Errorf("%s@%s: %w", img.Repo, img.Digest, err)
	}
	if img.Tag != "" {
		tags := filepath.Join(repoDir(dst, img.Repo), "_manifests", "tags", img.Tag)
		if err := writeLink(filepath.Join(tags, "current", "link"), img.Digest); err != nil {
			return err
		}
		if err := writeLink(filepath.Join(tags, "index", img.Digest.Algorithm().String(), img.Digest.Encoded(), "link"), img.Digest); err != nil {
			return err
		}
	}
	return nil
}

func extractManifest(src, dst, repo string, d digest.Digest, top bool) error {
	from, err := cachedBlob(src, d)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(from)
	if err != nil {
		if !top && errors.Is(err, fs.ErrNotExist) {
			return nil // an instance of an index that was not copied (another platform)
		}
		return err
	}
	manifests, blobs, err := referencedBlobs(raw)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	if err := linkBlob(src, dst, d); err != nil {
		return err
	}
	if err := writeLink(filepath.Join(repoDir(dst, repo), "_manifests", "revisions", d.Algorithm().String(), d.Encoded(), "link"), d); err != nil {
		return err
	}
	for _, inst := range manifests {
		if err := extractManifest(src, dst, repo, inst, false); err != nil {
			return err
		}
	}
	for _, b := range blobs {
		if err := linkBlob(src, dst, b); err != nil {
			return err
		}
		if err := writeLink(filepath.Join(repoDir(dst, repo), "_layers", b.Algorithm().String(), b.Encoded(), "link"), b); err != nil {
			return err
		}
	}
	return nil
}

// referencedBlobs parses a manifest or an index: the manifests an index
// lists, or the config and layers of an image. Every digest is checked
// before it is returned: they come from a registry or an archive.
func referencedBlobs(raw []byte) (manifests, blobs []digest.Digest, err error) {
	mime := manifest.GuessMIMEType(raw)
	if manifest.MIMETypeIsMultiImage(mime) {
		list, err := manifest.ListFromBlob(raw, mime)
		if err != nil {
			return nil, nil, err
		}
		manifests = list.Instances()
	} else {
		m, err := manifest.FromBlob(raw, mime)
		if err != nil {
			return nil, nil, err
		}
		// A schema 1 manifest has no config.
		if c := m.ConfigInfo().Digest; c != "" {
			blobs = append(blobs, c)
		}
		for _, l := range m.LayerInfos() {
			blobs = append(blobs, l.Digest)
		}
	}
	for _, d := range append(append([]digest.Digest{}, manifests...), blobs...) {
		if err := checkDigest(d); err != nil {
			return nil, nil, err
		}
	}
	return manifests, blobs, nil
}

func linkBlob(src, dst string, d digest.Digest) error {
	from, err := cachedBlob(src, d)
	if err != nil {
		return err
	}
	to, err := blobData(dst, d)
	if err != nil {
		return err
	}
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	// A cache that an older hoist filled holds its blobs 0600: the link
	// shares the file's mode, which the registry layer must have readable.
	if st, err := os.Stat(from); err == nil && st.Mode().Perm() != blobMode {
		if err := os.Chmod(from, blobMode); err != nil {
			return err
		}
	}
	// Images extracted at once may share a blob: one links it first.
	if err := os.Link(from, to); err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	err = tree.LinkFile(from, to)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

// blobMode is the mode of a registry's files: readable by all, as
// Distribution's own storage writes them.
const blobMode = 0o644

func writeLink(path string, d digest.Digest) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(d.String()), blobMode)
}

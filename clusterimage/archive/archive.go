// Package archive checks the image archives and OCI layout directories
// that hoist load reads, before any library unpacks or reads them: what load
// trusts of an archive, and what it refuses. It reads files and bytes only;
// it stores nothing and imports nothing of the image store, so that its
// checks are tested (and fuzzed) on bytes alone.
//
// libimage tries an archive as an oci-archive first, which unpacks it whole
// with containers/storage's Untar: that follows a symlink entry wherever it
// points (an absolute target included) when a later entry lies below it, so
// an archive could write anywhere as root, image or not. The docker-archive
// reader follows a symlink once per file it reads, and the OCI layout
// reader reads manifests whole, without a limit. So the archive is read
// through once here, first, and must be made of directories and regular
// files with names that stay inside it; the JSON documents of the layout
// are read through a size limit and must name blobs the archive holds.
package archive

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// MaxJSONSize bounds the JSON documents read whole: index.json,
	// manifest.json, manifests, indexes, configs. containers/image allows
	// the same for a manifest or a config.
	MaxJSONSize = 4 << 20
	// maxNameBytes bounds the memory the list of entries takes. An image
	// archive has a few entries per layer; 64 MiB of names is millions.
	maxNameBytes = 64 << 20
	// maxIndexDepth bounds indexes of indexes: hoist writes one level,
	// index.json naming an index of images.
	maxIndexDepth = 3
)

// Files of an archive or a layout that load reads.
const (
	indexFile        = "index.json"    // an OCI layout's
	dockerFile       = "manifest.json" // docker save's
	ociLayoutFile    = imgspecv1.ImageLayoutFile
	blobsDir         = "blobs"
	archiveEntryKind = "archive entry"
	layoutEntryKind  = "layout entry"
)

// Checked is what a check found out.
type Checked struct {
	// Index: an OCI layout whose index.json names one index (hoist save's
	// layout of an index), which hoist loads itself (libimage would take
	// one image of it): see ReadIndex.
	Index bool
	// Differential is set for a differential archive (hoist save --since):
	// the layers it lists as omitted are not in the archive, and must be
	// in the store before it is loaded.
	Differential *Differential
	// Layers are the digests of every layer the manifests list: what a
	// failed load may have left in the store is among them.
	Layers []digest.Digest
	// Files are an archive's regular files by clean name, where their data
	// is in it (nil for a layout directory): what reads it in place.
	Files map[string]Section
}

// Section is where a file's data is in an archive.
type Section struct {
	Offset, Size int64
}

// entryError refuses one entry of an archive or a layout: its message
// names the entry.
type entryError struct {
	kind, name, reason string
}

func (e *entryError) Error() string { return fmt.Sprintf("%s %q: %s", e.kind, e.name, e.reason) }

// Check checks the archive or OCI layout directory at path before anything
// is loaded from it (see the package comment). Errors name the entry,
// digest or file at fault, in one line.
func Check(path string) (*Checked, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return CheckLayoutDir(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return CheckTar(f)
}

// CheckTar reads a tar archive through to its end, so that a truncated or
// corrupted file is reported as such before anything is stored, and checks
// its entries and the layout they make (OCI, docker save or both).
func CheckTar(r io.ReadSeeker) (*Checked, error) {
	l, err := listTar(r)
	if err != nil {
		return nil, err
	}
	if err := l.checkLinks(); err != nil {
		return nil, err
	}
	index, hasIndex := l.json[indexFile]
	docker, hasDocker := l.json[dockerFile]
	if !hasIndex && !hasDocker {
		return nil, errors.New("the archive holds no image: it has neither an index.json (oci-archive) nor a manifest.json (docker save)")
	}
	out := &Checked{}
	if data, ok := l.json[DifferentialFile]; ok {
		if hasDocker {
			return nil, errDifferentialDocker
		}
		if out.Differential, err = ParseDifferential(data); err != nil {
			return nil, err
		}
		for _, d := range out.Differential.Deltas {
			if _, err := checkDescriptor(&tarLayout{r: r, l: l}, d.Delta, fmt.Sprintf("%s: delta layer %s", DifferentialFile, d.Digest), false); err != nil {
				return nil, err
			}
		}
	}
	if hasIndex {
		if out.Index, out.Layers, err = checkLayout(&tarLayout{r: r, l: l}, index, out.Differential.omittedSizes()); err != nil {
			return nil, err
		}
	}
	if hasDocker {
		if err := l.checkDocker(docker); err != nil {
			return nil, err
		}
	}
	out.Files = map[string]Section{}
	for name, e := range l.entries {
		if e.typ == tar.TypeReg {
			out.Files[name] = Section{Offset: e.off, Size: e.size}
		}
	}
	return out, nil
}

// tarEntry is what the check keeps of an entry.
type tarEntry struct {
	typ  byte
	size int64
	link string
	// off is where its data starts in the archive.
	off int64
}

// tarListing is an archive's entries, by clean name, and the JSON files
// read on the way.
type tarListing struct {
	entries  map[string]tarEntry
	order    []string // names, in the archive's order
	symlinks []string
	json     map[string][]byte
}

func listTar(r io.ReadSeeker) (*tarListing, error) {
	l := &tarListing{entries: map[string]tarEntry{}, json: map[string][]byte{}}
	tr := tar.NewReader(r)
	count, nameBytes := 0, 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		var off int64
		if err == nil {
			// The tar reader reads headers whole and data not yet: r
			// is at the entry's data.
			off, err = r.Seek(0, io.SeekCurrent)
		}
		if err == nil {
			err = l.add(h, off, tr)
		}
		var refused *entryError
		if errors.As(err, &refused) {
			return nil, err
		}
		if err != nil {
			if count == 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("not a tar archive: %w", err)
			}
			return nil, fmt.Errorf("the archive is truncated or corrupted (after %d files): %w", count, err)
		}
		count++
		if nameBytes += len(h.Name) + len(h.Linkname); nameBytes > maxNameBytes {
			return nil, fmt.Errorf("the archive's entry names exceed %d MiB: not an image archive", maxNameBytes>>20)
		}
	}
	if count == 0 {
		return nil, errors.New("the archive is empty")
	}
	return l, nil
}

// add checks one entry and reads its data: index.json and manifest.json
// are kept, the rest read only to check the archive is whole.
func (l *tarListing) add(h *tar.Header, off int64, data io.Reader) error {
	refuse := func(reason string, args ...any) error {
		return &entryError{kind: archiveEntryKind, name: h.Name, reason: fmt.Sprintf(reason, args...)}
	}
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // PAX defaults for the entries after it, no file
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		// Checked below, once the whole archive is known, but a target
		// outside the archive is refused here.
	case tar.TypeLink:
		return refuse("a hard link (to %q): an image archive holds none", h.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return refuse("a device: an image archive holds none")
	case tar.TypeFifo:
		return refuse("a fifo: an image archive holds none")
	default:
		return refuse("an entry of type %q: an image archive holds none", h.Typeflag)
	}
	// archive/tar reads a GNU sparse file as a regular one, its holes as
	// zeros: a few blocks of archive could read (and unpack) as terabytes.
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return refuse("a sparse file: an image archive holds none")
		}
	}
	name, err := cleanEntryName(h.Name)
	if err != nil {
		return refuse("%v", err)
	}
	if name == "." {
		if h.Typeflag != tar.TypeDir {
			return refuse("not a directory, and named as the archive's top")
		}
		return nil
	}
	if prev, ok := l.entries[name]; ok && (prev.typ != tar.TypeDir || h.Typeflag != tar.TypeDir) {
		return refuse("appears twice in the archive")
	}
	e := tarEntry{typ: h.Typeflag, size: h.Size, link: h.Linkname, off: off}
	if h.Typeflag == tar.TypeSymlink {
		if err := checkLinkTarget(name, h.Linkname); err != nil {
			return refuse("%v", err)
		}
		l.symlinks = append(l.symlinks, name)
	}
	if _, ok := l.entries[name]; !ok {
		l.order = append(l.order, name)
	}
	l.entries[name] = e
	if name == indexFile || name == dockerFile || name == ociLayoutFile || name == DifferentialFile {
		if h.Typeflag != tar.TypeReg {
			return refuse("not a regular file")
		}
		if h.Size > MaxJSONSize {
			return refuse("larger than %d MiB", MaxJSONSize>>20)
		}
		content, err := io.ReadAll(data)
		if err != nil {
			return err
		}
		l.json[name] = content
		return nil
	}
	_, err = io.Copy(io.Discard, data)
	return err
}

// cleanEntryName is name without its "./" and trailing "/", refused when it
// would leave the directory it is unpacked in.
func cleanEntryName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("an empty name")
	case strings.ContainsRune(name, 0):
		return "", errors.New("a NUL byte in the name")
	case path.IsAbs(name):
		return "", errors.New("an absolute name")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New(`".." in the name`)
		}
	}
	return path.Clean(name), nil
}

// The symlinks of an archive. hoist's own `save --format docker-archive`
// (containers/image's writer) and docker save before Docker 25 link each
// layer's legacy <id>/layer.tar to the file holding the layer, as
// "../<file>": refusing every symlink would refuse those archives, which
// load read before and docker load reads. So a symlink is kept when it can
// only mean that: a relative target naming a regular file of the archive
// (never another link, a directory or a blob), and no entry below the
// link, so that nothing is ever written through it.
func checkLinkTarget(name, target string) error {
	if strings.HasPrefix(name, blobsDir+"/") {
		return fmt.Errorf("a symlink (to %q) among the blobs: blobs are files", target)
	}
	if target == "" || path.IsAbs(target) {
		return fmt.Errorf("a symlink to %q: only a relative link to a file of the archive is accepted", target)
	}
	if resolved := path.Join(path.Dir(name), target); resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("a symlink to %q, out of the archive", target)
	}
	return nil
}

// checkLinks checks what a symlink may be once every entry is known (see
// checkLinkTarget).
func (l *tarListing) checkLinks() error {
	if len(l.symlinks) == 0 {
		return nil
	}
	isLink := map[string]bool{}
	for _, name := range l.symlinks {
		isLink[name] = true
		e := l.entries[name]
		if t, ok := l.entries[path.Join(path.Dir(name), e.link)]; !ok || t.typ != tar.TypeReg {
			return &entryError{kind: archiveEntryKind, name: name, reason: fmt.Sprintf("a symlink to %q, which is not a file of the archive", e.link)}
		}
	}
	for _, name := range l.order {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if isLink[dir] {
				return &entryError{kind: archiveEntryKind, name: dir, reason: fmt.Sprintf("a symlink with an entry below it (%q)", name)}
			}
		}
	}
	return nil
}

// file is the regular file an archive path names, following a kept
// symlink (as the docker-archive reader does).
func (l *tarListing) file(name string) (tarEntry, bool) {
	e, ok := l.entries[name]
	if ok && e.typ == tar.TypeSymlink {
		e, ok = l.entries[path.Join(path.Dir(name), e.link)]
	}
	return e, ok && e.typ == tar.TypeReg
}

// dockerImage is an image of a docker save manifest.json.
type dockerImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// checkDocker checks the images a docker save manifest.json lists: files
// of the archive, configs within the JSON size limit.
func (l *tarListing) checkDocker(data []byte) error {
	var images []dockerImage
	if err := json.Unmarshal(data, &images); err != nil {
		return fmt.Errorf("%s: %w", dockerFile, err)
	}
	if len(images) == 0 {
		return fmt.Errorf("the archive holds no image: %s lists no image", dockerFile)
	}
	for i, img := range images {
		check := func(what, name string) (int64, error) {
			clean, err := cleanEntryName(name)
			if err != nil {
				return 0, fmt.Errorf("%s: image %d: %s %q: %w", dockerFile, i, what, name, err)
			}
			e, ok := l.file(clean)
			if !ok {
				return 0, fmt.Errorf("%s: image %d: %s %q is not a file of the archive", dockerFile, i, what, name)
			}
			return e.size, nil
		}
		size, err := check("config", img.Config)
		if err != nil {
			return err
		}
		if size > MaxJSONSize {
			return fmt.Errorf("%s: image %d: config %q is larger than %d MiB", dockerFile, i, img.Config, MaxJSONSize>>20)
		}
		for _, layer := range img.Layers {
			if _, err := check("layer", layer); err != nil {
				return err
			}
		}
	}
	return nil
}

// layoutFiles are the files of an OCI layout, in an archive or a
// directory.
type layoutFiles interface {
	// kind is "archive" or "layout", for messages.
	kind() string
	// size is the size of the regular file name (a slash-separated path in
	// the layout), false when there is none.
	size(name string) (int64, bool)
	// read calls fn with the content of each of the regular files names,
	// each at most MaxJSONSize bytes long (size says so).
	read(names map[string]bool, fn func(name string, data []byte) error) error
}

// pendingManifest is a manifest or index to read, and how it was named.
type pendingManifest struct {
	desc  imgspecv1.Descriptor
	where string
}

// checkLayout checks what an OCI layout's index.json names, down to every
// blob: digests valid, blobs present with the size listed, manifests and
// indexes read through the size limit. It tells whether index.json names
// one index (hoist save's layout of an index).
//
// omitted are the layers a differential archive leaves out (by digest, with
// their size): a layer, never a manifest or config, may be missing when
// listed there with the size the manifest gives it.
func checkLayout(files layoutFiles, indexJSON []byte, omitted map[digest.Digest]int64) (bool, []digest.Digest, error) {
	var top imgspecv1.Index
	if err := json.Unmarshal(indexJSON, &top); err != nil {
		return false, nil, fmt.Errorf("%s: %w", indexFile, err)
	}
	if len(top.Manifests) == 0 {
		return false, nil, fmt.Errorf("the %s holds no image: %s lists no image", files.kind(), indexFile)
	}
	var level []pendingManifest
	for i, d := range top.Manifests {
		level = append(level, pendingManifest{d, fmt.Sprintf("%s: manifest %d", indexFile, i)})
	}
	seen := map[digest.Digest]bool{}
	var layers []digest.Digest
	for depth := 0; len(level) > 0; depth++ {
		if depth == maxIndexDepth {
			return false, nil, fmt.Errorf("%s: indexes nested more than %d deep", level[0].where, maxIndexDepth-1)
		}
		wanted := map[string]bool{}
		byName := map[string][]pendingManifest{}
		for _, p := range level {
			name, err := checkDescriptor(files, p.desc, p.where, true)
			if err != nil {
				return false, nil, err
			}
			wanted[name] = true
			byName[name] = append(byName[name], p)
		}
		var next []pendingManifest
		err := files.read(wanted, func(name string, raw []byte) error {
			for _, p := range byName[name] {
				instances, manifestLayers, err := checkManifest(files, p, raw, omitted)
				if err != nil {
					return err
				}
				layers = append(layers, manifestLayers...)
				for _, inst := range instances {
					if !seen[inst.desc.Digest] {
						seen[inst.desc.Digest] = true
						next = append(next, inst)
					}
				}
			}
			return nil
		})
		if err != nil {
			return false, nil, err
		}
		level = next
	}
	return len(top.Manifests) == 1 && isIndex(top.Manifests[0].MediaType), layers, nil
}

// dockerManifestList is a Docker manifest list, the index of Docker's
// schema 2: containers/image reads it as it reads an OCI index.
const dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"

// isIndex tells whether a media type is that of an index.
func isIndex(mediaType string) bool {
	return mediaType == imgspecv1.MediaTypeImageIndex || mediaType == dockerManifestList
}

// guessMediaType is the media type of a document whose descriptor has
// none: the one it states, or an index's when it lists manifests.
func guessMediaType(raw []byte) string {
	var doc struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &doc) != nil || doc.MediaType != "" {
		return doc.MediaType
	}
	if doc.Manifests != nil {
		return imgspecv1.MediaTypeImageIndex
	}
	return ""
}

// checkManifest checks a manifest's config and layers, or returns the
// manifests an index lists, to check next.
func checkManifest(files layoutFiles, p pendingManifest, raw []byte, omitted map[digest.Digest]int64) ([]pendingManifest, []digest.Digest, error) {
	where := fmt.Sprintf("%s (%s)", p.where, p.desc.Digest)
	mime := p.desc.MediaType
	if mime == "" {
		mime = guessMediaType(raw)
	}
	if isIndex(mime) {
		var idx imgspecv1.Index // a Docker manifest list has the same shape
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		if len(idx.Manifests) == 0 {
			return nil, nil, fmt.Errorf("%s: the index lists no image", where)
		}
		var out []pendingManifest
		for i, d := range idx.Manifests {
			what := fmt.Sprintf("%s: manifest %d", where, i)
			if d.Platform != nil {
				what += " (" + Platform(d.Platform) + ")"
			}
			out = append(out, pendingManifest{d, what})
		}
		return out, nil, nil
	}
	var m imgspecv1.Manifest // a Docker schema 2 manifest has the same shape
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	if _, err := checkDescriptor(files, m.Config, where+": config", true); err != nil {
		return nil, nil, err
	}
	var layers []digest.Digest
	for i, layer := range m.Layers {
		layers = append(layers, layer.Digest)
		if _, err := checkDescriptor(files, layer, fmt.Sprintf("%s: layer %d", where, i), false); err != nil {
			var missing *missingBlobError
			if len(layer.URLs) > 0 && errors.As(err, &missing) {
				continue // a foreign layer, fetched from its URLs
			}
			if size, ok := omitted[layer.Digest]; ok && size == layer.Size && errors.As(err, &missing) {
				continue // left out of a differential archive: the store has it
			}
			return nil, nil, err
		}
	}
	return nil, layers, nil
}

// missingBlobError is a descriptor naming a blob the layout lacks.
type missingBlobError struct{ where, what string }

func (e *missingBlobError) Error() string { return e.where + " is not in the " + e.what }

// checkDescriptor checks that a descriptor names a blob of the layout of
// the size it says, within the JSON limit for what is read whole; it
// returns the blob's name.
func checkDescriptor(files layoutFiles, d imgspecv1.Descriptor, where string, isJSON bool) (string, error) {
	if err := d.Digest.Validate(); err != nil {
		return "", fmt.Errorf("%s: digest %q: %w", where, d.Digest, err)
	}
	name := BlobName(d.Digest)
	size, ok := files.size(name)
	if !ok {
		return "", &missingBlobError{where: fmt.Sprintf("%s: blob %s", where, d.Digest), what: files.kind()}
	}
	if size != d.Size {
		return "", fmt.Errorf("%s: blob %s is %d bytes, not %d as listed", where, d.Digest, size, d.Size)
	}
	if isJSON && size > MaxJSONSize {
		return "", fmt.Errorf("%s: blob %s is larger than %d MiB", where, d.Digest, MaxJSONSize>>20)
	}
	return name, nil
}

// tarLayout is the OCI layout of an archive, read from the archive itself.
type tarLayout struct {
	r io.ReadSeeker
	l *tarListing
}

func (t *tarLayout) kind() string { return "archive" }

func (t *tarLayout) size(name string) (int64, bool) {
	e, ok := t.l.entries[name]
	return e.size, ok && e.typ == tar.TypeReg
}

func (t *tarLayout) read(names map[string]bool, fn func(string, []byte) error) error {
	return readTarFiles(t.r, names, fn)
}

// readTarFiles reads the archive again, from its start, for the regular
// files names, each read through the JSON size limit.
func readTarFiles(r io.ReadSeeker, names map[string]bool, fn func(string, []byte) error) error {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := cleanEntryName(h.Name)
		if err != nil || !names[name] || h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := readAtMost(tr, MaxJSONSize)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := fn(name, data); err != nil {
			return err
		}
	}
}

// readAtMost reads r whole, refusing more than limit bytes.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d MiB", limit>>20)
	}
	return data, nil
}

// CheckLayoutDir checks an OCI layout directory as CheckTar checks an
// archive: libraries read its files in place, so what it holds under
// blobs/ must be regular files (a link could lead to /dev/zero or to any
// file of the machine, a fifo would block), and index.json is read
// through the size limit.
func CheckLayoutDir(dir string) (*Checked, error) {
	index, err := readLayoutFile(dir, indexFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the directory holds no image: it has no %s (an OCI layout directory is expected)", indexFile)
	}
	if err != nil {
		return nil, err
	}
	if _, err := readLayoutFile(dir, ociLayoutFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	blobs := filepath.Join(dir, blobsDir)
	if info, err := os.Lstat(blobs); err == nil && !info.IsDir() {
		return nil, &entryError{kind: layoutEntryKind, name: blobsDir, reason: "not a directory"}
	}
	err = filepath.WalkDir(blobs, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == blobs {
			return nil // every blob will be missing: checkLayout says which
		}
		if err != nil {
			return err
		}
		if d.IsDir() || d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		return &entryError{kind: layoutEntryKind, name: filepath.ToSlash(rel), reason: fmt.Sprintf("a %s among the blobs: blobs are files of the layout", fileKind(d.Type()))}
	})
	if err != nil {
		return nil, err
	}
	out := &Checked{}
	if out.Index, out.Layers, err = checkLayout(dirLayout(dir), index, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// readLayoutFile reads a JSON file of a layout directory through the size
// limit, refusing anything but a regular file.
func readLayoutFile(dir, name string) ([]byte, error) {
	data, err := ReadJSON(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, &entryError{kind: layoutEntryKind, name: name, reason: err.Error()}
	}
	return data, err
}

// ReadJSON reads a JSON file (of an unpacked layout) through the size
// limit, MaxJSONSize. A symlink is not followed and a fifo not waited for:
// both are refused, as any file but a regular one.
func ReadJSON(p string) ([]byte, error) {
	const limit = MaxJSONSize
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, errors.New("a symlink, not a file")
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("a %s, not a file", fileKind(info.Mode().Type()))
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("larger than %d MiB", limit>>20)
	}
	return readAtMost(f, limit)
}

// BlobName is a blob's name in an OCI layout; d must be valid.
func BlobName(d digest.Digest) string {
	return blobsDir + "/" + d.Algorithm().String() + "/" + d.Encoded()
}

// Platform names a descriptor's platform (os/arch[/variant]) in messages.
func Platform(p *imgspecv1.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func fileKind(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "symlink"
	case mode&fs.ModeNamedPipe != 0:
		return "fifo"
	case mode&fs.ModeDevice != 0:
		return "device"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode.IsDir():
		return "directory"
	}
	return "special file"
}

// dirLayout is an OCI layout directory.
type dirLayout string

func (d dirLayout) kind() string { return "layout" }

func (d dirLayout) size(name string) (int64, bool) {
	info, err := os.Lstat(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil || !info.Mode().IsRegular() {
		return 0, false
	}
	return info.Size(), true
}

func (d dirLayout) read(names map[string]bool, fn func(string, []byte) error) error {
	for _, name := range slices.Sorted(maps.Keys(names)) {
		data, err := readLayoutFile(string(d), name)
		if err != nil {
			return err
		}
		if err := fn(name, data); err != nil {
			return err
		}
	}
	return nil
}

// Index is the index an oci-archive of hoist save holds.
type Index struct {
	// Name is the name index.json gives it (org.opencontainers.image.ref.name).
	Name string
	// Raw is the index as stored: it keeps its digest.
	Raw   []byte
	Index imgspecv1.Index
}

// ReadIndex reads what hoist reads itself of an oci-archive holding an
// index (Checked.Index): index.json, the index it names, and the index's
// instances. read returns a file of the archive by name, through the JSON
// size limit (ReadJSON, in the unpacked archive). Digests are validated
// before they make a path or a name.
func ReadIndex(read func(name string) ([]byte, error)) (*Index, error) {
	data, err := read(indexFile)
	if err != nil {
		return nil, err
	}
	var top imgspecv1.Index
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", indexFile, err)
	}
	if len(top.Manifests) != 1 {
		return nil, fmt.Errorf("%s lists %d manifests, not one index", indexFile, len(top.Manifests))
	}
	desc := top.Manifests[0]
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s: digest %q: %w", indexFile, desc.Digest, err)
	}
	raw, err := read(BlobName(desc.Digest))
	if err != nil {
		return nil, err
	}
	if desc.Digest.Algorithm().FromBytes(raw) != desc.Digest {
		return nil, fmt.Errorf("the archive's index does not match its digest %s", desc.Digest)
	}
	out := &Index{Name: desc.Annotations[imgspecv1.AnnotationRefName], Raw: raw}
	if out.Name == "" {
		return nil, errors.New("the archive's index has no name (org.opencontainers.image.ref.name)")
	}
	if err := json.Unmarshal(raw, &out.Index); err != nil {
		return nil, fmt.Errorf("the archive's index: %w", err)
	}
	if len(out.Index.Manifests) == 0 {
		return nil, fmt.Errorf("the archive's index %s lists no image", desc.Digest)
	}
	for i, inst := range out.Index.Manifests {
		if err := inst.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("the archive's index: manifest %d (%s): digest %q: %w", i, Platform(inst.Platform), inst.Digest, err)
		}
	}
	return out, nil
}

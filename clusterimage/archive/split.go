package archive

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"
)

// A split archive is one archive cut into parts of at most a given size
// (for removable media), plus a manifest naming each part with its size
// and sha256: FILE.000, FILE.001, ... and FILE.json. Load verifies every
// part against the manifest before it reads anything of the archive, and
// then reads the parts in place, one after the other: the archive is never
// put together in one file.

// SplitMediaType marks a split archive's manifest.
const SplitMediaType = "application/vnd.hoist.split-archive.v1+json"

// maxParts bounds a split manifest: 100000 parts of 1 MiB is 100 GiB, and
// parts are usually gigabytes.
const maxParts = 100000

// SplitManifest lists the parts of a split archive, in order.
type SplitManifest struct {
	MediaType string `json:"mediaType"`
	// Size is the archive's whole size, the sum of its parts'.
	Size  int64  `json:"size"`
	Parts []Part `json:"parts"`
}

// Part is one part of a split archive: a file beside the manifest.
type Part struct {
	Name   string        `json:"name"`
	Size   int64         `json:"size"`
	Digest digest.Digest `json:"digest"`
}

// ParseSplitManifest reads a split archive's manifest, refusing anything
// that could name a file outside its directory, twice, or without a
// sha256 to check it against.
func ParseSplitManifest(data []byte) (*SplitManifest, error) {
	if len(data) > MaxJSONSize {
		return nil, fmt.Errorf("the split manifest is larger than %d MiB", MaxJSONSize>>20)
	}
	var m SplitManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not a split archive manifest: %w", err)
	}
	if m.MediaType != SplitMediaType {
		return nil, fmt.Errorf("not a split archive manifest: mediaType %q, want %s", m.MediaType, SplitMediaType)
	}
	if len(m.Parts) == 0 {
		return nil, errors.New("the split manifest lists no part")
	}
	if len(m.Parts) > maxParts {
		return nil, fmt.Errorf("the split manifest lists %d parts, more than %d", len(m.Parts), maxParts)
	}
	seen := map[string]bool{}
	var total int64
	for i, p := range m.Parts {
		if err := checkPartName(p.Name); err != nil {
			return nil, fmt.Errorf("the split manifest: part %d: %w", i, err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("the split manifest: part %d: %q is listed twice", i, p.Name)
		}
		seen[p.Name] = true
		if p.Size <= 0 {
			return nil, fmt.Errorf("the split manifest: part %s: size %d: a part holds at least one byte", p.Name, p.Size)
		}
		if err := p.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("the split manifest: part %s: digest %q: %w", p.Name, p.Digest, err)
		}
		if p.Digest.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("the split manifest: part %s: digest %q: only sha256 is accepted", p.Name, p.Digest)
		}
		if total > math.MaxInt64-p.Size {
			return nil, errors.New("the split manifest: the parts' sizes overflow")
		}
		total += p.Size
	}
	if total != m.Size {
		return nil, fmt.Errorf("the split manifest: the parts add up to %d bytes, not %d as listed", total, m.Size)
	}
	return &m, nil
}

// checkPartName accepts the name of a file in the manifest's own
// directory, nothing else.
func checkPartName(name string) error {
	switch {
	case name == "":
		return errors.New("an empty name")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not a file", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("name %q: a part is a file beside the manifest", name)
	case len(name) > 255:
		return errors.New("a name longer than 255 bytes")
	}
	return nil
}

// partSuffix is the suffix of a part's name: .000, .001, ...
var partSuffix = regexp.MustCompile(`\.[0-9]{3,}$`)

// SplitManifestPath tells whether path names a split archive: its
// manifest (a .json file), or one of its parts (FILE.000) whose manifest
// FILE.json is beside it. It returns the manifest's path.
func SplitManifestPath(path string) (string, bool) {
	if strings.HasSuffix(path, ".json") {
		if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() {
			return path, true
		}
		return "", false
	}
	if loc := partSuffix.FindStringIndex(path); loc != nil {
		m := path[:loc[0]] + ".json"
		if info, err := os.Stat(m); err == nil && info.Mode().IsRegular() {
			return m, true
		}
	}
	return "", false
}

// Parts is a split archive's parts, verified, read as one archive.
type Parts struct {
	Manifest *SplitManifest
	files    []*os.File
	offsets  []int64 // where each part starts in the archive
}

// OpenSplit reads the manifest at path and checks every part against it
// (size, then sha256, reading each once): a missing, short or corrupted
// part is refused by name before anything of the archive is read. The
// parts stay open: what is read afterwards is the files that were checked.
func OpenSplit(path string) (_ *Parts, err error) {
	data, err := ReadJSON(path)
	if err != nil {
		return nil, fmt.Errorf("split manifest %s: %w", filepath.Base(path), err)
	}
	m, err := ParseSplitManifest(data)
	if err != nil {
		return nil, err
	}
	p := &Parts{Manifest: m}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	dir := filepath.Dir(path)
	var off int64
	for _, part := range m.Parts {
		f, err := openPart(filepath.Join(dir, part.Name))
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", part.Name, err)
		}
		p.files = append(p.files, f)
		p.offsets = append(p.offsets, off)
		off += part.Size
		info, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", part.Name, err)
		}
		if info.Size() != part.Size {
			return nil, fmt.Errorf("part %s is %d bytes, not %d as the split manifest says: it is truncated or another file", part.Name, info.Size(), part.Size)
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, part.Size)); err != nil {
			return nil, fmt.Errorf("part %s: %w", part.Name, err)
		}
		if got := digest.NewDigest(digest.SHA256, h); got != part.Digest {
			return nil, fmt.Errorf("part %s is corrupted: its digest is %s, the split manifest says %s", part.Name, got, part.Digest)
		}
	}
	return p, nil
}

// openPart opens a regular file, not following a symlink nor waiting on a
// fifo.
func openPart(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, errors.New("a symlink, not a file")
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("missing: every part listed in the split manifest must be beside it")
	}
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("a %s, not a file", fileKind(info.Mode().Type()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Size is the archive's size.
func (p *Parts) Size() int64 { return p.Manifest.Size }

// ReadAt reads the archive across its parts.
func (p *Parts) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for len(b) > 0 {
		if off >= p.Manifest.Size {
			return n, io.EOF
		}
		i := len(p.offsets) - 1
		for i > 0 && p.offsets[i] > off {
			i--
		}
		within := off - p.offsets[i]
		chunk := b
		if rest := p.Manifest.Parts[i].Size - within; int64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		m, err := p.files[i].ReadAt(chunk, within)
		n += m
		off += int64(m)
		b = b[m:]
		if err != nil && !(errors.Is(err, io.EOF) && m == len(chunk)) {
			return n, err
		}
	}
	return n, nil
}

// Reader reads the archive from its start.
func (p *Parts) Reader() *io.SectionReader { return io.NewSectionReader(p, 0, p.Manifest.Size) }

// Close closes the parts.
func (p *Parts) Close() error {
	var errs []error
	for _, f := range p.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// PartName is the name of part i of n of the archive FILE: FILE.000, with
// as many digits as the last part needs (at least three).
func PartName(file string, i, n int) string {
	width := max(3, len(strconv.Itoa(n-1)))
	return fmt.Sprintf("%s.%0*d", file, width, i)
}

// ParseSize reads a size as --split-size takes it: bytes, or a number
// followed by K, M, G or T (powers of 1024, an optional "i" and "B"
// allowed: 4G, 4GiB, 500M).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	shift := 0
	if t != "" {
		switch strings.ToUpper(t[len(t)-1:]) {
		case "K":
			shift = 10
		case "M":
			shift = 20
		case "G":
			shift = 30
		case "T":
			shift = 40
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, or one followed by K, M, G or T", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}

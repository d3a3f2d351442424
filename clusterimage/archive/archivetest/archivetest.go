// Package archivetest makes the archives tests of hoist load need, entry by
// entry: good oci-archives, indexes and docker save tars, and anything a
// crafted archive may hold (links, devices, sparse files, names, digests).
// Tests only import it.
package archivetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Entry is one member of a test archive.
type Entry struct {
	Name string
	Type byte // a tar type flag; 0 is a regular file
	Body string
	Link string // a link's target
	// Size, when set, is the size the header claims: the archive then ends
	// inside this entry, as one cut short after a header promising more.
	Size int64
	// Sparse, when set, makes the entry a GNU sparse file (PAX format 1.0)
	// of this size, all of it a hole: an archive of a few blocks that reads
	// as that many zeros.
	Sparse int64
}

// paxRecord is one record of a PAX extended header.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	for n := len(rec); ; {
		s := strconv.Itoa(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// Tar is the archive of entries, in their order.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var paxHeaders []int // offsets of headers to turn into PAX extended headers
	for _, e := range entries {
		if e.Sparse != 0 {
			// archive/tar writes no sparse file: its PAX header is written
			// as a file, turned into one below.
			recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
				paxRecord("GNU.sparse.name", e.Name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(e.Sparse, 10))
			tw.Flush()
			paxHeaders = append(paxHeaders, buf.Len())
			if err := tw.WriteHeader(&tar.Header{Name: "PaxHeaders/" + e.Name, Typeflag: tar.TypeReg, Size: int64(len(recs)), Format: tar.FormatUSTAR}); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(recs))
			// The data: a sparse map of no fragment, in one block.
			e = Entry{Name: e.Name, Body: "0\n" + strings.Repeat("\x00", 510)}
		}
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: 0o644, Size: int64(len(e.Body)), Format: tar.FormatPAX}
		switch e.Type {
		case tar.TypeXGlobalHeader:
			h = &tar.Header{Name: e.Name, Typeflag: e.Type, PAXRecords: map[string]string{"comment": "global"}, Format: tar.FormatPAX}
		case 0:
			h.Typeflag = tar.TypeReg
		case tar.TypeDir:
			h.Mode = 0o755
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeXGlobalHeader {
			h.Size = 0
		}
		if e.Size != 0 {
			h.Size = e.Size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if e.Size != 0 {
			// The archive ends inside this entry.
			tw.Flush()
			buf.WriteString(e.Body)
			return buf.Bytes()
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	for _, off := range paxHeaders {
		block := data[off : off+512]
		block[156] = tar.TypeXHeader
		copy(block[148:156], "        ")
		sum := 0
		for _, c := range block {
			sum += int(c)
		}
		copy(block[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
	return data
}

// WriteTar writes the archive of entries to a file of t.TempDir().
func WriteTar(t testing.TB, entries ...Entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(path, Tar(t, entries...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// JSON is v encoded.
func JSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Blob is the archive entry of an OCI layout blob and its descriptor.
func Blob(mediaType, data string) (Entry, imgspecv1.Descriptor) {
	d := digest.FromString(data)
	return Entry{Name: "blobs/sha256/" + d.Encoded(), Body: data},
		imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// Layer is an uncompressed layer holding one file.
func Layer(t testing.TB, name, content string) string {
	return string(Tar(t, Entry{Name: name, Body: content}))
}

// Image is a small image for arch: its blobs (config, layer, manifest)
// and the manifest's descriptor.
func Image(t testing.TB, arch string) ([]Entry, imgspecv1.Descriptor) {
	t.Helper()
	layerEntry, layer := Blob(imgspecv1.MediaTypeImageLayer, Layer(t, "hello", "hello from "+arch+"\n"))
	config := imgspecv1.Image{
		Platform: imgspecv1.Platform{OS: "linux", Architecture: arch},
		RootFS:   imgspecv1.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}},
	}
	configEntry, configDesc := Blob(imgspecv1.MediaTypeImageConfig, JSON(t, config))
	m := imgspecv1.Manifest{MediaType: imgspecv1.MediaTypeImageManifest, Config: configDesc, Layers: []imgspecv1.Descriptor{layer}}
	m.SchemaVersion = 2
	manifestEntry, desc := Blob(imgspecv1.MediaTypeImageManifest, JSON(t, m))
	desc.Platform = &imgspecv1.Platform{OS: "linux", Architecture: arch}
	return []Entry{configEntry, layerEntry, manifestEntry}, desc
}

// IndexJSON is the index.json entry of an OCI layout listing descs.
func IndexJSON(t testing.TB, descs ...imgspecv1.Descriptor) Entry {
	t.Helper()
	idx := imgspecv1.Index{MediaType: imgspecv1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	if descs == nil {
		idx.Manifests = []imgspecv1.Descriptor{}
	}
	return Entry{Name: "index.json", Body: JSON(t, idx)}
}

// OCILayout is the oci-layout entry of an OCI layout.
var OCILayout = Entry{Name: "oci-layout", Body: `{"imageLayoutVersion":"1.0.0"}`}

// Named is desc with the name an oci-archive gives its image.
func Named(desc imgspecv1.Descriptor, name string) imgspecv1.Descriptor {
	desc.Annotations = map[string]string{imgspecv1.AnnotationRefName: name}
	return desc
}

// OCIArchive is an oci-archive of one image named name.
func OCIArchive(t testing.TB, name string) []Entry {
	t.Helper()
	blobs, desc := Image(t, "amd64")
	return append(append([]Entry{OCILayout}, blobs...), IndexJSON(t, Named(desc, name)))
}

// IndexArchive is an oci-archive of an index of two images named name, as
// hoist save writes one, with instances as the index's manifests (nil:
// the two images).
func IndexArchive(t testing.TB, name string, instances func([]imgspecv1.Descriptor) []imgspecv1.Descriptor) []Entry {
	t.Helper()
	amd, amdDesc := Image(t, "amd64")
	arm, armDesc := Image(t, "arm64")
	descs := []imgspecv1.Descriptor{amdDesc, armDesc}
	if instances != nil {
		descs = instances(descs)
	}
	idx := imgspecv1.Index{MediaType: imgspecv1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	idxEntry, idxDesc := Blob(imgspecv1.MediaTypeImageIndex, JSON(t, idx))
	entries := append([]Entry{OCILayout}, amd...)
	entries = append(entries, arm...)
	return append(entries, idxEntry, IndexJSON(t, Named(idxDesc, name)))
}

// DockerSave is a tar as docker save (before Docker 25) writes one: one
// directory per layer, and a layer repeated in the image linked to its
// first copy.
func DockerSave(t testing.TB, tag string) []Entry {
	t.Helper()
	layer := Layer(t, "hello", "hello\n")
	d := digest.FromString(layer)
	config := imgspecv1.Image{
		Platform: imgspecv1.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   imgspecv1.RootFS{Type: "layers", DiffIDs: []digest.Digest{d, d}},
	}
	configJSON := JSON(t, config)
	configName := digest.FromString(configJSON).Encoded() + ".json"
	first, second := fmt.Sprintf("%064d", 1), fmt.Sprintf("%064d", 2)
	manifest := []map[string]any{{"Config": configName, "RepoTags": []string{tag}, "Layers": []string{first + "/layer.tar", second + "/layer.tar"}}}
	return []Entry{
		{Name: first + "/", Type: tar.TypeDir},
		{Name: first + "/VERSION", Body: "1.0"},
		{Name: first + "/layer.tar", Body: layer},
		{Name: second + "/", Type: tar.TypeDir},
		{Name: second + "/VERSION", Body: "1.0"},
		{Name: second + "/layer.tar", Type: tar.TypeSymlink, Link: "../" + first + "/layer.tar"},
		{Name: configName, Body: configJSON},
		{Name: "manifest.json", Body: JSON(t, manifest)},
	}
}

// Manifest is the blob of an OCI image manifest of config and layers as
// given (they may name blobs the archive lacks), and its descriptor.
func Manifest(t testing.TB, config imgspecv1.Descriptor, layers ...imgspecv1.Descriptor) (Entry, imgspecv1.Descriptor) {
	t.Helper()
	m := imgspecv1.Manifest{MediaType: imgspecv1.MediaTypeImageManifest, Config: config, Layers: layers}
	m.SchemaVersion = 2
	if layers == nil {
		m.Layers = []imgspecv1.Descriptor{}
	}
	return Blob(imgspecv1.MediaTypeImageManifest, JSON(t, m))
}

// IndexBlob is the blob of an OCI index listing descs, and its descriptor.
func IndexBlob(t testing.TB, descs ...imgspecv1.Descriptor) (Entry, imgspecv1.Descriptor) {
	t.Helper()
	idx := imgspecv1.Index{MediaType: imgspecv1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	if descs == nil {
		idx.Manifests = []imgspecv1.Descriptor{}
	}
	return Blob(imgspecv1.MediaTypeImageIndex, JSON(t, idx))
}

// Dir writes entries as files of a directory of t.TempDir(), as an
// archive unpacks: an OCI layout directory from the entries of an
// oci-archive.
func Dir(t testing.TB, entries ...Entry) string {
	t.Helper()
	dir := t.TempDir()
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch e.Type {
		case 0, tar.TypeReg:
			err = os.WriteFile(p, []byte(e.Body), 0o644)
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(e.Link, p)
		default:
			t.Fatalf("%s: type %q is not written to a directory", e.Name, e.Type)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

package archive_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hoistdev/hoist/clusterimage/archive"
	. "github.com/hoistdev/hoist/clusterimage/archive/archivetest"
)

type archiveCase struct {
	name    string
	entries []Entry
	want    string // in the error; "" for an archive that is accepted
}

// archiveCases are the archives the check must refuse, each with what its
// error must say, and some it must accept.
func archiveCases(t testing.TB) []archiveCase {
	big := strings.Repeat("x", 4<<20+1)
	cfgEntry, cfg := Blob(imgspecv1.MediaTypeImageConfig, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layerEntry, layer := Blob(imgspecv1.MediaTypeImageLayer, Layer(t, "f", "data"))
	oneImage := func(config imgspecv1.Descriptor, layers ...imgspecv1.Descriptor) []Entry {
		m, desc := Manifest(t, config, layers...)
		return []Entry{OCILayout, cfgEntry, layerEntry, m, IndexJSON(t, Named(desc, "test/x:v1"))}
	}
	withDigest := func(d imgspecv1.Descriptor, dg digest.Digest) imgspecv1.Descriptor {
		d.Digest = dg
		return d
	}
	withSize := func(d imgspecv1.Descriptor, size int64) imgspecv1.Descriptor {
		d.Size = size
		return d
	}
	nestedIndex := func(instances ...imgspecv1.Descriptor) []Entry {
		imgs, _ := Image(t, "amd64")
		idxEntry, idx := IndexBlob(t, instances...)
		return append(append([]Entry{OCILayout}, imgs...), idxEntry, IndexJSON(t, Named(idx, "test/x:v1")))
	}
	_, amd := Image(t, "amd64")
	bigCfgEntry, bigCfg := Blob(imgspecv1.MediaTypeImageConfig, big)
	bigManifestEntry, bigManifest := Blob(imgspecv1.MediaTypeImageManifest, big)
	missing := digest.FromString("not in the archive")
	outside := "/tmp/hoist-test-outside"
	docker := DockerSave(t, "docker.io/acme/x:v1")
	dockerWith := func(manifest string, extra ...Entry) []Entry {
		entries := append([]Entry{}, docker[:len(docker)-1]...)
		return append(append(entries, extra...), Entry{Name: "manifest.json", Body: manifest})
	}
	first := fmt.Sprintf("%064d", 1)
	deep := func() []Entry {
		imgs, desc := Image(t, "amd64")
		entries := append([]Entry{OCILayout}, imgs...)
		for range 3 {
			var e Entry
			e, desc = IndexBlob(t, desc)
			entries = append(entries, e)
		}
		return append(entries, IndexJSON(t, desc))
	}
	return []archiveCase{
		// Entries that would leave the directory they are unpacked in.
		{"absolute symlink", []Entry{{Name: "esc", Type: tar.TypeSymlink, Link: outside}, {Name: "esc/file", Body: "x"}}, `archive entry "esc": a symlink to "` + outside + `"`},
		{"relative symlink out", []Entry{{Name: "a/esc", Type: tar.TypeSymlink, Link: "../../x"}, {Name: "a/esc/file", Body: "x"}}, `archive entry "a/esc": a symlink to "../../x", out of the archive`},
		{"symlink to a directory", []Entry{{Name: "d/", Type: tar.TypeDir}, {Name: "esc", Type: tar.TypeSymlink, Link: "d"}, {Name: "esc/file", Body: "x"}}, `archive entry "esc": a symlink to "d", which is not a file of the archive`},
		{"symlink with an entry below", append(OCIArchive(t, "test/x:v1"), Entry{Name: "f", Body: "x"}, Entry{Name: "esc", Type: tar.TypeSymlink, Link: "f"}, Entry{Name: "esc/file", Body: "x"}), `archive entry "esc": a symlink with an entry below it ("esc/file")`},
		{"entry below, then the symlink", append(OCIArchive(t, "test/x:v1"), Entry{Name: "f", Body: "x"}, Entry{Name: "esc/file", Body: "x"}, Entry{Name: "esc", Type: tar.TypeSymlink, Link: "f"}), `archive entry "esc": a symlink with an entry below it ("esc/file")`},
		{"symlink to nothing", append(OCIArchive(t, "test/x:v1"), Entry{Name: "l", Type: tar.TypeSymlink, Link: "none"}), `archive entry "l": a symlink to "none", which is not a file of the archive`},
		{"symlink to a symlink", append(OCIArchive(t, "test/x:v1"), Entry{Name: "f", Body: "x"}, Entry{Name: "a", Type: tar.TypeSymlink, Link: "f"}, Entry{Name: "b", Type: tar.TypeSymlink, Link: "a"}), `archive entry "b": a symlink to "a", which is not a file of the archive`},
		{"blob linked to /dev/zero", []Entry{OCILayout, {Name: "blobs/sha256/" + amd.Digest.Encoded(), Type: tar.TypeSymlink, Link: "/dev/zero"}, IndexJSON(t, amd)}, `archive entry "blobs/sha256/` + amd.Digest.Encoded() + `": a symlink (to "/dev/zero") among the blobs`},
		{"blob linked inside", []Entry{OCILayout, {Name: "m.json", Body: "{}"}, {Name: "blobs/sha256/" + amd.Digest.Encoded(), Type: tar.TypeSymlink, Link: "../../m.json"}, IndexJSON(t, amd)}, "among the blobs"},
		{"hard link out", []Entry{{Name: "hl", Type: tar.TypeLink, Link: "/etc/passwd"}}, `archive entry "hl": a hard link (to "/etc/passwd")`},
		{"hard link in", append(OCIArchive(t, "test/x:v1"), Entry{Name: "hl", Type: tar.TypeLink, Link: "index.json"}), `archive entry "hl": a hard link`},
		{"character device", []Entry{{Name: "null", Type: tar.TypeChar}}, `archive entry "null": a device`},
		{"block device", []Entry{{Name: "sda", Type: tar.TypeBlock}}, `archive entry "sda": a device`},
		{"fifo", []Entry{{Name: "pipe", Type: tar.TypeFifo}}, `archive entry "pipe": a fifo`},
		{"sparse file", []Entry{{Name: "zeros", Sparse: 1 << 40}}, `archive entry "zeros": a sparse file`},
		{"sparse blob", append(OCIArchive(t, "test/x:v1"), Entry{Name: "blobs/sha256/" + missing.Encoded(), Sparse: 1 << 40}), `a sparse file`},
		{"absolute name", []Entry{{Name: outside + "/file", Body: "x"}}, `archive entry "` + outside + `/file": an absolute name`},
		{"dot-dot name", []Entry{{Name: "../file", Body: "x"}}, `archive entry "../file": ".." in the name`},
		{"dot-dot inside a name", []Entry{{Name: "a/../../file", Body: "x"}}, `archive entry "a/../../file": ".." in the name`},
		{"dot-dot staying inside", []Entry{{Name: "a/../file", Body: "x"}}, `".." in the name`},
		// The layout's own files.
		{"two index.json", append(OCIArchive(t, "test/x:v1"), IndexJSON(t)), `archive entry "index.json": appears twice`},
		{"a file twice", []Entry{{Name: "a", Body: "1"}, {Name: "./a", Body: "2"}}, `archive entry "./a": appears twice`},
		{"index.json a directory", []Entry{{Name: "index.json/", Type: tar.TypeDir}}, `archive entry "index.json/": not a regular file`},
		{"index.json a symlink", []Entry{{Name: "i.json", Body: "{}"}, {Name: "index.json", Type: tar.TypeSymlink, Link: "i.json"}}, `archive entry "index.json": not a regular file`},
		{"huge index.json", []Entry{{Name: "index.json", Body: big}}, `archive entry "index.json": larger than 4 MiB`},
		{"huge manifest.json", []Entry{{Name: "manifest.json", Body: big}}, `archive entry "manifest.json": larger than 4 MiB`},
		{"index.json not JSON", []Entry{{Name: "index.json", Body: "not json"}}, "index.json: invalid character"},
		{"no image", []Entry{{Name: "notes.txt", Body: "hello\n"}}, "the archive holds no image: it has neither an index.json"},
		{"index.json without image", []Entry{OCILayout, IndexJSON(t)}, "the archive holds no image: index.json lists no image"},
		{"empty archive", nil, "the archive is empty"},
		// Digests and blobs of the layout.
		{"digest without colon", []Entry{OCILayout, IndexJSON(t, withDigest(amd, "sha256abc"))}, `index.json: manifest 0: digest "sha256abc": invalid checksum digest format`},
		{"short digest", []Entry{OCILayout, IndexJSON(t, withDigest(amd, "sha256:abc"))}, `index.json: manifest 0: digest "sha256:abc": invalid checksum digest length`},
		{"empty digest", []Entry{OCILayout, IndexJSON(t, withDigest(amd, ""))}, `index.json: manifest 0: digest "": invalid checksum digest format`},
		{"digest leaving", []Entry{OCILayout, IndexJSON(t, withDigest(amd, "sha256:../../../../etc/passwd"))}, `digest "sha256:../../../../etc/passwd"`},
		{"upper-case digest", []Entry{OCILayout, IndexJSON(t, withDigest(amd, digest.Digest(strings.ToUpper(amd.Digest.String()))))}, "digest \"SHA256:"},
		{"unknown algorithm", []Entry{OCILayout, IndexJSON(t, withDigest(amd, "md5:d41d8cd98f00b204e9800998ecf8427e"))}, `digest "md5:d41d8cd98f00b204e9800998ecf8427e": unsupported digest algorithm`},
		{"missing blob", []Entry{OCILayout, IndexJSON(t, withDigest(amd, missing))}, "index.json: manifest 0: blob " + missing.String() + " is not in the archive"},
		{"size mismatch", []Entry{OCILayout, layerEntry, IndexJSON(t, withSize(layer, 3))}, "is " + fmt.Sprint(layer.Size) + " bytes, not 3 as listed"},
		{"huge manifest", []Entry{OCILayout, bigManifestEntry, IndexJSON(t, bigManifest)}, bigManifest.Digest.String() + " is larger than 4 MiB"},
		{"huge config present", append(oneImage(bigCfg, layer), bigCfgEntry), bigCfg.Digest.String() + " is larger than 4 MiB"},
		{"missing layer", oneImage(cfg, layer, withDigest(layer, missing)), "layer 1: blob " + missing.String() + " is not in the archive"},
		{"short layer digest", oneImage(cfg, withDigest(layer, "sha256:abc")), `layer 0: digest "sha256:abc"`},
		{"missing config", oneImage(withDigest(cfg, missing), layer), "config: blob " + missing.String() + " is not in the archive"},
		{"manifest not JSON", func() []Entry {
			e, d := Blob(imgspecv1.MediaTypeImageManifest, "not json")
			return []Entry{OCILayout, e, IndexJSON(t, d)}
		}(), "invalid character"},
		{"index without image", nestedIndex(), "the index lists no image"},
		{"index with a short digest", nestedIndex(withDigest(amd, "sha256:abc")), `manifest 0 (linux/amd64): digest "sha256:abc"`},
		{"index without colon", nestedIndex(withDigest(amd, "sha256abc")), `digest "sha256abc"`},
		{"index with a missing image", nestedIndex(withDigest(amd, missing)), "blob " + missing.String() + " is not in the archive"},
		{"indexes nested deep", deep(), "indexes nested more than 2 deep"},
		// docker save archives.
		{"empty manifest.json", []Entry{{Name: "manifest.json", Body: "[]"}}, "the archive holds no image: manifest.json lists no image"},
		{"manifest.json not JSON", []Entry{{Name: "manifest.json", Body: "{"}}, "manifest.json: unexpected end of JSON input"},
		{"docker layer missing", dockerWith(`[{"Config":"` + docker[6].Name + `","Layers":["none/layer.tar"]}]`), `manifest.json: image 0: layer "none/layer.tar" is not a file of the archive`},
		{"docker layer absolute", dockerWith(`[{"Config":"` + docker[6].Name + `","Layers":["/etc/passwd"]}]`), `manifest.json: image 0: layer "/etc/passwd": an absolute name`},
		{"docker layer leaving", dockerWith(`[{"Config":"` + docker[6].Name + `","Layers":["../x/layer.tar"]}]`), `manifest.json: image 0: layer "../x/layer.tar": ".." in the name`},
		{"docker layer a directory", dockerWith(`[{"Config":"` + docker[6].Name + `","Layers":["` + first + `"]}]`), `layer "` + first + `" is not a file of the archive`},
		{"docker config missing", dockerWith(`[{"Config":"none.json","Layers":[]}]`), `manifest.json: image 0: config "none.json" is not a file of the archive`},
		{"docker huge config", dockerWith(`[{"Config":"big.json","Layers":[]}]`, Entry{Name: "big.json", Body: big}), `config "big.json" is larger than 4 MiB`},

		// Accepted.
		{"oci-archive", OCIArchive(t, "test/x:v1"), ""},
		{"index archive", IndexArchive(t, "test/x:v1", nil), ""},
		{"docker save", docker, ""},
		{"docker save and OCI", append(append([]Entry{}, docker...), OCIArchive(t, "test/x:v1")...), ""},
		{"names with ./", append([]Entry{{Name: "./", Type: tar.TypeDir}, {Name: "./blobs/", Type: tar.TypeDir}, {Name: "blobs/", Type: tar.TypeDir}}, OCIArchive(t, "test/x:v1")...), ""},
		{"global header", append([]Entry{{Name: "pax_global_header", Type: tar.TypeXGlobalHeader}}, OCIArchive(t, "test/x:v1")...), ""},
	}
}

func TestCheckTar(t *testing.T) {
	for _, tc := range archiveCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := archive.CheckTar(bytes.NewReader(Tar(t, tc.entries...)))
			if tc.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v\nwant one line with %s", err, tc.want)
			}
		})
	}
}

// readIndex is ReadIndex on an archive, its files read from the archive
// itself (hoist reads them from the archive unpacked).
func readIndex(r io.ReadSeeker) (*archive.Index, error) {
	return archive.ReadIndex(func(name string) ([]byte, error) {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if path.Clean(h.Name) == name && h.Typeflag == tar.TypeReg {
				if h.Size > archive.MaxJSONSize {
					return nil, fmt.Errorf("%s: too large", name)
				}
				return io.ReadAll(tr)
			}
		}
	})
}

func TestReadIndex(t *testing.T) {
	data := Tar(t, IndexArchive(t, "test/x:v1", nil)...)
	checked, err := archive.CheckTar(bytes.NewReader(data))
	if err != nil || !checked.Index {
		t.Fatalf("index archive: %+v %v", checked, err)
	}
	idx, err := readIndex(bytes.NewReader(data))
	if err != nil || idx.Name != "test/x:v1" || len(idx.Index.Manifests) != 2 {
		t.Errorf("read %+v: %v", idx, err)
	}
	if checked, err := archive.CheckTar(bytes.NewReader(Tar(t, OCIArchive(t, "test/x:v1")...))); err != nil || checked.Index {
		t.Errorf("one image: %+v, %v", checked, err)
	}
	// What ReadIndex refuses itself (hoist reads it from the unpacked
	// archive, after the check).
	instance := func(d digest.Digest) func([]imgspecv1.Descriptor) []imgspecv1.Descriptor {
		return func(descs []imgspecv1.Descriptor) []imgspecv1.Descriptor {
			descs[1].Digest = d
			return descs
		}
	}
	for name, tc := range map[string]struct {
		entries []Entry
		want    string
	}{
		"short instance digest":     {IndexArchive(t, "test/x:v1", instance("sha256:abc")), `the archive's index: manifest 1 (linux/arm64): digest "sha256:abc": invalid checksum digest length`},
		"instance digest without :": {IndexArchive(t, "test/x:v1", instance("sha256abc")), `digest "sha256abc": invalid checksum digest format`},
		"no instance":               {IndexArchive(t, "test/x:v1", func([]imgspecv1.Descriptor) []imgspecv1.Descriptor { return nil }), "lists no image"},
		"no index":                  {[]Entry{IndexJSON(t)}, "index.json lists 0 manifests, not one index"},
		"short index digest":        {[]Entry{IndexJSON(t, imgspecv1.Descriptor{Digest: "sha256:abc"})}, `index.json: digest "sha256:abc"`},
		"no name":                   {IndexArchive(t, "", nil), "the archive's index has no name"},
	} {
		if _, err := readIndex(bytes.NewReader(Tar(t, tc.entries...))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %s", name, err, tc.want)
		}
	}
}

// FuzzCheckArchive: whatever the bytes, the check of an archive, and what
// load reads itself of an index archive it accepts, neither panic nor
// accept an entry that could write outside the directory it is unpacked
// in. The seeds are the table's archives (huge ones cut short: the size in
// the header is enough to refuse them).
func FuzzCheckArchive(f *testing.F) {
	for _, tc := range archiveCases(f) {
		data := Tar(f, tc.entries...)
		if len(data) > 64<<10 {
			data = data[:64<<10]
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checked, err := archive.CheckTar(bytes.NewReader(data))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %v", err)
			}
			return
		}
		// Accepted: every entry stays inside, by another reading.
		tr := tar.NewReader(bytes.NewReader(data))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			clean := path.Clean(h.Name)
			if path.IsAbs(h.Name) || clean == ".." || strings.HasPrefix(clean, "../") || slices.Contains(strings.Split(h.Name, "/"), "..") {
				t.Errorf("accepted the entry %q", h.Name)
			}
			switch h.Typeflag {
			case tar.TypeReg, tar.TypeDir, tar.TypeXGlobalHeader:
			case tar.TypeSymlink:
				target := path.Join(path.Dir(clean), h.Linkname)
				if path.IsAbs(h.Linkname) || target == ".." || strings.HasPrefix(target, "../") || strings.HasPrefix(clean, "blobs/") {
					t.Errorf("accepted the symlink %q -> %q", h.Name, h.Linkname)
				}
			default:
				t.Errorf("accepted %q of type %q", h.Name, h.Typeflag)
			}
		}
		if checked.Index {
			if _, err := readIndex(bytes.NewReader(data)); err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %v", err)
			}
		}
	})
}

// TestCheckLayoutDir: what a layout directory holds under blobs/ is files,
// and its JSON is read through the size limit.
func TestCheckLayoutDir(t *testing.T) {
	layout := func(t *testing.T) (string, string) {
		t.Helper()
		dir := Dir(t, OCIArchive(t, "test/x:v1")...)
		var idx imgspecv1.Index
		data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
		if err := json.Unmarshal(data, &idx); err != nil {
			t.Fatal(err)
		}
		return dir, "blobs/sha256/" + idx.Manifests[0].Digest.Encoded()
	}
	replace := func(t *testing.T, p string, with func(string) error) {
		t.Helper()
		os.Remove(p)
		if err := with(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, dir, manifest string)
		want  string // "manifest" for the manifest's name
	}{
		{"good", func(*testing.T, string, string) {}, ""},
		{"blob linked to /dev/zero", func(t *testing.T, dir, m string) {
			replace(t, filepath.Join(dir, m), func(p string) error { return os.Symlink("/dev/zero", p) })
		}, `layout entry "manifest": a symlink among the blobs`},
		{"blob linked inside", func(t *testing.T, dir, m string) {
			os.Rename(filepath.Join(dir, m), filepath.Join(dir, "m.json"))
			os.Symlink("../../m.json", filepath.Join(dir, m))
		}, `layout entry "manifest": a symlink among the blobs`},
		{"blob a fifo", func(t *testing.T, dir, m string) {
			replace(t, filepath.Join(dir, m), func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}, `layout entry "manifest": a fifo among the blobs`},
		{"blobs linked elsewhere", func(t *testing.T, dir, _ string) {
			elsewhere := t.TempDir()
			os.Rename(filepath.Join(dir, "blobs"), filepath.Join(elsewhere, "blobs"))
			os.Symlink(filepath.Join(elsewhere, "blobs"), filepath.Join(dir, "blobs"))
		}, `layout entry "blobs": not a directory`},
		{"index.json linked to /dev/zero", func(t *testing.T, dir, _ string) {
			replace(t, filepath.Join(dir, "index.json"), func(p string) error { return os.Symlink("/dev/zero", p) })
		}, `layout entry "index.json": a symlink, not a file`},
		{"index.json a fifo", func(t *testing.T, dir, _ string) {
			replace(t, filepath.Join(dir, "index.json"), func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}, `layout entry "index.json": a fifo, not a file`},
		{"oci-layout linked to /dev/zero", func(t *testing.T, dir, _ string) {
			replace(t, filepath.Join(dir, "oci-layout"), func(p string) error { return os.Symlink("/dev/zero", p) })
		}, `layout entry "oci-layout": a symlink, not a file`},
		{"huge index.json", func(t *testing.T, dir, _ string) {
			os.WriteFile(filepath.Join(dir, "index.json"), []byte(strings.Repeat(" ", 4<<20+1)), 0o644)
		}, `layout entry "index.json": larger than 4 MiB`},
		{"no index.json", func(t *testing.T, dir, _ string) {
			os.Remove(filepath.Join(dir, "index.json"))
		}, "the directory holds no image: it has no index.json"},
		{"missing blob", func(t *testing.T, dir, m string) {
			os.Remove(filepath.Join(dir, m))
		}, "is not in the layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, manifest := layout(t)
			tc.spoil(t, dir, manifest)
			_, err := archive.CheckLayoutDir(dir)
			want := strings.ReplaceAll(tc.want, "manifest", manifest)
			if tc.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
}

// TestCheckTarFiles: the check records where each regular file's data is
// in the archive, PAX headers and long names included: what load reads in
// place.
func TestCheckTarFiles(t *testing.T) {
	entries := OCIArchive(t, "test/files:v1")
	long := "blobs/sha256/" + strings.Repeat("x", 200)
	entries = append(entries, Entry{Name: long, Body: "after a long name"})
	data := Tar(t, entries...)
	checked, err := archive.CheckTar(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type != 0 && e.Type != tar.TypeReg {
			continue
		}
		sec, ok := checked.Files[e.Name]
		if !ok {
			t.Errorf("%s: not listed", e.Name)
			continue
		}
		if got := string(data[sec.Offset : sec.Offset+sec.Size]); got != e.Body {
			t.Errorf("%s: the section at %d holds %.40q, not its data", e.Name, sec.Offset, got)
		}
	}
}

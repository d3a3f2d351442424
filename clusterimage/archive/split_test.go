package archive_test

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hoistdev/hoist/clusterimage/archive"
	. "github.com/hoistdev/hoist/clusterimage/archive/archivetest"
)

func splitJSON(t testing.TB, size int64, parts ...archive.Part) string {
	return JSON(t, archive.SplitManifest{MediaType: archive.SplitMediaType, Size: size, Parts: parts})
}

// splitCases are split manifests the parser must refuse, each with what
// its error must say, and good ones ("").
func splitCases(t testing.TB) []struct{ name, data, want string } {
	d := digest.FromString("part")
	part := func(name string, size int64) archive.Part { return archive.Part{Name: name, Size: size, Digest: d} }
	return []struct{ name, data, want string }{
		{"good", splitJSON(t, 3, part("x.tar.000", 1), part("x.tar.001", 2)), ""},
		{"not JSON", "x.tar.000\n", "not a split archive manifest"},
		{"other JSON", `{"mediaType":"application/vnd.oci.image.index.v1+json"}`, `mediaType "application/vnd.oci.image.index.v1+json"`},
		{"no part", splitJSON(t, 0), "lists no part"},
		{"path", splitJSON(t, 1, part("../x.tar.000", 1)), "a part is a file beside the manifest"},
		{"absolute", splitJSON(t, 1, part("/etc/passwd", 1)), "a part is a file beside the manifest"},
		{"dot dot", splitJSON(t, 1, part("..", 1)), `name ".." is not a file`},
		{"empty name", splitJSON(t, 1, part("", 1)), "an empty name"},
		{"NUL", splitJSON(t, 1, part("x\x00", 1)), "a part is a file beside the manifest"},
		{"long name", splitJSON(t, 1, part(strings.Repeat("x", 256), 1)), "longer than 255 bytes"},
		{"twice", splitJSON(t, 2, part("x.tar.000", 1), part("x.tar.000", 1)), `"x.tar.000" is listed twice`},
		{"empty part", splitJSON(t, 0, part("x.tar.000", 0)), "a part holds at least one byte"},
		{"negative size", splitJSON(t, -1, part("x.tar.000", -1)), "a part holds at least one byte"},
		{"bad digest", splitJSON(t, 1, archive.Part{Name: "x.tar.000", Size: 1, Digest: "sha256:abc"}), "invalid checksum digest length"},
		{"no digest", splitJSON(t, 1, archive.Part{Name: "x.tar.000", Size: 1}), `digest ""`},
		{"sha512", splitJSON(t, 1, archive.Part{Name: "x.tar.000", Size: 1, Digest: digest.Digest("sha512:" + strings.Repeat("a", 128))}), `digest "sha512:`},
		{"sha384", splitJSON(t, 1, archive.Part{Name: "x.tar.000", Size: 1, Digest: digest.Digest("sha384:" + strings.Repeat("a", 96))}), `digest "sha384:`},
		{"total", splitJSON(t, 5, part("x.tar.000", 1), part("x.tar.001", 2)), "add up to 3 bytes, not 5"},
		{"overflow", splitJSON(t, 1, part("x.tar.000", math.MaxInt64), part("x.tar.001", 2)), "overflow"},
		{"huge", `{"mediaType":"` + strings.Repeat("x", archive.MaxJSONSize) + `"}`, "larger than 4 MiB"},
	}
}

func TestParseSplitManifest(t *testing.T) {
	for _, tc := range splitCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := archive.ParseSplitManifest([]byte(tc.data))
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

// FuzzParseSplitManifest: whatever the bytes, an accepted manifest names
// files beside it only, each once, with sha256 digests, adding up.
func FuzzParseSplitManifest(f *testing.F) {
	for _, tc := range splitCases(f) {
		if len(tc.data) < 64<<10 {
			f.Add([]byte(tc.data))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := archive.ParseSplitManifest(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %v", err)
			}
			return
		}
		var total int64
		seen := map[string]bool{}
		for _, p := range m.Parts {
			if p.Name == "" || p.Name == "." || p.Name == ".." || strings.ContainsAny(p.Name, "/\x00") || seen[p.Name] {
				t.Errorf("accepted the part name %q", p.Name)
			}
			seen[p.Name] = true
			if p.Size <= 0 || p.Digest.Algorithm() != digest.SHA256 || p.Digest.Validate() != nil {
				t.Errorf("accepted the part %+v", p)
			}
			total += p.Size
		}
		if total != m.Size || len(m.Parts) == 0 {
			t.Errorf("accepted %d parts adding up to %d for %d", len(m.Parts), total, m.Size)
		}
	})
}

// writeParts cuts data into parts of size bytes beside a manifest.
func writeParts(t *testing.T, data []byte, size int) string {
	t.Helper()
	dir := t.TempDir()
	var parts []archive.Part
	n := (len(data) + size - 1) / size
	for i := 0; i < n; i++ {
		chunk := data[i*size : min(len(data), (i+1)*size)]
		name := filepath.Base(archive.PartName("x.tar", i, n))
		if err := os.WriteFile(filepath.Join(dir, name), chunk, 0o644); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, archive.Part{Name: name, Size: int64(len(chunk)), Digest: digest.FromBytes(chunk)})
	}
	manifest := filepath.Join(dir, "x.tar.json")
	os.WriteFile(manifest, []byte(splitJSON(t, int64(len(data)), parts...)), 0o644)
	return manifest
}

// TestOpenSplit: the parts read as the archive they were cut from, across
// every boundary; a part that is not the one listed is refused by name.
func TestOpenSplit(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100)
	manifest := writeParts(t, data, 333)
	p, err := archive.OpenSplit(manifest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(p.Reader())
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	buf := make([]byte, 700)
	if n, err := p.ReadAt(buf, 300); err != nil || n != 700 || !bytes.Equal(buf, data[300:1000]) {
		t.Errorf("ReadAt across parts: %d %v", n, err)
	}
	if n, err := p.ReadAt(buf, int64(len(data))-10); err != io.EOF || n != 10 {
		t.Errorf("ReadAt at the end: %d %v", n, err)
	}
	p.Close()

	if got, ok := archive.SplitManifestPath(filepath.Join(filepath.Dir(manifest), "x.tar.000")); !ok || got != manifest {
		t.Errorf("the first part leads to %q %v", got, ok)
	}
	if _, ok := archive.SplitManifestPath(filepath.Join(t.TempDir(), "y.tar.000")); ok {
		t.Errorf("a part without a manifest is a split archive")
	}

	for _, tc := range []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"corrupted", func(dir string) {
			os.WriteFile(filepath.Join(dir, "x.tar.002"), bytes.Repeat([]byte("x"), 333), 0o644)
		}, "part x.tar.002 is corrupted: its digest is sha256:"},
		{"short", func(dir string) { os.Truncate(filepath.Join(dir, "x.tar.001"), 5) }, "part x.tar.001 is 5 bytes, not 333"},
		{"missing", func(dir string) { os.Remove(filepath.Join(dir, "x.tar.004")) }, "part x.tar.004: missing"},
		{"fifo", func(dir string) {
			os.Remove(filepath.Join(dir, "x.tar.000"))
			mkfifo(t, filepath.Join(dir, "x.tar.000"))
		}, "part x.tar.000: a fifo, not a file"},
		{"manifest a symlink", func(dir string) {
			os.Rename(filepath.Join(dir, "x.tar.json"), filepath.Join(dir, "real.json"))
			os.Symlink("real.json", filepath.Join(dir, "x.tar.json"))
		}, "split manifest x.tar.json: a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			manifest := writeParts(t, data, 333)
			tc.change(filepath.Dir(manifest))
			if _, err := archive.OpenSplit(manifest); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestPartName(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		want string
	}{{0, 1, "x.000"}, {12, 13, "x.012"}, {5, 1001, "x.0005"}} {
		if got := archive.PartName("x", tc.i, tc.n); got != tc.want {
			t.Errorf("PartName(%d, %d) = %s, want %s", tc.i, tc.n, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "4GiB": 4 << 30, "4GB": 4 << 30, "500m": 500 << 20, "1024": 1024, "1K": 1024, "2T": 2 << 40} {
		if got, err := archive.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d %v, want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"": "want a positive number", "0": "want a positive", "-1G": "want a positive", "4X": "want a positive", "G": "want a positive", "99999999999T": "too large", "1.5G": "want a positive"} {
		if _, err := archive.ParseSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSize(%q): %v, want %s", in, err, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4G", "4GiB", "1", "", "99999999999T", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := archive.ParseSize(s); err == nil && n <= 0 {
			t.Errorf("ParseSize(%q) = %d", s, n)
		}
	})
}

func differentialJSON(t testing.TB, base archive.Base, omitted ...archive.OmittedLayer) string {
	return JSON(t, archive.Differential{MediaType: archive.DifferentialMediaType, Base: base, Omitted: omitted})
}

var baseID = strings.Repeat("ab", 32)

func deltaJSON(t testing.TB, base archive.Base, omitted []archive.OmittedLayer, deltas ...archive.DeltaLayer) string {
	return JSON(t, archive.Differential{MediaType: archive.DifferentialMediaType, Base: base, Omitted: omitted, Deltas: deltas})
}

func differentialCases(t testing.TB) []struct{ name, data, want string } {
	layer := archive.OmittedLayer{Digest: digest.FromString("layer"), Size: 10}
	base := archive.Base{Name: "localhost/old:v1", ID: baseID}
	blob := imgspecv1.Descriptor{MediaType: archive.DeltaMediaType + "+zstd", Digest: digest.FromString("delta"), Size: 5}
	delta := archive.DeltaLayer{Digest: digest.FromString("new layer"), Size: 100, Delta: blob}
	withDelta := func(f func(*archive.DeltaLayer)) string {
		d := delta
		f(&d)
		return deltaJSON(t, base, nil, d)
	}
	return []struct{ name, data, want string }{
		{"good", differentialJSON(t, base, layer), ""},
		{"delta only", deltaJSON(t, base, nil, delta), ""},
		{"omitted and delta", deltaJSON(t, base, []archive.OmittedLayer{layer}, delta), ""},
		{"delta also omitted", deltaJSON(t, base, []archive.OmittedLayer{{Digest: delta.Digest, Size: 100}}, delta), "listed twice"},
		{"delta twice", deltaJSON(t, base, nil, delta, delta), "listed twice"},
		{"delta's layer digest", withDelta(func(d *archive.DeltaLayer) { d.Digest = "sha256:zz" }), `delta layer 0: digest "sha256:zz"`},
		{"delta's size", withDelta(func(d *archive.DeltaLayer) { d.Size = -2 }), "negative size"},
		{"delta's blob digest", withDelta(func(d *archive.DeltaLayer) { d.Delta.Digest = "md5:x" }), `the delta's digest "md5:x"`},
		{"delta's media type", withDelta(func(d *archive.DeltaLayer) { d.Delta.MediaType = imgspecv1.MediaTypeImageLayer }), "want " + archive.DeltaMediaType},
		{"not JSON", "old", "hoist-differential.json: invalid character"},
		{"media type", `{"mediaType":"x"}`, `mediaType "x"`},
		{"short ID", differentialJSON(t, archive.Base{ID: "abc"}, layer), `base image ID "abc"`},
		{"ID with a prefix", differentialJSON(t, archive.Base{ID: "sha256:" + baseID}, layer), "want 64 lowercase hexadecimal digits"},
		{"name with a newline", differentialJSON(t, archive.Base{Name: "a\nb", ID: baseID}, layer), "a control character"},
		{"long name", differentialJSON(t, archive.Base{Name: strings.Repeat("n", 1025), ID: baseID}, layer), "longer than 1024 bytes"},
		{"nothing omitted", differentialJSON(t, base), "lists no omitted layer"},
		{"bad digest", differentialJSON(t, base, archive.OmittedLayer{Digest: "sha256:12"}), "invalid checksum digest length"},
		{"negative size", differentialJSON(t, base, archive.OmittedLayer{Digest: layer.Digest, Size: -1}), "negative size"},
		{"twice", differentialJSON(t, base, layer, layer), "listed twice"},
	}
}

func TestParseDifferential(t *testing.T) {
	for _, tc := range differentialCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := archive.ParseDifferential([]byte(tc.data))
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

// FuzzParseDifferential: an accepted document names a base by a valid ID,
// printable, and omitted layers by valid digests, each once.
func FuzzParseDifferential(f *testing.F) {
	for _, tc := range differentialCases(f) {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := archive.ParseDifferential(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %v", err)
			}
			return
		}
		if len(d.Base.ID) != 64 || strings.ContainsAny(d.Base.Name, "\n\r\x1b") || len(d.Omitted)+len(d.Deltas) == 0 {
			t.Errorf("accepted %+v", d)
		}
		seen := map[digest.Digest]bool{}
		for _, l := range d.Omitted {
			if l.Digest.Validate() != nil || l.Size < 0 || seen[l.Digest] {
				t.Errorf("accepted the omitted layer %+v", l)
			}
			seen[l.Digest] = true
		}
		for _, l := range d.Deltas {
			_, known := archive.DeltaCompression(l.Delta.MediaType)
			if l.Digest.Validate() != nil || l.Size < 0 || seen[l.Digest] || l.Delta.Digest.Validate() != nil || !known {
				t.Errorf("accepted the delta layer %+v", l)
			}
			seen[l.Digest] = true
		}
	})
}

// TestCheckDifferential: a differential archive may lack the layers its
// hoist-differential.json lists, with the size the manifest gives them,
// and nothing else: not a config, not another layer.
func TestCheckDifferential(t *testing.T) {
	cfgEntry, cfg := Blob(imgspecv1.MediaTypeImageConfig, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layerEntry, layer := Blob(imgspecv1.MediaTypeImageLayer, Layer(t, "f", "data"))
	_, absent := Blob(imgspecv1.MediaTypeImageLayer, Layer(t, "g", "old data"))
	m, desc := Manifest(t, cfg, absent, layer)
	diffFile := func(omitted ...archive.OmittedLayer) Entry {
		return Entry{Name: archive.DifferentialFile, Body: differentialJSON(t, archive.Base{Name: "old", ID: baseID}, omitted...)}
	}
	entries := func(extra ...Entry) []Entry {
		return append([]Entry{OCILayout, cfgEntry, layerEntry, m, IndexJSON(t, Named(desc, "test/x:v1"))}, extra...)
	}
	omitted := archive.OmittedLayer{Digest: absent.Digest, Size: absent.Size}
	deltaEntry, deltaBlob := Blob(archive.DeltaMediaType, "hoist-delta-v1\nE")
	deltaFile := func(blob imgspecv1.Descriptor) Entry {
		return Entry{Name: archive.DifferentialFile, Body: deltaJSON(t, archive.Base{Name: "old", ID: baseID}, nil, archive.DeltaLayer{Digest: absent.Digest, Size: absent.Size, Delta: blob})}
	}
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"listed", entries(diffFile(omitted)), ""},
		{"not differential", entries(), "layer 0: blob " + string(absent.Digest) + " is not in the archive"},
		{"other layer listed", entries(diffFile(archive.OmittedLayer{Digest: digest.FromString("x"), Size: 1})), "is not in the archive"},
		{"other size", entries(diffFile(archive.OmittedLayer{Digest: absent.Digest, Size: absent.Size + 1})), "is not in the archive"},
		{"config listed", []Entry{OCILayout, layerEntry, m, IndexJSON(t, Named(desc, "test/x:v1")), diffFile(omitted, archive.OmittedLayer{Digest: cfg.Digest, Size: cfg.Size})}, "config: blob " + string(cfg.Digest) + " is not in the archive"},
		{"bad file", entries(Entry{Name: archive.DifferentialFile, Body: "{"}), archive.DifferentialFile + ": unexpected end of JSON input"},
		{"huge file", entries(Entry{Name: archive.DifferentialFile, Body: strings.Repeat(" ", archive.MaxJSONSize+1)}), "larger than 4 MiB"},
		{"with docker save", append(DockerSave(t, "docker.io/acme/x:v1"), diffFile(omitted)), "a differential archive is an oci-archive"},
		{"delta held", entries(deltaFile(deltaBlob), deltaEntry), ""},
		{"delta not held", entries(deltaFile(deltaBlob)), archive.DifferentialFile + ": delta layer " + string(absent.Digest) + ": blob " + string(deltaBlob.Digest) + " is not in the archive"},
		{"delta of another size", entries(deltaFile(imgspecv1.Descriptor{MediaType: deltaBlob.MediaType, Digest: deltaBlob.Digest, Size: 1}), deltaEntry), "is 16 bytes, not 1 as listed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checked, err := archive.CheckTar(bytes.NewReader(Tar(t, tc.entries...)))
			if tc.want == "" {
				if err != nil || checked.Differential == nil || checked.Differential.Base.ID != baseID {
					t.Errorf("refused: %v %+v", err, checked)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

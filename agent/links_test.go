package agent

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// registryTree makes a rootfs holding the blobs of contents in the
// Distribution layout, and a small file outside registry/; it returns the
// tree and the blobs' hex digests.
func registryTree(t *testing.T, contents ...[]byte) (string, []string) {
	t.Helper()
	dir := makeTree(t, map[string]string{"etc/kubeadm.yaml": "kind: ClusterConfiguration\n", "current": "->etc/kubeadm.yaml"})
	var hexes []string
	for _, c := range contents {
		sum := sha256.Sum256(c)
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, BlobPath(h))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
		hexes = append(hexes, h)
	}
	return dir, hexes
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// without is the stream of packed (segments segs) leaving out the blobs
// in link, preceded by their LinkFrame: what apply sends.
func without(packed []byte, segs []Segment, link map[string]bool) []byte {
	var linked []Segment
	var body []byte
	for _, s := range segs {
		if s.Blob != "" && link[s.Key()] {
			linked = append(linked, s)
			continue
		}
		body = append(body, packed[s.Offset:s.Offset+s.Length]...)
	}
	return append(LinkFrame(linked), body...)
}

func packSegments(t *testing.T, dir string) ([]byte, []Segment) {
	t.Helper()
	var b bytes.Buffer
	segs, err := PackSegments(&b, dir)
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), segs
}

// sameTree fails unless the trees at want and got hold the same names,
// types, permission bits, contents and link targets (the Marker aside).
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	list := func(dir string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == Marker {
				return nil
			}
			info, _ := d.Info()
			desc := info.Mode().String()
			switch {
			case info.Mode().IsRegular():
				data, _ := os.ReadFile(p)
				sum := sha256.Sum256(data)
				desc += " " + hex.EncodeToString(sum[:])
			case info.Mode()&fs.ModeSymlink != 0:
				link, _ := os.Readlink(p)
				desc += " -> " + link
			}
			m[rel] = desc
			return nil
		})
		return m
	}
	w, g := list(want), list(got)
	for name, d := range w {
		if g[name] != d {
			t.Errorf("%s: %q, want %q", name, g[name], d)
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s: not in the tree sent", name)
		}
	}
}

// TestPackSegments: every blob is a segment of its own, of its size and
// mode; segments tile the stream, which is what Pack writes.
func TestPackSegments(t *testing.T) {
	src, hexes := registryTree(t, randomBytes(100<<10), []byte("config"), randomBytes(3000))
	os.Chmod(filepath.Join(src, BlobPath(hexes[1])), 0o600)
	packed, segs := packSegments(t, src)
	var at int64
	blobs := map[string]Segment{}
	for _, s := range segs {
		if s.Offset != at || s.Length <= 0 {
			t.Fatalf("segment %+v at %d", s, at)
		}
		if crc := crc32.Checksum(packed[s.Offset:s.Offset+s.Length], CRCTable); crc != s.CRC {
			t.Errorf("segment %+v: CRC %08x", s, crc)
		}
		at += s.Length
		if s.Blob != "" {
			blobs[s.Blob] = s
		}
	}
	if at != int64(len(packed)) || len(blobs) != 3 || segs[len(segs)-1].Blob != "" {
		t.Fatalf("segments %+v of a %d-byte stream", segs, len(packed))
	}
	if b := blobs[hexes[0]]; b.Size != 100<<10 || b.Mode != 0o644 {
		t.Errorf("blob 0: %+v", b)
	}
	if b := blobs[hexes[1]]; b.Size != 6 || b.Mode != 0o600 {
		t.Errorf("blob 1: %+v", b)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(bytes.NewReader(packed), dest, "sha256:v1", sum(packed)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dest)
}

// TestUnpackLinks: a stream without the blobs the tree in place holds
// makes the same tree as the whole stream; a blob there that is not what
// its name says, or missing, or also in the stream, fails the unpack and
// leaves the tree in place as it was.
func TestUnpackLinks(t *testing.T) {
	shared, changed := randomBytes(200<<10), randomBytes(50<<10)
	v1, h1 := registryTree(t, shared, []byte("config-v1"), randomBytes(10<<10))
	v2, h2 := registryTree(t, shared, []byte("config-v2"), changed)
	os.WriteFile(filepath.Join(v2, "etc/kubeadm.yaml"), []byte("v2"), 0o600)
	p1, _ := packSegments(t, v1)
	p2, segs2 := packSegments(t, v2)
	dest := filepath.Join(t.TempDir(), "rootfs")
	unpack := func(stream []byte, digest string) error {
		return Unpack(bytes.NewReader(stream), dest, digest, sum(stream))
	}
	if err := unpack(p1, "sha256:v1"); err != nil {
		t.Fatal(err)
	}
	sharedBlob := filepath.Join(dest, BlobPath(h1[0]))

	// Also sent: refused, and the tree in place keeps its blob whole.
	var sharedSeg Segment
	for _, s := range segs2 {
		if s.Blob == h2[0] {
			sharedSeg = s
		}
	}
	both := append(LinkFrame([]Segment{sharedSeg}), p2...)
	if err := unpack(both, "sha256:v2"); err == nil || !strings.Contains(err.Error(), "both sent and to be linked") {
		t.Errorf("a blob sent and linked: %v", err)
	}
	if data, _ := os.ReadFile(sharedBlob); !bytes.Equal(data, shared) || Digest(dest) != "sha256:v1" {
		t.Fatalf("a refused unpack changed the tree in place (marker %q)", Digest(dest))
	}

	// Not in the tree in place.
	if err := unpack(without(p2, segs2, map[string]bool{h2[2]: true}), "sha256:v2"); err == nil || !strings.Contains(err.Error(), h2[2]) {
		t.Errorf("a blob the tree lacks: %v", err)
	}

	// Corrupted in place, same size: found by its digest.
	bad := bytes.Clone(shared)
	bad[1000] ^= 1
	os.WriteFile(sharedBlob, bad, 0o644)
	delta := without(p2, segs2, map[string]bool{h2[0]: true})
	if err := unpack(delta, "sha256:v2"); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("a corrupted blob linked: %v", err)
	}
	if Digest(dest) != "sha256:v1" {
		t.Fatalf("marker %q after a refused unpack", Digest(dest))
	}
	os.WriteFile(sharedBlob, shared, 0o644)

	// The list of links is covered by the stream's digest.
	tampered := bytes.Clone(delta)
	copy(tampered[8+len(linksHeader)+1:], h2[1][:8])
	if err := Unpack(bytes.NewReader(tampered), dest, "sha256:v2", sum(delta)); err == nil {
		t.Error("a stream whose list of links was changed is unpacked")
	}

	if len(delta) >= len(p2)-len(shared) {
		t.Errorf("the stream without the shared blob is %d bytes, the whole %d", len(delta), len(p2))
	}
	// A name of the blob in place outlives the old tree: the new tree's
	// blob must be that file, linked, not a copy.
	keep := filepath.Join(filepath.Dir(dest), "keep")
	if err := os.Link(sharedBlob, keep); err != nil {
		t.Fatal(err)
	}
	if err := unpack(delta, "sha256:v2"); err != nil {
		t.Fatal(err)
	}
	sameTree(t, v2, dest)
	kept, _ := os.Stat(keep)
	if linked, err := os.Stat(filepath.Join(dest, BlobPath(h2[0]))); err != nil || !os.SameFile(kept, linked) {
		t.Errorf("the shared blob was not linked from the tree in place: %v", err)
	}
	if Digest(dest) != "sha256:v2" {
		t.Errorf("marker %q", Digest(dest))
	}
}

// TestBlobsCmd: the node answers with the blobs asked about that its tree
// holds as regular files of the size asked, in a form ParseHeldBlobs
// takes; a tree that is not there holds none.
func TestBlobsCmd(t *testing.T) {
	dir, hexes := registryTree(t, []byte("one"), []byte("two"), []byte("three"))
	os.Remove(filepath.Join(dir, BlobPath(hexes[2])))
	os.Symlink("../../"+hexes[0][:2]+"/"+hexes[0]+"/data", filepath.Join(dir, BlobPath(hexes[2])))
	absent := strings.Repeat("a", 64)
	req := BlobRequest([]Segment{{Blob: hexes[0], Size: 3}, {Blob: hexes[1], Size: 99}, {Blob: hexes[2], Size: 5}, {Blob: absent, Size: 1}})
	var out bytes.Buffer
	if err := (BlobsCmd{Rootfs: dir}).Run(bytes.NewReader(req), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != hexes[0]+"\n" {
		t.Errorf("answer %q, want only the first blob", out.String())
	}
	asked := map[string]bool{hexes[0]: true, hexes[1]: true}
	if held, err := ParseHeldBlobs(out.Bytes(), asked); err != nil || len(held) != 1 || !held[hexes[0]] {
		t.Errorf("parsed %v, %v", held, err)
	}
	out.Reset()
	if err := (BlobsCmd{Rootfs: filepath.Join(dir, "none")}).Run(bytes.NewReader(req), &out); err != nil || out.Len() != 0 {
		t.Errorf("a missing tree: %q, %v", out.String(), err)
	}
	if err := (BlobsCmd{Rootfs: dir}).Run(strings.NewReader("zz 1 644\n"), &out); err == nil {
		t.Error("a bad request is answered")
	}
}

func TestParseHeldBlobs(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	asked := map[string]bool{a: true, b: true}
	for _, bad := range []string{
		a,                              // no newline
		a + "\n" + a + "\n",            // twice
		strings.Repeat("c", 64) + "\n", // not asked
		strings.ToUpper(a) + "\n",      // not lower-case hex
		a + " 12\n",                    // more than a digest
		"\n",                           // an empty line
		a + "\n\n",                     // an empty line
		"sha256:" + a + "\n",           // with the algorithm
		a + "\r\n",                     // a CR
		strings.Repeat("a", 63) + "\n" + b + "\n", // short
	} {
		if held, err := ParseHeldBlobs([]byte(bad), asked); err == nil {
			t.Errorf("%q parsed as %v", bad, held)
		}
	}
	if held, err := ParseHeldBlobs([]byte(b+"\n"+a+"\n"), asked); err != nil || len(held) != 2 {
		t.Errorf("%v %v", held, err)
	}
}

// FuzzParseHeldBlobs: whatever a node answers, what is accepted is a set
// of keys asked about (digests, quoted paths), each on its own line of the
// answer.
func FuzzParseHeldBlobs(f *testing.F) {
	a, b, file := strings.Repeat("a", 64), strings.Repeat("0", 64), `"usr/bin/kubelet"`
	f.Add([]byte(a + "\n"))
	f.Add([]byte(a + "\n" + b + "\n"))
	f.Add([]byte(""))
	f.Add([]byte(a + "\n" + a + "\n"))
	f.Add([]byte(file + "\n" + a + "\n"))
	f.Add([]byte("usr/bin/kubelet\n"))
	asked := map[string]bool{a: true, b: true, file: true}
	f.Fuzz(func(t *testing.T, answer []byte) {
		held, err := ParseHeldBlobs(answer, asked)
		if err != nil {
			return
		}
		size := 0
		for h := range held {
			if !asked[h] || !bytes.Contains(answer, []byte(h+"\n")) {
				t.Fatalf("accepted %q from %q", h, answer)
			}
			size += len(h) + 1
		}
		if len(answer) != size {
			t.Fatalf("accepted %v from %d bytes", held, len(answer))
		}
	})
}

// FuzzParseLinks: a list accepted is one LinkFrame writes again the same.
func FuzzParseLinks(f *testing.F) {
	f.Add([]byte(linksHeader + "\n" + strings.Repeat("a", 64) + " 12 644\n"))
	f.Add([]byte(linksHeader + "\n"))
	f.Add([]byte(linksHeader + "\n" + strings.Repeat("a", 64) + " 012 0644\n"))
	for _, tc := range linkCases {
		f.Add([]byte(linksHeader + "\n" + tc.line + "\n"))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		links, err := parseLinks(payload)
		if err != nil {
			return
		}
		if again := LinkFrame(links)[8:]; !bytes.Equal(again, payload) {
			t.Fatalf("%q read as %+v, written %q", payload, links, again)
		}
	})
}

var hexA = strings.Repeat("a", 64)

// linkCases are lines of a LinkFrame, good ("") or refused with what the
// error says.
var linkCases = []struct{ name, line, want string }{
	{"blob", hexA + " 12 644", ""},
	{"file", hexA + ` 2097152 755 "usr/bin/kubelet"`, ""},
	{"file with a space", hexA + ` 5 644 "charts/my chart.tgz"`, ""},
	{"file with an escape", hexA + ` 5 644 "a\tb"`, ""},
	{"unquoted path", hexA + " 5 644 usr/bin/kubelet", "want a clean relative path"},
	{"other quoting", hexA + " 5 644 `usr/bin/kubelet`", "want a clean relative path"},
	{"parent", hexA + ` 5 644 "../etc/shadow"`, "want a clean relative path"},
	{"absolute", hexA + ` 5 644 "/etc/shadow"`, "want a clean relative path"},
	{"not clean", hexA + ` 5 644 "usr//bin"`, "want a clean relative path"},
	{"dot", hexA + ` 5 644 "."`, "want a clean relative path"},
	{"a registry blob's path", hexA + ` 5 644 "registry/docker/registry/v2/blobs/sha256/aa/` + hexA + `/data"`, "outside the registry's blobs"},
	{"the marker", hexA + ` 5 644 ".hoist-digest"`, "want a clean relative path"},
	{"a newline", hexA + ` 5 644 "a\nb"`, "want a clean relative path"},
	{"no digest", `x 5 644 "usr/bin/kubelet"`, "want a new <sha256 hex>"},
	{"bad size", hexA + ` -5 644 "usr/bin/kubelet"`, "bad size"},
}

func TestParseLinksFiles(t *testing.T) {
	for _, tc := range linkCases {
		t.Run(tc.name, func(t *testing.T) {
			links, err := parseLinks([]byte(linksHeader + "\n" + tc.line + "\n"))
			if tc.want == "" {
				if err != nil || len(links) != 1 {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
	// Two files of the same content are two links; a path twice is not.
	two := linksHeader + "\n" + hexA + ` 5 644 "a"` + "\n" + hexA + ` 5 644 "b"` + "\n"
	if links, err := parseLinks([]byte(two)); err != nil || len(links) != 2 {
		t.Errorf("two paths of one content: %v %v", links, err)
	}
	twice := linksHeader + "\n" + hexA + ` 5 644 "a"` + "\n" + strings.Repeat("b", 64) + ` 5 644 "a"` + "\n"
	if _, err := parseLinks([]byte(twice)); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("a path twice: %v", err)
	}
}

// TestUnpackLinksFiles: a large file outside the registry is a segment of
// its own, with its path and sha256; a node whose tree has it at that path
// is sent the stream without it and links it, checked: a file changed in
// place (same size) is refused by name, the tree in place untouched, and
// the whole stream then unpacks.
func TestUnpackLinksFiles(t *testing.T) {
	kubelet, other := randomBytes(MinFileSegment+5), randomBytes(MinFileSegment)
	v1, _ := registryTree(t, []byte("blob"))
	v2, _ := registryTree(t, []byte("blob"))
	for _, dir := range []string{v1, v2} {
		os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
		os.WriteFile(filepath.Join(dir, "bin/kubelet"), kubelet, 0o755)
		os.WriteFile(filepath.Join(dir, "bin/small"), []byte("small"), 0o755)
	}
	os.WriteFile(filepath.Join(v1, "bin/other"), randomBytes(MinFileSegment), 0o755)
	os.WriteFile(filepath.Join(v2, "bin/other"), other, 0o755)
	p1, _ := packSegments(t, v1)
	p2, segs2 := packSegments(t, v2)
	sumKubelet := sha256.Sum256(kubelet)
	var files []Segment
	for _, s := range segs2 {
		if s.Path != "" {
			files = append(files, s)
		}
	}
	if len(files) != 2 || files[0].Path != "bin/kubelet" || files[0].Blob != hex.EncodeToString(sumKubelet[:]) || files[0].Size != int64(len(kubelet)) || files[0].Mode != 0o755 || files[1].Path != "bin/other" {
		t.Fatalf("file segments %+v", files)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(bytes.NewReader(p1), dest, "sha256:v1", sum(p1)); err != nil {
		t.Fatal(err)
	}
	// The node says which it holds: both paths are there, of that size.
	var answer bytes.Buffer
	if err := (BlobsCmd{Rootfs: dest}).Run(bytes.NewReader(BlobRequest(files)), &answer); err != nil {
		t.Fatal(err)
	}
	if answer.String() != `"bin/kubelet"`+"\n"+`"bin/other"`+"\n" {
		t.Errorf("answer %q", answer.String())
	}
	// bin/other has other content: linking it is refused, by name.
	delta := without(p2, segs2, map[string]bool{`"bin/kubelet"`: true, `"bin/other"`: true})
	err := Unpack(bytes.NewReader(delta), dest, "sha256:v2", sum(delta))
	if err == nil || !strings.Contains(err.Error(), "file bin/other in the tree in place changed") {
		t.Errorf("a changed file linked: %v", err)
	}
	if Digest(dest) != "sha256:v1" {
		t.Fatalf("marker %q after a refused unpack", Digest(dest))
	}
	delta = without(p2, segs2, map[string]bool{`"bin/kubelet"`: true})
	if len(delta) > len(p2)-len(kubelet)+4096 {
		t.Errorf("the stream without bin/kubelet is %d bytes, the whole %d", len(delta), len(p2))
	}
	before, _ := os.Stat(filepath.Join(dest, "bin/kubelet"))
	if err := Unpack(bytes.NewReader(delta), dest, "sha256:v2", sum(delta)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, v2, dest)
	if after, err := os.Stat(filepath.Join(dest, "bin/kubelet")); err != nil || !os.SameFile(before, after) {
		t.Errorf("bin/kubelet was not linked from the tree in place: %v", err)
	}
}

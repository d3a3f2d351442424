package backupfile

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var testSnapshot = bytes.Repeat([]byte("etcd snapshot bytes "), 100)

func testManifest() Manifest {
	sum := sha256.Sum256(testSnapshot)
	return Manifest{
		Cluster: "prod", Image: "acme/platform:v1", ImageDigest: "sha256:" + strings.Repeat("ab", 32),
		KubernetesVersion: "v1.37.2", EtcdImage: "registry.k8s.io/etcd:3.7.3-0",
		Time: time.Date(2026, 12, 1, 2, 3, 4, 0, time.UTC), Master: "10.0.0.2", NodeName: "master-1",
		Snapshot: File{Size: int64(len(testSnapshot)), SHA256: hex.EncodeToString(sum[:])},
	}
}

func testFiles() map[string][]byte {
	return map[string][]byte{
		"pki/ca.crt":      []byte("-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"),
		"pki/ca.key":      []byte("a private key"),
		"pki/etcd/ca.crt": []byte("etcd ca"),
		"pki/empty":       nil,
		AdminConf:         []byte("apiVersion: v1\nkind: Config\n"),
	}
}

func testBackup(t testing.TB) []byte {
	t.Helper()
	m := testManifest()
	var buf bytes.Buffer
	if err := Write("test.hoist-backup", &buf, &m, bytes.NewReader(testSnapshot), testFiles()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := testBackup(t)
	var snap bytes.Buffer
	c, err := Read("test.hoist-backup", bytes.NewReader(data), &snap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap.Bytes(), testSnapshot) {
		t.Errorf("snapshot: %d bytes, want the %d written", snap.Len(), len(testSnapshot))
	}
	want := testManifest()
	got := c.Manifest
	if got.Cluster != want.Cluster || got.Master != want.Master || !got.Time.Equal(want.Time) || got.KubernetesVersion != want.KubernetesVersion ||
		got.Image != want.Image || got.ImageDigest != want.ImageDigest || got.Snapshot.SHA256 != want.Snapshot.SHA256 || got.FormatVersion != Version {
		t.Errorf("manifest read back: %+v, want %+v", got, want)
	}
	if len(c.Files) != len(testFiles()) {
		t.Errorf("files: %d, want %d", len(c.Files), len(testFiles()))
	}
	for name, data := range testFiles() {
		if !bytes.Equal(c.Files[name], data) {
			t.Errorf("%s: %q, want %q", name, c.Files[name], data)
		}
	}
	// The manifest comes first, then the snapshot; every member is private.
	tr := tar.NewReader(bytes.NewReader(data))
	var order []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		order = append(order, h.Name)
		if h.Mode != 0o600 {
			t.Errorf("%s: mode %o, want 600", h.Name, h.Mode)
		}
	}
	if len(order) < 2 || order[0] != ManifestName || order[1] != SnapshotName {
		t.Errorf("members in the order %v", order)
	}
}

// TestWriteRefuses: a snapshot that is not what the manifest says, and
// names a backup cannot hold, fail the write.
func TestWriteRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot []byte
		files    map[string][]byte
		edit     func(*Manifest)
		want     string
	}{
		{"longer snapshot", append(append([]byte{}, testSnapshot...), 'x'), nil, nil, "not the 2000 bytes"},
		{"shorter snapshot", testSnapshot[1:], nil, nil, "not the 2000 bytes"},
		{"other snapshot", bytes.Repeat([]byte("x"), len(testSnapshot)), nil, nil, "sha256"},
		{"file outside pki", testSnapshot, map[string][]byte{"etc/passwd": nil}, nil, `file "etc/passwd"`},
		{"file escaping pki", testSnapshot, map[string][]byte{"pki/../x": nil}, nil, `file "pki/../x"`},
		{"no cluster", testSnapshot, nil, func(m *Manifest) { m.Cluster = "" }, "cluster name"},
		{"no master", testSnapshot, nil, func(m *Manifest) { m.Master = "" }, "master"},
	} {
		m := testManifest()
		if tc.edit != nil {
			tc.edit(&m)
		}
		err := Write("out.hoist-backup", io.Discard, &m, bytes.NewReader(tc.snapshot), tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "backup out.hoist-backup") {
			t.Errorf("%s: %v, want an error naming the file and %q", tc.name, err, tc.want)
		}
	}
}

// member is a tar member for the hand-made bad backups.
type member struct {
	name string
	data []byte
	typ  byte
}

func makeTar(t testing.TB, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Typeflag: typ, Name: m.name, Size: int64(len(m.data)), Mode: 0o600}
		if typ != tar.TypeReg {
			h.Size, h.Linkname = 0, "/etc/shadow"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(m.data)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// sparse appends to a backup a snapshot member in PAX's GNU sparse
// format: one byte of data, the rest a hole of a terabyte. Go's writer
// drops GNU.sparse records: they are written under another name first.
func sparse(t testing.TB, backup []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: SnapshotName, Size: 1, Format: tar.FormatPAX, PAXRecords: map[string]string{
		"HNU.sparse.major": "0", "HNU.sparse.minor": "1", "HNU.sparse.map": "0,1", "HNU.sparse.numblocks": "1", "HNU.sparse.size": "1000000000000"}})
	if err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("x"))
	tw.Close()
	member := bytes.ReplaceAll(buf.Bytes(), []byte("HNU.sparse."), []byte("GNU.sparse."))
	// The backup's end of archive (two zero blocks from Go's writer)
	// gives way to the member.
	return append(backup[:len(backup)-1024:len(backup)-1024], member...)
}

func manifestJSON(t testing.TB, edit func(*Manifest)) []byte {
	m := testManifest()
	m.FormatVersion = Version
	m.Snapshot.Name = SnapshotName
	sum := sha256.Sum256([]byte("ca"))
	m.Files = []File{{Name: "pki/ca.crt", Size: 2, SHA256: hex.EncodeToString(sum[:])}}
	if edit != nil {
		edit(&m)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// badBackups are the inputs Read must refuse, with what its error says;
// they are also the fuzz target's seeds.
func badBackups(t testing.TB) []struct {
	name string
	data []byte
	want string
} {
	good := testBackup(t)
	m := manifestJSON(t, nil)
	snap := member{SnapshotName, testSnapshot, 0}
	ca := member{"pki/ca.crt", []byte("ca"), 0}
	return []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "empty: not a hoist backup"},
		{"not a tar", []byte("hello, this is not a tar file at all"), "not a hoist backup"},
		{"cut short", good[:len(good)/2], "cut short"},
		{"cut in the manifest", good[:600], "member hoist-backup.json: the file is cut short"},
		{"manifest not first", makeTar(t, snap, member{ManifestName, m, 0}), `the first member is "etcd/snapshot.db"`},
		{"manifest not JSON", makeTar(t, member{ManifestName, []byte("{"), 0}), "member hoist-backup.json: unexpected EOF"},
		{"two documents", makeTar(t, member{ManifestName, append(append([]byte{}, m...), m...), 0}), "more than one JSON document"},
		{"newer format", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.FormatVersion = 2 }), 0}), "format version 2"},
		{"bad cluster name", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.Cluster = "../etc" }), 0}), "cluster name"},
		{"bad version", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.KubernetesVersion = "1.37; rm -rf /" }), 0}), "Kubernetes version"},
		{"bad digest", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.Snapshot.SHA256 = "abc" }), 0}), "snapshot: sha256"},
		{"empty snapshot", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.Snapshot.Size = 0 }), 0}), "snapshot: size 0"},
		{"file escaping", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.Files[0].Name = "pki/../../etc/shadow" }), 0}), "neither admin.conf nor a path under pki/"},
		{"file twice in the manifest", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) }), 0}), "listed twice"},
		{"huge file", makeTar(t, member{ManifestName, manifestJSON(t, func(m *Manifest) { m.Files[0].Size = MaxFileSize + 1 }), 0}), "file pki/ca.crt: size"},
		{"no snapshot", makeTar(t, member{ManifestName, m, 0}, ca), "member etcd/snapshot.db: missing"},
		{"file missing", makeTar(t, member{ManifestName, m, 0}, snap), "member pki/ca.crt: listed in hoist-backup.json but missing"},
		{"unlisted member", makeTar(t, member{ManifestName, m, 0}, snap, ca, member{"pki/extra.key", []byte("k"), 0}), "member pki/extra.key: not listed"},
		{"member twice", makeTar(t, member{ManifestName, m, 0}, snap, ca, ca), "member pki/ca.crt: twice"},
		{"symlink", makeTar(t, member{ManifestName, m, 0}, snap, member{"pki/ca.crt", nil, tar.TypeSymlink}), "member pki/ca.crt: not a regular file"},
		{"other size", makeTar(t, member{ManifestName, m, 0}, snap, member{"pki/ca.crt", []byte("cax"), 0}), "member pki/ca.crt: 3 bytes, hoist-backup.json says 2"},
		{"damaged file", makeTar(t, member{ManifestName, m, 0}, snap, member{"pki/ca.crt", []byte("CA"), 0}), "member pki/ca.crt: sha256"},
		{"sparse snapshot", sparse(t, makeTar(t, member{ManifestName, m, 0})), "member etcd/snapshot.db: not a regular file"},
		{"damaged snapshot", makeTar(t, member{ManifestName, m, 0}, member{SnapshotName, bytes.ToUpper(testSnapshot), 0}, ca), "member etcd/snapshot.db: sha256"},
	}
}

func TestReadRefuses(t *testing.T) {
	for _, tc := range badBackups(t) {
		_, err := Read("b.hoist-backup", bytes.NewReader(tc.data), io.Discard)
		var be *Error
		if err == nil || !errors.As(err, &be) || be.File != "b.hoist-backup" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming the file and saying %q", tc.name, err, tc.want)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add(testBackup(f))
	for _, tc := range badBackups(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var snap bytes.Buffer
		c, err := Read("fuzz", bytes.NewReader(data), &snap)
		if err != nil {
			return
		}
		sum := sha256.Sum256(snap.Bytes())
		if int64(snap.Len()) != c.Manifest.Snapshot.Size || hex.EncodeToString(sum[:]) != c.Manifest.Snapshot.SHA256 {
			t.Fatalf("Read took a snapshot that is not the manifest's: %d bytes", snap.Len())
		}
		// What Read takes, Write writes again, and that reads back the same.
		m := c.Manifest
		var out bytes.Buffer
		if err := Write("fuzz", &out, &m, bytes.NewReader(snap.Bytes()), c.Files); err != nil {
			t.Fatalf("a backup Read took does not write: %v", err)
		}
		again, err := Read("fuzz", bytes.NewReader(out.Bytes()), io.Discard)
		if err != nil {
			t.Fatalf("a written backup does not read: %v", err)
		}
		a, _ := json.Marshal(c.Manifest)
		b, _ := json.Marshal(again.Manifest)
		if !bytes.Equal(a, b) {
			t.Fatalf("not stable:\n%s\n%s", a, b)
		}
	})
}

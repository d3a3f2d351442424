// Package backupfile is the format of the files `hoist backup` writes and
// `hoist restore` reads: one tar holding, in this order,
//
//	hoist-backup.json   the Manifest: what the backup is of, and the size
//	                    and sha256 of every other member
//	etcd/snapshot.db    the etcd snapshot (`etcdctl snapshot save`)
//	pki/...             /etc/kubernetes/pki of the master it came from
//	admin.conf          /etc/kubernetes/admin.conf of that master
//
// The manifest comes first, so that a reader knows what the backup is of
// before it reads the snapshot, and checks every member as it streams by.
// A backup file is read as untrusted input: Read refuses anything the
// manifest does not list, or that does not match it. It is a leaf package.
package backupfile

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Version is the format version this hoist writes and reads.
const Version = 1

// Members of the tar.
const (
	ManifestName = "hoist-backup.json"
	SnapshotName = "etcd/snapshot.db"
	PKIDir       = "pki/"
	AdminConf    = "admin.conf"
)

// Limits of what Read accepts: certificates, keys and kubeconfigs are a
// few kilobytes each.
const (
	MaxManifestSize = 1 << 20
	MaxFileSize     = 1 << 20
	MaxFiles        = 1000
)

// Manifest is hoist-backup.json.
type Manifest struct {
	FormatVersion int    `json:"formatVersion"`
	Cluster       string `json:"cluster"`
	// Image is the cluster image (the Clusterfile's spec.image) and
	// ImageDigest the digest of the tree of it the master had.
	Image       string `json:"image"`
	ImageDigest string `json:"imageDigest,omitempty"`
	// KubernetesVersion is the version of the master's control plane (its
	// kube-apiserver's), EtcdImage the image its etcd ran.
	KubernetesVersion string    `json:"kubernetesVersion"`
	EtcdImage         string    `json:"etcdImage,omitempty"`
	Time              time.Time `json:"time"`
	// Master is the address of the master the backup was taken on,
	// NodeName its name in the cluster.
	Master   string `json:"master"`
	NodeName string `json:"nodeName,omitempty"`
	Snapshot File   `json:"snapshot"`
	// Files are the pki/ members and admin.conf, sorted by name.
	Files []File `json:"files"`
}

// File is a member of the tar other than the manifest.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Contents is a backup as Read returns it, the snapshot aside.
type Contents struct {
	Manifest Manifest
	Files    map[string][]byte // by member name
}

// Error is a backup file that cannot be read or written: it names the file
// and, when it is about one, the member.
type Error struct {
	File, Member string
	Err          error
}

func (e *Error) Error() string {
	if e.Member == "" {
		return fmt.Sprintf("backup %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("backup %s: member %s: %v", e.File, e.Member, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	sha256Hex   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	kubeVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$`)
)

// IsFileName tells whether name may be a member other than the manifest
// and the snapshot: admin.conf, or a clean relative path under pki/.
func IsFileName(name string) bool {
	if name == AdminConf {
		return true
	}
	rel, ok := strings.CutPrefix(name, PKIDir)
	return ok && rel != "" && path.Clean(rel) == rel && filepath.IsLocal(rel) && !strings.ContainsAny(name, "\x00\n\\")
}

// Validate checks what a reader relies on: the format version, names,
// sizes and digests.
func (m *Manifest) Validate() error {
	if m.FormatVersion != Version {
		return fmt.Errorf("format version %d: this hoist reads version %d", m.FormatVersion, Version)
	}
	if err := checkClusterName(m.Cluster); err != nil {
		return fmt.Errorf("cluster name: %w", err)
	}
	if m.Time.IsZero() {
		return errors.New("no time")
	}
	if _, err := netip.ParseAddr(m.Master); err != nil {
		return fmt.Errorf("master %q: not an IP address", m.Master)
	}
	if !kubeVersion.MatchString(m.KubernetesVersion) {
		return fmt.Errorf("Kubernetes version %q: not a version such as v1.37.2", m.KubernetesVersion)
	}
	for _, s := range []string{m.Image, m.ImageDigest, m.EtcdImage, m.NodeName} {
		if len(s) > 1024 || strings.ContainsAny(s, "\x00\n") {
			return fmt.Errorf("%.40q...: not a name", s)
		}
	}
	if m.Snapshot.Name != SnapshotName {
		return fmt.Errorf("snapshot %q: want %s", m.Snapshot.Name, SnapshotName)
	}
	if err := m.Snapshot.check(1<<62, 1); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("%d files: at most %d", len(m.Files), MaxFiles)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		if !IsFileName(f.Name) {
			return fmt.Errorf("file %q: neither %s nor a path under %s", f.Name, AdminConf, PKIDir)
		}
		if seen[f.Name] {
			return fmt.Errorf("file %s listed twice", f.Name)
		}
		seen[f.Name] = true
		if i > 0 && m.Files[i-1].Name > f.Name {
			return fmt.Errorf("files not sorted: %s after %s", f.Name, m.Files[i-1].Name)
		}
		if err := f.check(MaxFileSize, 0); err != nil {
			return fmt.Errorf("file %s: %w", f.Name, err)
		}
	}
	return nil
}

func (f File) check(maxSize, minSize int64) error {
	if f.Size < minSize || f.Size > maxSize {
		return fmt.Errorf("size %d: want %d to %d bytes", f.Size, minSize, maxSize)
	}
	if !sha256Hex.MatchString(f.SHA256) {
		return fmt.Errorf("sha256 %q: not 64 lower-case hex digits", f.SHA256)
	}
	return nil
}

// checkClusterName is agent.CheckClusterName's rule (a DNS-1123 label),
// kept here so that this package stays a leaf.
func checkClusterName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%q: want 1 to 63 characters", name)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(name)-1) {
			return fmt.Errorf("%q is not a DNS-1123 label", name)
		}
	}
	return nil
}

// Write writes a backup to w: m as the manifest (its FormatVersion and
// Files filled here, from files), then the snapshot, which must be exactly
// m.Snapshot (size and sha256: a snapshot that changed under the writer
// fails the write), then files by name. name is the file written, for
// errors.
func Write(name string, w io.Writer, m *Manifest, snapshot io.Reader, files map[string][]byte) error {
	fail := func(member string, err error) error { return &Error{File: name, Member: member, Err: err} }
	m.FormatVersion = Version
	m.Snapshot.Name = SnapshotName
	m.Files = nil
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		m.Files = append(m.Files, File{Name: n, Size: int64(len(files[n])), SHA256: hex.EncodeToString(sum[:])})
	}
	if err := m.Validate(); err != nil {
		return fail(ManifestName, err)
	}
	doc, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fail(ManifestName, err)
	}
	tw := tar.NewWriter(w)
	header := func(member string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: member, Size: size, Mode: 0o600, ModTime: m.Time.UTC().Truncate(time.Second), Format: tar.FormatPAX})
	}
	if err := header(ManifestName, int64(len(doc))); err != nil {
		return fail(ManifestName, err)
	}
	if _, err := tw.Write(doc); err != nil {
		return fail(ManifestName, err)
	}
	if err := header(SnapshotName, m.Snapshot.Size); err != nil {
		return fail(SnapshotName, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(snapshot, m.Snapshot.Size))
	if err != nil {
		return fail(SnapshotName, err)
	}
	var extra [1]byte
	if k, _ := snapshot.Read(extra[:]); n != m.Snapshot.Size || k > 0 {
		return fail(SnapshotName, fmt.Errorf("the snapshot is not the %d bytes the manifest says", m.Snapshot.Size))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.Snapshot.SHA256 {
		return fail(SnapshotName, fmt.Errorf("sha256 %s, the manifest says %s", got, m.Snapshot.SHA256))
	}
	for _, f := range names {
		if err := header(f, int64(len(files[f]))); err != nil {
			return fail(f, err)
		}
		if _, err := tw.Write(files[f]); err != nil {
			return fail(f, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fail("", err)
	}
	return nil
}

// Read reads a backup from r, name being its file (for errors): the
// manifest, checked, then every member against it. The snapshot is written
// to snapshot as it streams by; on error, what was written of it is not
// to be used.
func Read(name string, r io.Reader, snapshot io.Writer) (*Contents, error) {
	fail := func(member string, err error) error { return &Error{File: name, Member: member, Err: err} }
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err == io.EOF {
		return nil, fail("", errors.New("empty: not a hoist backup"))
	}
	if err != nil {
		return nil, fail("", fmt.Errorf("not a hoist backup (a tar whose first member is %s): %w", ManifestName, err))
	}
	if hdr.Name != ManifestName {
		return nil, fail("", fmt.Errorf("not a hoist backup: the first member is %q, not %s", hdr.Name, ManifestName))
	}
	if !regular(hdr) || hdr.Size > MaxManifestSize {
		return nil, fail(ManifestName, fmt.Errorf("not a file of at most %d bytes", MaxManifestSize))
	}
	doc, err := io.ReadAll(tr)
	if err != nil {
		return nil, fail(ManifestName, cutShort(err))
	}
	c := &Contents{Files: map[string][]byte{}}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&c.Manifest); err != nil {
		return nil, fail(ManifestName, err)
	}
	if dec.More() {
		return nil, fail(ManifestName, errors.New("more than one JSON document"))
	}
	m := &c.Manifest
	if err := m.Validate(); err != nil {
		return nil, fail(ManifestName, err)
	}
	want := map[string]File{}
	for _, f := range m.Files {
		want[f.Name] = f
	}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fail("", fmt.Errorf("after %d members: %w", len(seen)+1, cutShort(err)))
		}
		member := hdr.Name
		if seen[member] {
			return nil, fail(member, errors.New("twice in the file"))
		}
		seen[member] = true
		f, listed := want[member]
		if member == SnapshotName {
			f, listed = m.Snapshot, true
		}
		if !listed {
			return nil, fail(member, fmt.Errorf("not listed in %s", ManifestName))
		}
		if !regular(hdr) {
			return nil, fail(member, fmt.Errorf("not a regular file (type %q)", hdr.Typeflag))
		}
		if hdr.Size != f.Size {
			return nil, fail(member, fmt.Errorf("%d bytes, %s says %d", hdr.Size, ManifestName, f.Size))
		}
		h := sha256.New()
		var dst io.Writer = h
		var data bytes.Buffer
		if member == SnapshotName {
			dst = io.MultiWriter(h, snapshot)
		} else {
			dst = io.MultiWriter(h, &data)
		}
		if _, err := io.Copy(dst, tr); err != nil {
			return nil, fail(member, cutShort(err))
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return nil, fail(member, fmt.Errorf("sha256 %s, %s says %s: the file is damaged", got, ManifestName, f.SHA256))
		}
		if member != SnapshotName {
			c.Files[member] = data.Bytes()
		}
	}
	if !seen[SnapshotName] {
		return nil, fail(SnapshotName, errors.New("missing"))
	}
	for _, f := range m.Files {
		if !seen[f.Name] {
			return nil, fail(f.Name, fmt.Errorf("listed in %s but missing", ManifestName))
		}
	}
	return c, nil
}

// regular tells whether a member is a plain file (archive/tar reports old
// writers' regular files as TypeReg too). A PAX sparse file is TypeReg, but
// its holes read as zeros that are nowhere in the file: a few bytes could
// claim terabytes.
func regular(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return false
		}
	}
	return h.Typeflag == tar.TypeReg
}

// cutShort says what an unexpected end of the tar means.
func cutShort(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the file is cut short: %w", err)
	}
	return err
}

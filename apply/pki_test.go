package apply

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	c := testCluster(t, twoHosts)
	first, err := loadTLS(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(first.Cert, first.Key)
	if err != nil {
		t.Fatalf("certificate and key do not pair: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(first.CA)
	for _, name := range []string{"registry.hoist.local", "10.0.0.2"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "10.0.0.3"}); err == nil {
		t.Errorf("valid for a node that is not a registry node")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "registry.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	for _, name := range []string{"ca.key", "ca-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("the CA key was kept")
		}
	}
	for _, f := range []string{"ca.crt", "registry.crt", "registry.key"} {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		if b, _ := pem.Decode(data); b == nil {
			t.Errorf("%s is not PEM", f)
		}
	}

	// Same names: the same PKI, so nothing is reinstalled.
	again, err := loadTLS(dir, c)
	if err != nil || again.Digest() != first.Digest() {
		t.Errorf("reloaded PKI differs: %v", err)
	}
	// Another registry node: a new CA and certificate.
	c.Registry.Nodes = []netip.Addr{netip.MustParseAddr("10.0.0.3")}
	moved, err := loadTLS(dir, c)
	if err != nil || moved.Digest() == first.Digest() {
		t.Fatalf("registry moved, PKI kept: %v", err)
	}
	if string(moved.CA) == string(first.CA) {
		t.Errorf("the CA was not renewed")
	}
	// More names (sealer's localRegistry.cert.subjectAltName): a new
	// certificate, valid for them too.
	c.Registry.SANs = []string{"hub.corp.example", "192.0.2.7"}
	named, err := loadTLS(dir, c)
	if err != nil || named.Digest() == moved.Digest() {
		t.Fatalf("names added, PKI kept: %v", err)
	}
	pair, err = tls.X509KeyPair(named.Cert, named.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(pair.Certificate[0])
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(named.CA)
	for _, name := range []string{"registry.hoist.local", "10.0.0.3", "hub.corp.example", "192.0.2.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
}

// TestLoadTLSInconsistent: a key that is not the certificate's, or a
// certificate the CA did not sign, is not served: the set is made anew,
// whole, as when the registry's names change.
func TestLoadTLSInconsistent(t *testing.T) {
	c := testCluster(t, twoHosts)
	other, err := newTLS("other", []string{"registry.hoist.local"}, []net.IP{net.ParseIP("10.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(dir string){
		"another key":     func(dir string) { os.WriteFile(filepath.Join(dir, "registry.key"), other.Key, 0o600) },
		"another CA":      func(dir string) { os.WriteFile(filepath.Join(dir, "ca.crt"), other.CA, 0o600) },
		"a key not PEM":   func(dir string) { os.WriteFile(filepath.Join(dir, "registry.key"), []byte("garbage"), 0o600) },
		"a CA cut short":  func(dir string) { os.WriteFile(filepath.Join(dir, "ca.crt"), other.CA[:40], 0o600) },
		"an empty key":    func(dir string) { os.WriteFile(filepath.Join(dir, "registry.key"), nil, 0o600) },
		"the key deleted": func(dir string) { os.Remove(filepath.Join(dir, "registry.key")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			first, err := loadTLS(dir, c)
			if err != nil {
				t.Fatal(err)
			}
			spoil(dir)
			again, err := loadTLS(dir, c)
			if err != nil {
				t.Fatal(err)
			}
			if again.Digest() == first.Digest() {
				t.Errorf("the PKI was kept")
			}
			assertConsistent(t, again)
			onDisk, err := loadTLS(dir, c)
			if err != nil || onDisk.Digest() != again.Digest() || string(onDisk.Key) != string(again.Key) {
				t.Errorf("the set made anew is not what is on disk: %v", err)
			}
		})
	}
}

func assertConsistent(t *testing.T, pki clusterTLS) {
	t.Helper()
	pair, err := tls.X509KeyPair(pki.Cert, pki.Key)
	if err != nil {
		t.Fatalf("certificate and key do not pair: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pki.CA)
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "registry.hoist.local"}); err != nil {
		t.Errorf("certificate not signed by the CA: %v", err)
	}
}

// TestLoadTLSWritesNewFiles: the files are written as new files renamed
// into place: a key file left with a wide mode becomes 0600, and a symlink
// planted at a file's name is replaced, not written through.
func TestLoadTLSWritesNewFiles(t *testing.T) {
	c := testCluster(t, twoHosts)
	dir := filepath.Join(t.TempDir(), "pki")
	outside := filepath.Join(t.TempDir(), "elsewhere")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(outside, []byte("not a key"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "registry.key"))
	os.WriteFile(filepath.Join(dir, "registry.crt"), []byte("stale"), 0o644)
	os.Chmod(filepath.Join(dir, "registry.crt"), 0o644)
	pki, err := loadTLS(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	assertConsistent(t, pki)
	if data, _ := os.ReadFile(outside); string(data) != "not a key" {
		t.Errorf("the key was written through a symlink to %s", outside)
	}
	for _, name := range []string{"ca.crt", "registry.crt", "registry.key"} {
		info, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want a regular file 0600", name, info.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("in %s: %v", dir, entries)
	}
}

// TestReadTLSWritesNothing: what a dry run reads of the PKI creates no file,
// and finds what LoadTLS made.
func TestReadTLSWritesNothing(t *testing.T) {
	c := testCluster(t, twoHosts)
	dir := filepath.Join(t.TempDir(), "pki")
	if _, ok, err := readTLS(dir, c); ok || err != nil {
		t.Fatalf("ReadTLS of nothing: %v %v", ok, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("ReadTLS made %s: %v", dir, err)
	}
	made, err := loadTLS(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	read, ok, err := readTLS(dir, c)
	if !ok || err != nil || read.Digest() != made.Digest() {
		t.Errorf("ReadTLS after LoadTLS: %v %v, digest %s want %s", ok, err, read.Digest(), made.Digest())
	}
	other := c
	other.Registry.Domain = "other.example"
	if _, ok, err := readTLS(dir, other); ok || err != nil {
		t.Errorf("ReadTLS for other names: %v %v", ok, err)
	}
}

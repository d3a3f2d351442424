package apply

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	c := testCluster(t, twoHosts)
	first, err := LoadTLS(dir, c)
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
	again, err := LoadTLS(dir, c)
	if err != nil || again.Digest() != first.Digest() {
		t.Errorf("reloaded PKI differs: %v", err)
	}
	// Another registry node: a new CA and certificate.
	c.Registry.Nodes = []netip.Addr{netip.MustParseAddr("10.0.0.3")}
	moved, err := LoadTLS(dir, c)
	if err != nil || moved.Digest() == first.Digest() {
		t.Fatalf("registry moved, PKI kept: %v", err)
	}
	if string(moved.CA) == string(first.CA) {
		t.Errorf("the CA was not renewed")
	}
}

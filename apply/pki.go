package apply

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.podman.io/storage/pkg/ioutils"

	"github.com/hoistdev/hoist/apply/clusterfile"
)

// clusterTLS is the cluster's registry PKI: a CA every node trusts, and the
// registry's certificate for its domain and the registry nodes' addresses.
type clusterTLS struct {
	CA, Cert, Key []byte // PEM
}

// Digest names the CA and certificate, for the plan's keys.
func (t clusterTLS) Digest() string {
	h := sha256.Sum256(append(append([]byte{}, t.CA...), t.Cert...))
	return "sha256:" + hex.EncodeToString(h[:])
}

// loadTLS returns the cluster's PKI from dir, made anew when missing or
// when the registry's names changed. The CA key signs once and is thrown
// away: a change of names makes a new CA, which the plan then installs on
// every node, so no CA key lies around to be stolen.
//
// A set that does not hold together (a key that is not the certificate's,
// a certificate the CA did not sign, a file cut short) is made anew too,
// rather than refused: without the CA key no file of it can be mended
// alone, hoist alone writes it, and what leaves it so is a write cut short
// (a crash between two files). A new set is installed on the nodes as for
// a change of names, where an error would only make someone delete the
// directory, and serving the set as it is would fail on every node.
func loadTLS(dir string, c clusterfile.Cluster) (clusterTLS, error) {
	t, ok, err := readTLS(dir, c)
	if err != nil || ok {
		return t, err
	}
	names, ips := registryNames(c)
	t, err = newTLS(c.Name, names, ips)
	if err != nil {
		return clusterTLS{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return clusterTLS{}, err
	}
	// Each file is a new one renamed into place, 0600 whatever was there:
	// a file cut short by a crash is never read, and a symlink planted at a
	// file's name is replaced rather than written through. A crash between
	// two files leaves a set that does not hold together, made anew by the
	// next load.
	for _, f := range []struct {
		name string
		data []byte
	}{{"registry.key", t.Key}, {"registry.crt", t.Cert}, {"ca.crt", t.CA}} {
		name := filepath.Join(dir, f.name)
		if err := ioutils.AtomicWriteFile(name, f.data, 0o600); err != nil {
			return clusterTLS{}, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return t, nil
}

// readTLS returns the cluster's PKI from dir, writing nothing (a dry run):
// ok is false when loadTLS would make a new one (missing, for other names,
// or not holding together).
func readTLS(dir string, c clusterfile.Cluster) (t clusterTLS, ok bool, err error) {
	read := func(name string) []byte {
		data, e := os.ReadFile(filepath.Join(dir, name))
		if e != nil && err == nil {
			err = e
		}
		return data
	}
	t.CA, t.Cert, t.Key = read("ca.crt"), read("registry.crt"), read("registry.key")
	if errors.Is(err, os.ErrNotExist) {
		return clusterTLS{}, false, nil
	}
	if err != nil {
		return clusterTLS{}, false, err
	}
	names, ips := registryNames(c)
	if !certCovers(t.Cert, names, ips) || !t.holdsTogether() {
		return clusterTLS{}, false, nil
	}
	return t, true, nil
}

// registryNames are what the registry's certificate names: its domain and
// the registry nodes' addresses, then the Clusterfile's other names.
func registryNames(c clusterfile.Cluster) ([]string, []net.IP) {
	var ips []net.IP
	for _, a := range c.Registry.Nodes {
		ips = append(ips, net.IP(a.AsSlice()))
	}
	names := []string{c.Registry.Domain}
	for _, san := range c.Registry.SANs {
		if a, err := netip.ParseAddr(san); err == nil {
			ips = append(ips, net.IP(a.AsSlice()))
		} else {
			names = append(names, san)
		}
	}
	return names, ips
}

// holdsTogether tells whether the key is the certificate's, and the
// certificate one the CA signed for serving.
func (t clusterTLS) holdsTogether() bool {
	pair, err := tls.X509KeyPair(t.Cert, t.Key)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(t.CA) {
		return false
	}
	_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// certCovers tells whether the certificate names exactly these, and has a
// month left.
func certCovers(certPEM []byte, names []string, ips []net.IP) bool {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || time.Until(cert.NotAfter) < 30*24*time.Hour {
		return false
	}
	if !slices.Equal(cert.DNSNames, names) || len(cert.IPAddresses) != len(ips) {
		return false
	}
	for i := range ips {
		if !cert.IPAddresses[i].Equal(ips[i]) {
			return false
		}
	}
	return true
}

func newTLS(cluster string, names []string, ips []net.IP) (clusterTLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return clusterTLS{}, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "hoist cluster " + cluster + " CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return clusterTLS{}, err
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return clusterTLS{}, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return clusterTLS{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return clusterTLS{}, err
	}
	enc := func(typ string, der []byte) []byte {
		var b bytes.Buffer
		pem.Encode(&b, &pem.Block{Type: typ, Bytes: der})
		return b.Bytes()
	}
	return clusterTLS{CA: enc("CERTIFICATE", caDER), Cert: enc("CERTIFICATE", leafDER), Key: enc("PRIVATE KEY", keyDER)}, nil
}

func serial() *big.Int {
	// crypto/rand does not fail on Linux (it panics where it cannot read).
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

package ssh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"
)

// publicKey returns the type and base64 fields of a private key file's
// public half.
func publicKey(t *testing.T, file string) string {
	t.Helper()
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(pub))
	return fields[0] + " " + fields[1]
}

// otherKey makes a key of typ that no host has.
func otherKey(t *testing.T, typ string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "other")
	keygen(t, typ, file, "")
	return publicKey(t, file)
}

// TestHostKeyOfTheRecordedType: a host with several host keys is checked
// against the one known_hosts records, whatever the client would prefer
// (x/crypto/ssh prefers ECDSA to ed25519, OpenSSH the reverse), in every
// form a known_hosts line may name the host.
func TestHostKeyOfTheRecordedType(t *testing.T) {
	s := startSSHDWith(t, "ed25519", "ecdsa", "rsa")
	host := fmt.Sprintf("[127.0.0.1]:%d", s.port)
	hashed := knownhosts.HashHostname(host)
	ed25519 := publicKey(t, s.hostKeys["ed25519"])
	for _, tc := range []struct{ name, knownHosts string }{
		{"ed25519", host + " " + ed25519},
		{"ed25519, hashed", hashed + " " + ed25519},
		{"ed25519 among other hosts", "10.0.0.9 " + otherKey(t, "ecdsa") + "\n" +
			"[127.0.0.1]:1 " + otherKey(t, "ecdsa") + "\n" + host + "," + "other " + ed25519},
		{"ecdsa", host + " " + publicKey(t, s.hostKeys["ecdsa"])},
		{"rsa", host + " " + publicKey(t, s.hostKeys["rsa"])},
		{"ed25519 and a certificate authority", "@cert-authority " + host + " " + otherKey(t, "ed25519") + "\n" +
			"@cert-authority *.example.com " + otherKey(t, "ecdsa") + "\n" + hashed + " " + ed25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, accept := range []bool{false, true} {
				cfg := s.config(t)
				cfg.AcceptNew = accept
				data := []byte(tc.knownHosts + "\n")
				os.WriteFile(cfg.KnownHosts, data, 0o600)
				e, err := Dial(context.Background(), cfg)
				if err != nil {
					t.Fatalf("accept-new %v: %v", accept, err)
				}
				e.Close()
				if after, _ := os.ReadFile(cfg.KnownHosts); string(after) != string(data) {
					t.Errorf("accept-new %v: known_hosts was changed to %q", accept, after)
				}
			}
		})
	}
}

// TestHostKeyChangedOfTheRecordedType: another key of the type recorded is
// a changed key, and so is a host that no longer offers any type recorded.
func TestHostKeyChangedOfTheRecordedType(t *testing.T) {
	s := startSSHDWith(t, "ed25519", "ecdsa", "rsa")
	host := fmt.Sprintf("[127.0.0.1]:%d", s.port)
	onlyECDSA := startSSHDWith(t, "ecdsa")
	for _, tc := range []struct {
		name       string
		port       int
		knownHosts string
		want       string // in the error, after the known_hosts file's name
	}{
		{"another ed25519 key", s.port, host + " " + otherKey(t, "ed25519"), ":1)"},
		{"another ed25519 key, hashed", s.port, knownhosts.HashHostname(host) + " " + otherKey(t, "ed25519"), ":1)"},
		{"another rsa key", s.port, "10.0.0.9 " + otherKey(t, "rsa") + "\n" + host + " " + otherKey(t, "rsa"), ":2)"},
		{"ed25519 recorded, only ecdsa offered", onlyECDSA.port,
			fmt.Sprintf("[127.0.0.1]:%d %s", onlyECDSA.port, publicKey(t, s.hostKeys["ed25519"])),
			" records for it (ssh-ed25519), only ecdsa-sha2-nistp256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, accept := range []bool{false, true} {
				cfg := s.config(t)
				cfg.Port, cfg.AcceptNew = tc.port, accept
				os.WriteFile(cfg.KnownHosts, []byte(tc.knownHosts+"\n"), 0o600)
				_, err := Dial(context.Background(), cfg)
				if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), cfg.KnownHosts+tc.want) {
					t.Errorf("accept-new %v: %v", accept, err)
				}
			}
		})
	}
}

// TestHostKeyRecordedOnFirstUse: a host known_hosts does not know may
// present any of its keys; that one is recorded, and required afterwards.
func TestHostKeyRecordedOnFirstUse(t *testing.T) {
	s := startSSHDWith(t, "ed25519", "ecdsa", "rsa")
	cfg := s.config(t)
	for _, accept := range []bool{true, false} {
		cfg.AcceptNew = accept
		e, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("accept-new %v: %v", accept, err)
		}
		e.Close()
	}
	data, _ := os.ReadFile(cfg.KnownHosts)
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 1 {
		t.Errorf("known_hosts has %d lines, want one: %q", len(lines), data)
	}
}

package lb

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kubeBinaries is the directory of the etcd and kube-apiserver that
// test/kube/build.sh builds (make kube, before make test's tests: building
// them takes ten minutes, which a unit test does not start); without them
// the test fails, as fixture.APIServer does.
func kubeBinaries(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("KUBE_CACHE")
	if cache == "" {
		cache = "/var/cache/hoist-kube"
	}
	dir := filepath.Join(cache, "v1.37.2")
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("no %s in %s: make kube (test/kube/build.sh) builds it, as make test does (%v)", b, dir, err)
		}
	}
	return dir
}

// writePEM writes cert and its key as name.crt and name.key in dir.
func writePEM(t *testing.T, dir, name string, cert tls.Certificate) (crt, key string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	crt, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return crt, key
}

// freeAddr is a loopback address free when asked.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon runs a server in the background until the test ends, its output
// in dir/name.log, shown when the test fails.
func daemon(t *testing.T, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	logFile := filepath.Join(dir, name+".log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("%s's log ends with:\n%s", name, tailString(string(log), 3000))
		}
	})
	return cmd
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestRealAPIServers: in front of two kube-apiservers sharing an etcd,
// the health checks pass with their CA (anonymous /readyz, the
// certificate's IP address verified), clients authenticate through the
// balancer with their own certificate, and when one API server freezes
// (SIGSTOP: no reset, its connections just go silent, as when a machine
// is lost) a watch on it is cut at once, the client's next connection
// goes to the other, and the frozen one is used again once it thaws.
func TestRealAPIServers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts etcd and two kube-apiservers")
	}
	bin := kubeBinaries(t)
	dir := t.TempDir()
	ca := newCA(t)
	caFile := filepath.Join(dir, "ca.crt")
	os.WriteFile(caFile, ca.pem, 0o644)
	adminCert := ca.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	saPriv, _ := x509.MarshalPKCS8PrivateKey(saKey)
	saPub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saPriv}), 0o600)
	os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}), 0o644)

	etcdAddr, peerAddr := freeAddr(t), freeAddr(t)
	daemon(t, dir, "etcd", filepath.Join(bin, "etcd"), "--data-dir", filepath.Join(dir, "etcd"), "--unsafe-no-fsync",
		"--listen-client-urls", "http://"+etcdAddr, "--advertise-client-urls", "http://"+etcdAddr,
		"--listen-peer-urls", "http://"+peerAddr, "--initial-advertise-peer-urls", "http://"+peerAddr,
		"--initial-cluster", "default=http://"+peerAddr, "--name", "default")

	type apiserver struct {
		name, addr string
		cmd        *exec.Cmd
	}
	var servers []*apiserver
	for _, name := range []string{"apiserver-a", "apiserver-b"} {
		crt, key := writePEM(t, dir, name, ca.issue(t, name))
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		cmd := daemon(t, dir, name, filepath.Join(bin, "kube-apiserver"), "--etcd-servers", "http://"+etcdAddr,
			"--bind-address", "127.0.0.1", "--secure-port", port, "--advertise-address", "127.0.0.1",
			"--endpoint-reconciler-type", "none",
			"--client-ca-file", caFile, "--tls-cert-file", crt, "--tls-private-key-file", key,
			"--service-account-key-file", filepath.Join(dir, "sa.pub"), "--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
			"--service-account-issuer", "https://kubernetes.default.svc",
			"--service-cluster-ip-range", "10.96.0.0/16", "--authorization-mode", "Node,RBAC")
		servers = append(servers, &apiserver{name, addr, cmd})
	}
	admin := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{adminCert}},
		DisableKeepAlives: true,
	}}
	// Who answers, by the certificate the client verified.
	get := func(addr, path string) (string, error) {
		resp, err := admin.Get("https://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	deadline := time.Now().Add(3 * time.Minute)
	for _, s := range servers {
		for {
			if _, err := get(s.addr, "/readyz"); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("%s not ready: %v", s.name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	a, bServer := servers[0], servers[1]
	file := filepath.Join(dir, "backends")
	writeFile(t, file, a.addr+"\n"+bServer.addr+"\n")
	b, logs := startLB(t, Config{Backends: file, CA: caFile, HealthInterval: 200 * time.Millisecond, HealthTimeout: time.Second})
	healthyAddr := func(addr string) bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, be := range b.backends {
			if be.addr.String() == addr {
				return be.healthy
			}
		}
		return false
	}
	seen := map[string]bool{}
	eventually(t, "both API servers answering through the balancer", func() bool {
		name, err := get(b.Addr().String(), "/api/v1/namespaces/default")
		if err != nil {
			t.Fatal(err)
		}
		seen[name] = true
		return len(seen) == 2
	})

	// A watch, through the balancer, on one of them.
	watchClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{adminCert}},
	}}
	resp, err := watchClient.Get("https://" + b.Addr().String() + "/api/v1/namespaces?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s", resp.Status)
	}
	watched := a
	if resp.TLS.PeerCertificates[0].Subject.CommonName == bServer.name {
		watched = bServer
	}
	other := a
	if watched == a {
		other = bServer
	}
	ended := make(chan error, 1)
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			if _, err := r.ReadBytes('\n'); err != nil {
				ended <- err
				return
			}
		}
	}()

	watched.cmd.Process.Signal(syscall.SIGSTOP)
	defer watched.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case err := <-ended:
		t.Logf("the watch on the frozen %s ended: %v", watched.name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the watch on the frozen %s still hangs", watched.name)
	}
	if healthyAddr(watched.addr) {
		t.Errorf("the frozen %s counts healthy", watched.name)
	}
	for range 10 {
		if name, err := get(b.Addr().String(), "/api/v1/namespaces/default"); err != nil || name != other.name {
			t.Errorf("with %s frozen: answered by %q (%v)", watched.name, name, err)
		}
	}
	if !strings.Contains(logs.String(), "backend "+watched.addr+" unhealthy: ") {
		t.Errorf("the log does not say %s went down:\n%s", watched.name, logs)
	}

	watched.cmd.Process.Signal(syscall.SIGCONT)
	// Healthy again: a check passed, anonymous and verified with the CA.
	eventually(t, watched.name+" healthy again", func() bool { return healthyAddr(watched.addr) })
	eventually(t, watched.name+" answering again", func() bool {
		name, err := get(b.Addr().String(), "/api/v1/namespaces/default")
		return err == nil && name == watched.name
	})
	t.Logf("balancer log:\n%s", logs)
}

package registry

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

func TestRepositoryPath(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                      "docker.io/library/nginx",
		"quay.io/prometheus/node:v1": "quay.io/prometheus/node",
		"registry.corp:5000/x/y:1":   "registry.corp_5000/x/y",
		"localhost:5000/a@sha256:" + strings.Repeat("a", 64): "localhost_5000/a",
	} {
		named, err := reference.ParseNormalizedNamed(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RepositoryPath(named)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	named, _ := reference.ParseNormalizedNamed("[::1]:5000/x")
	if _, err := RepositoryPath(named); err == nil {
		t.Errorf("an IPv6 host was accepted")
	}
}

// serve runs a registry over dir on an httptest server.
func serve(t *testing.T, dir string, opts Options) string {
	t.Helper()
	h, err := NewHandler(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, host, repo string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d
}

func TestServeMirrorAndHostPaths(t *testing.T) {
	data := t.TempDir()
	writable := serve(t, data, Options{})
	// Two source registries with the same path and different content.
	dockerImg, _ := random.Image(512, 1)
	quayImg, _ := random.Image(512, 2)
	dockerDigest := push(t, writable, "docker.io/library/nginx:1.27", dockerImg)
	quayDigest := push(t, writable, "quay.io/library/nginx:1.27", quayImg)
	portImg, _ := random.Image(256, 1)
	portDigest := push(t, writable, EncodeHost("registry.corp:5000")+"/team/app:v1", portImg)

	var log bytes.Buffer
	host := serve(t, data, Options{ReadOnly: true, Log: &log})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + host + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Docker-Content-Digest")
	}
	for path, want := range map[string]v1.Hash{
		"/v2/docker.io/library/nginx/manifests/1.27":              dockerDigest,
		"/v2/library/nginx/manifests/1.27?ns=docker.io":           dockerDigest,
		"/v2/library/nginx/manifests/1.27?ns=quay.io":             quayDigest,
		"/v2/quay.io/library/nginx/manifests/1.27":                quayDigest,
		"/v2/team/app/manifests/v1?ns=registry.corp:5000":         portDigest,
		"/v2/registry.corp_5000/team/app/manifests/v1":            portDigest,
		"/v2/docker.io/library/nginx/manifests/1.27?ns=docker.io": dockerDigest,
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != want.String() {
			t.Errorf("%s: %d %s, want %s", path, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), want)
		}
	}
	if code, _ := get("/v2/library/nope/manifests/1?ns=docker.io"); code != 404 {
		t.Errorf("unknown image: %d", code)
	}
	// Read-only: a push is refused.
	other, _ := random.Image(128, 1)
	ref, _ := name.ParseReference(host+"/docker.io/library/new:v1", name.Insecure)
	if err := remote.Write(ref, other); err == nil {
		t.Errorf("a read-only registry took a push")
	}
	if !strings.Contains(log.String(), "GET /v2/library/nginx/manifests/1.27?ns=docker.io 200") {
		t.Errorf("request log:\n%s", log.String())
	}
}

func TestHtpasswd(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	file := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(file, []byte("ci:"+string(hash)+"\n"), 0o600)
	host := serve(t, t.TempDir(), Options{Htpasswd: file})
	img, _ := random.Image(128, 1)
	ref, _ := name.ParseReference(host+"/docker.io/x/y:v1", name.Insecure)
	if err := remote.Write(ref, img); err == nil {
		t.Errorf("push without credentials accepted")
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})); err != nil {
		t.Errorf("push with credentials: %v", err)
	}
	if _, err := NewHandler(context.Background(), t.TempDir(), Options{Htpasswd: "/nonexistent"}); err == nil {
		t.Errorf("a missing htpasswd file was accepted")
	}
	if _, err := NewHandler(context.Background(), filepath.Join(t.TempDir(), "none"), Options{}); err == nil {
		t.Errorf("a missing root was accepted")
	}
}

func TestExtractSubset(t *testing.T) {
	// The cache is the blobs directory of an OCI layout: go-containerregistry
	// writes one.
	oci := t.TempDir()
	cache := filepath.Join(oci, "blobs")
	lp, err := layout.Write(oci, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	keep, _ := random.Image(1024, 2)
	drop, _ := random.Image(1024, 2)
	keepDigest, _ := keep.Digest()
	// An index of two images, of which the cache holds both.
	idx, _ := random.Index(256, 1, 2)
	idxDigest, _ := idx.Digest()
	for _, err := range []error{lp.AppendImage(keep), lp.AppendImage(drop), lp.AppendIndex(idx)} {
		if err != nil {
			t.Fatal(err)
		}
	}

	out := t.TempDir()
	err = Extract(cache, out, []Pinned{
		{Repo: "docker.io/acme/keep", Digest: digest.Digest(keepDigest.String()), Tag: "v1"},
		{Repo: "quay.io/acme/multi", Digest: digest.Digest(idxDigest.String()), Tag: "v2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	served := serve(t, out, Options{ReadOnly: true})
	r, _ := name.ParseReference(served+"/docker.io/acme/keep:v1", name.Insecure)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != keepDigest {
		t.Errorf("digest %s, want %s", d, keepDigest)
	}
	// Every layer is there, as the same file (a hard link).
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if _, err := remote.Image(refAt(t, served, "docker.io/acme/drop:v1")); err == nil {
		t.Errorf("an image not asked for was extracted")
	}
	ri, err := remote.Index(refAt(t, served, "quay.io/acme/multi:v2"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := ri.Digest(); d != idxDigest {
		t.Errorf("index digest %s, want %s", d, idxDigest)
	}
	im, _ := ri.IndexManifest()
	for _, m := range im.Manifests {
		if _, err := ri.Image(m.Digest); err != nil {
			t.Errorf("instance %s: %v", m.Digest, err)
		}
	}
}

func refAt(t *testing.T, host, repo string) name.Reference {
	r, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

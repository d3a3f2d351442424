package kubefile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"time"

	"github.com/opencontainers/go-digest"
)

var checksumPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// defaultClient bounds a download so that a stalled server fails the build
// instead of hanging it.
var defaultClient = &http.Client{Timeout: 30 * time.Minute}

// download fetches an https:// source once into the cache: a later build
// reuses the file (verified again when a checksum is given). The file is
// served to buildah as its own named build context.
func (p *planner) download(line int, app, rawURL, checksum string) (source, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return source{}, p.errorf(line, "app %s: source %s is not a valid URL", app, rawURL)
	}
	if checksum != "" && !checksumPattern.MatchString(checksum) {
		return source{}, p.errorf(line, "app %s: --checksum=%s: want sha256: and 64 lower-case hex digits", app, checksum)
	}
	if p.opts.CacheDir == "" {
		return source{}, p.errorf(line, "app %s: source %s needs a download cache, and none is set", app, rawURL)
	}
	key := sha256.Sum256([]byte(rawURL))
	keyHex := hex.EncodeToString(key[:])
	dir := filepath.Join(p.opts.CacheDir, keyHex)
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == ".." || name == "" {
		name = "download"
	}
	file := filepath.Join(dir, name)

	have, err := fileDigest(file)
	switch {
	case err == nil && (checksum == "" || have == checksum):
		// cached
	case err != nil && !os.IsNotExist(err):
		return source{}, p.errorf(line, "app %s: reading cached %s: %v", app, file, err)
	default:
		got, err := p.fetch(rawURL, dir, file)
		if err != nil {
			// Wrapped: a cancelled download must read as the interruption it is.
			return source{}, p.errorf(line, "app %s: downloading %s: %w", app, rawURL, err)
		}
		if checksum != "" && got != checksum {
			os.Remove(file)
			return source{}, p.errorf(line, "app %s: %s has checksum %s, but the Kubefile says %s", app, rawURL, got, checksum)
		}
	}
	context := "hoist-download-" + keyHex[:12]
	p.plan.BuildContexts[context] = dir
	return source{written: rawURL, rel: name, context: context, abs: file}, nil
}

// fetch writes the body to a temporary file and renames it into place, so
// that an interrupted download never looks cached.
func (p *planner) fetch(rawURL, dir, file string) (string, error) {
	client := p.opts.HTTPClient
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(p.fetchCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("server answered %s", resp.Status)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".partial-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	digester := digest.Canonical.Digester()
	if _, err := io.Copy(io.MultiWriter(tmp, digester.Hash()), resp.Body); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return "", err
	}
	return digester.Digest().String(), nil
}

// fileDigest is "sha256:<hex>" of the file, the form of --checksum.
func fileDigest(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d, err := digest.Canonical.FromReader(f)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

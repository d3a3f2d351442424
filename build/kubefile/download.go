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
			return source{}, p.errorf(line, "app %s: downloading %s: %v", app, rawURL, err)
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
	resp, err := client.Get(rawURL)
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
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func fileDigest(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

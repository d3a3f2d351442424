// Package registry stores container images in the CNCF Distribution
// filesystem layout and serves such a directory (hoist registry serve).
//
// Repositories keep their source registry host as their first path
// component (docker.io/library/nginx, quay.io/x/y), so two registries with
// the same path never collide. A repository name cannot hold ':', so a host
// with a port is stored with '_' in its place: registry.corp:5000/x/y is the
// repository registry.corp_5000/x/y. Host names cannot hold '_', so the
// mapping is one to one.
package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
)

// RepositoryPath is where an image's repository lives in a hoist registry.
func RepositoryPath(named reference.Named) (string, error) {
	host := reference.Domain(named)
	if strings.ContainsAny(host, "[]_") {
		return "", fmt.Errorf("%s: registry host %q cannot be stored (IPv6 literals and '_' are not supported)", named, host)
	}
	return strings.ToLower(EncodeHost(host)) + "/" + reference.Path(named), nil
}

// EncodeHost turns a registry host into a repository path component.
func EncodeHost(host string) string {
	return strings.ReplaceAll(host, ":", "_")
}

// DecodeHost turns a repository path component back into a registry host:
// the last '_' before a port is its ':'.
func DecodeHost(component string) string {
	if i := strings.LastIndexByte(component, '_'); i > 0 && i+1 < len(component) && strings.Trim(component[i+1:], "0123456789") == "" {
		return component[:i] + ":" + component[i+1:]
	}
	return component
}

// Hosts lists the registry hosts whose images the registry directory root
// holds.
func Hosts(root string) []string {
	entries, _ := os.ReadDir(filepath.Join(root, v2, "repositories"))
	var hosts []string
	for _, e := range entries {
		if e.IsDir() {
			hosts = append(hosts, DecodeHost(e.Name()))
		}
	}
	return hosts
}

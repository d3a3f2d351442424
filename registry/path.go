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

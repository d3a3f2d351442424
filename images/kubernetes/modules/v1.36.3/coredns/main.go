// Command coredns is CoreDNS built from the Go module proxy, with the same
// plugins as CoreDNS' own release binary (core/plugin imports every plugin of
// its plugin.cfg; core/dnsserver holds their order). It is a wrapper module
// because a main package of a dependency cannot be built with `go install`
// pinned to the versions of go.sum; images/kubernetes/binaries.sh builds it.
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // every plugin of plugin.cfg
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}

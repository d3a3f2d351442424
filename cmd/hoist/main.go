// Command hoist packs a Kubernetes cluster, or an application for one, into
// one OCI image and installs it on machines over SSH. See DESIGN.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// Command hoist packs a Kubernetes cluster, or an application for one, into
// one OCI image and installs it on machines over SSH. See DESIGN.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containers/buildah"
	"go.podman.io/storage/pkg/unshare"
)

func main() {
	// buildah re-executes this binary for some steps; such a child must do
	// that work and stop here.
	if buildah.InitReexec() {
		return
	}
	unshare.MaybeReexecUsingUserNamespace(false)

	// Ctrl-C cancels the running command, which then cleans up (a build
	// removes its working containers) before hoist exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(&globalOptions{process: true}).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

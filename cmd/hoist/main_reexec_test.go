package main

import (
	"os"
	"testing"

	"github.com/containers/buildah"
)

func TestMain(m *testing.M) {
	// buildah re-executes the test binary for some steps.
	if buildah.InitReexec() {
		return
	}
	os.Exit(m.Run())
}

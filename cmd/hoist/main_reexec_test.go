package main

import (
	"os"
	"testing"

	"github.com/containers/buildah"
	"github.com/sirupsen/logrus"
)

func TestMain(m *testing.M) {
	// buildah re-executes the test binary for some steps.
	if buildah.InitReexec() {
		return
	}
	// The libraries log at info level (the registry, every request); tests
	// check errors themselves. HOIST_TEST_DEBUG=1 shows everything.
	logrus.SetLevel(logrus.FatalLevel)
	if os.Getenv("HOIST_TEST_DEBUG") != "" {
		logrus.SetLevel(logrus.DebugLevel)
	}
	os.Exit(m.Run())
}

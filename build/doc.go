// Package build is the build pipeline: a Kubefile's plan (package kubefile)
// run through buildah, the container images it needs collected into the
// registry layer, and the result committed as a cluster image.
//
// Only the front end exists so far: see build/kubefile.
package build

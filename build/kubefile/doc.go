// Package kubefile reads a Kubefile (a Dockerfile plus hoist's cluster
// instructions, compatible with sealer) and turns it into a build Plan: the
// Dockerfile that buildah will run, the image metadata, the files each app
// will hold and the build arguments used.
//
// The Dockerfile syntax is read with github.com/openshift/imagebuilder's
// parser, not BuildKit's. buildah (through imagebuilder) is the engine that
// runs hoist builds, and that parser is the one it hands every Containerfile
// to: line continuations, the escape directive, heredocs, flags and comments
// are therefore split exactly as buildah will split them, and anything this
// package accepts buildah accepts too. BuildKit's parser differs in details
// (it knows directives buildah ignores, reports other errors), so using it
// here would let the two disagree.
//
// Dockerfile instructions are passed through to the output byte for byte,
// but for sealer's ${ARCH}, COPY and ADD into sealer's application/apps/
// (layout.go) and a FROM that --build-context replaces (sealer.go); CMD is
// also read as the cluster command. The cluster instructions (APP,
// APPCMDS, APPENV, LAUNCH, CMDS, CNI, CSI, KUBEVERSION, IMAGE) are compiled
// into metadata, and APP, CNI and CSI sources into COPY steps to
// apps/<name>/. The package reads the Kubefile, the build context and, for
// https:// sources, a download cache; it builds nothing.
package kubefile

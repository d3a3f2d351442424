package kubefile

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// Plan is everything a build needs, decided before anything is built.
type Plan struct {
	// File is the Kubefile as the user named it; errors and warnings use it.
	File string
	// ContextDir is the build context, absolute.
	ContextDir string
	// Platform is the target platform this plan was made for: ${ARCH} and the
	// downloaded sources depend on it, so a multi-platform build has one plan
	// per platform.
	Platform Platform
	// Dockerfile is the text buildah will run: the Kubefile's Dockerfile
	// instructions unchanged, cluster instructions commented out and APP,
	// CNI and CSI sources turned into COPY steps.
	Dockerfile string
	// Metadata is the document to store under the io.hoist.image.metadata
	// annotation. Its image list stays empty until images are collected.
	Metadata *metadata.Metadata
	// AppFiles lists, per app, every file the app will hold, as image paths
	// (apps/<name>/...), sorted.
	AppFiles map[string][]string
	// AppSources lists, per app of this Kubefile, where its sources are on
	// this machine (absolute: in the context, or a download in the cache),
	// in the order given: what a dry run reads to find the app's images
	// without building.
	AppSources map[string][]string
	// BuildArgs are the --build-arg values some ARG consumes; the others are
	// reported in Warnings, as docker does.
	BuildArgs map[string]string
	// BuildContexts are extra named build contexts (name to directory) that
	// the COPY steps of downloaded sources read with --from.
	BuildContexts map[string]string
	// Base is the image the final stage starts from (through any earlier
	// stage it is built FROM), with variables expanded; "" for scratch.
	Base string
	// Bases are the images every stage starts from (not another stage,
	// not scratch), variables expanded, in order: what the build reads
	// besides the context, for the build cache's key.
	Bases []string
	// HasRun tells whether any stage runs commands (RUN), which a foreign
	// platform can only do with binfmt support.
	HasRun bool
	// Parent is the metadata of the hoist base image, when there is one.
	Parent *metadata.Metadata
	// Images are the references the IMAGE instruction asks to bundle.
	Images []ImageRef
	// Warnings are non-fatal findings, each starting with file:line.
	Warnings []string
}

// ImageRef is a container image named in the Kubefile, normalised
// (docker.io/library/nginx:latest for nginx).
type ImageRef struct {
	Ref  string
	Line int
}

// Platform is an OCI platform: os, architecture and optional variant.
type Platform struct {
	OS, Arch, Variant string
}

func (p Platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Arch + "/" + p.Variant
	}
	return p.OS + "/" + p.Arch
}

// HostPlatform is the platform of the running binary.
func HostPlatform() Platform {
	return Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// ParsePlatform reads "os/arch" or "os/arch/variant".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	for _, part := range parts {
		if part == "" || strings.TrimSpace(part) != part {
			return Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant], such as linux/amd64", s)
		}
	}
	switch len(parts) {
	case 2:
		return Platform{OS: parts[0], Arch: parts[1]}, nil
	case 3:
		return Platform{OS: parts[0], Arch: parts[1], Variant: parts[2]}, nil
	}
	return Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant], such as linux/amd64", s)
}

// buildArgs returns the automatic platform arguments docker and buildah
// define (TARGETARCH and friends), for this platform as both build and target.
func (p Platform) buildArgs() map[string]string {
	args := map[string]string{}
	for _, prefix := range []string{"TARGET", "BUILD"} {
		args[prefix+"PLATFORM"] = p.String()
		args[prefix+"OS"] = p.OS
		args[prefix+"ARCH"] = p.Arch
		args[prefix+"VARIANT"] = p.Variant
	}
	return args
}

// Error is a problem in a Kubefile, at a line.
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

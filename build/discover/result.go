package discover

import (
	"fmt"
	"sort"
	"strings"
)

// Kind says how an image was found, that is what runs it: the kubelet for
// a pod, an operator for a custom resource or an argument.
type Kind string

// Kinds of Source.
const (
	// KindPod: the image of a container (or an image volume) of a pod or
	// of a pod template, in any object.
	KindPod Kind = "pod"
	// KindCustomResource: a string field named image under an object's
	// spec, outside the containers, or a repository and tag (and registry)
	// split; the operator that owns the resource starts it.
	KindCustomResource Kind = "custom-resource"
	// KindArgument: a container's --flag=VALUE (or --flag VALUE) naming an
	// image, or a RELATED_IMAGE_* environment variable: an image an
	// operator is told to start.
	KindArgument Kind = "argument"
	// KindAnnotation: a chart's image annotation (helm.sh/images,
	// artifacthub.io/images, Bitnami's images).
	KindAnnotation Kind = "annotation"
	// KindImageList: a line of an image list.
	KindImageList Kind = "image-list"
	// KindPossible: a string that looks like a fully qualified reference
	// elsewhere, or an image field without a tag: only listed, never bundled.
	KindPossible Kind = "possible"
)

// Source is one place an image was found.
type Source struct {
	// FoundIn is the place, as Image.FoundIn shows it.
	FoundIn string `json:"foundIn"`
	Kind    Kind   `json:"kind"`
	// Field is the path of the value in the object, such as
	// spec.template.spec.containers[0].args[2]; empty for annotations and
	// image lists.
	Field string `json:"field,omitempty"`
}

// Result is everything Search found.
type Result struct {
	// Images are the images to bundle.
	Images []Image `json:"images"`
	// Possible are strings that look like image references but are not
	// in a place known to name an image (a ConfigMap value, an environment
	// variable, an image field without a tag): not bundled, worth a
	// warning. An image that is also found elsewhere is not listed here.
	Possible []Image `json:"possible"`
	// Skipped are the images only Helm test hooks name, not bundled
	// unless Options.IncludeTests.
	Skipped []Image `json:"skipped"`
}

// records are images by normalised reference, each with its sources.
type records map[string]map[Source]bool

func (r records) add(ref string, src Source) {
	if r[ref] == nil {
		r[ref] = map[Source]bool{}
	}
	r[ref][src] = true
}

// images returns the records as Images sorted by Ref, leaving out the
// references in any of except.
func (r records) images(except ...records) []Image {
	images := make([]Image, 0, len(r))
next:
	for ref, sources := range r {
		for _, e := range except {
			if e[ref] != nil {
				continue next
			}
		}
		img := Image{Ref: ref}
		places, kinds := map[string]bool{}, map[Kind]bool{}
		for src := range sources {
			img.Sources = append(img.Sources, src)
			if !places[src.FoundIn] {
				places[src.FoundIn] = true
				img.FoundIn = append(img.FoundIn, src.FoundIn)
			}
			if !kinds[src.Kind] {
				kinds[src.Kind] = true
				img.Kinds = append(img.Kinds, src.Kind)
			}
		}
		sort.Strings(img.FoundIn)
		sort.Slice(img.Kinds, func(i, j int) bool { return img.Kinds[i] < img.Kinds[j] })
		sort.Slice(img.Sources, func(i, j int) bool {
			a, b := img.Sources[i], img.Sources[j]
			if a.FoundIn != b.FoundIn {
				return a.FoundIn < b.FoundIn
			}
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			return a.Field < b.Field
		})
		images = append(images, img)
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Ref < images[j].Ref })
	return images
}

// result sorts out what f found: what test hooks alone name is skipped,
// and a possible reference that is bundled or skipped anyway is not worth
// a warning.
func (f *finder) result() *Result {
	return &Result{
		Images:   f.found.images(),
		Skipped:  f.skipped.images(f.found),
		Possible: f.possible.images(f.found, f.skipped),
	}
}

// Warnings are what a person should read about Possible and Skipped, one
// sentence each (without a "warning:" prefix, as Options.Warn gets them):
// images that may be missing from the cluster image, and those left out
// on purpose.
func (r *Result) Warnings() []string {
	var out []string
	for _, img := range r.Possible {
		out = append(out, fmt.Sprintf("possible image, not bundled: %s in %s; if the cluster runs it, list it in an image list (--image-list) or an IMAGE instruction", img.Ref, places(img)))
	}
	for _, img := range r.Skipped {
		out = append(out, fmt.Sprintf("not bundled, only Helm test hooks run it: %s in %s; --include-tests bundles it", img.Ref, places(img)))
	}
	return out
}

// places lists where an image was found, with the field when there is one:
// "configmap.yaml (ConfigMap/settings) data.reloader".
func places(img Image) string {
	var out []string
	for _, s := range img.Sources {
		p := s.FoundIn
		if s.Field != "" {
			p += " " + s.Field
		}
		out = append(out, p)
	}
	return strings.Join(out, ", ")
}

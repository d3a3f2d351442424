package kubefile

import (
	"fmt"
	"path"
	"strings"

	"github.com/distribution/reference"
	"github.com/openshift/imagebuilder/dockerfile/parser"
)

// hoistKubernetes is hoist's own Kubernetes base image, without its tag
// (docs/kubernetes.md).
const hoistKubernetes = "hoist.dev/kubernetes"

// sealerNamespaces hold sealer's images, on Docker Hub (sealerio) and on
// the Alibaba Cloud registries its docs use (sealer-io).
var sealerNamespaces = []string{"sealerio", "sealer-io"}

// Sealer writes these on every image it builds: the manifest annotation
// of its image spec, and the label of its version.
const (
	sealerExtension = "sealer.image.extension"
	sealerVersion   = "io.sealer.version"
)

// SealerImage tells, from an image's config labels and manifest
// annotations, whether sealer built it, and how it shows: "" when it did
// not. The build asks it of the base image once it has it (Options.SealerBase).
func SealerImage(labels, annotations map[string]string) string {
	if _, ok := annotations[sealerExtension]; ok {
		return "its annotation " + sealerExtension + " is sealer's image spec"
	}
	if v, ok := labels[sealerVersion]; ok {
		return fmt.Sprintf("its label %s=%s says sealer built it", sealerVersion, v)
	}
	return ""
}

// sealerName tells whether an image name is in one of sealer's namespaces.
func sealerName(image string) bool {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(reference.Path(named), "/")
	for _, ns := range sealerNamespaces {
		if first == ns {
			return true
		}
	}
	return false
}

// checkSealerBase refuses a final stage built on a sealer image: its
// Kubernetes is installed by sealer's scripts, from sealer's layout, which
// hoist does not run. The message names what to write instead.
func (p *planner) checkSealerBase(line int, base string) error {
	why := p.opts.SealerBase
	if why == "" && sealerName(base) {
		why = "its name is in sealer's namespace"
	}
	if why == "" {
		return nil
	}
	// sealer's Kubernetes images are tagged with the version they install.
	instead := hoistKubernetes + ":<version>"
	if named, err := reference.ParseNormalizedNamed(base); err == nil {
		tagged, ok := named.(reference.Tagged)
		if ok && strings.HasPrefix(path.Base(reference.Path(named)), "kubernetes") {
			instead = hoistKubernetes + ":" + tagged.Tag()
		}
	}
	return p.errorf(line, "FROM %s: a sealer image (%s), which hoist cannot build on: its Kubernetes and apps are installed by sealer's own scripts and layout. Write FROM %s (hoist's Kubernetes base image, see docs/kubernetes.md) or an image hoist built, or keep this line and build with --build-context %s=docker-image://%s", base, why, instead, base, instead)
}

// buildContext returns the image a --build-context gives in place of
// the FROM image base. Names match as written, or as the same image
// reference (sealerio/kubernetes:v1 is docker.io/sealerio/kubernetes:v1).
func (p *planner) buildContext(base string) (string, bool) {
	if ref, ok := p.opts.BuildContexts[base]; ok {
		return ref, true
	}
	want, ok := normalized(base)
	if !ok {
		return "", false
	}
	for name, ref := range p.opts.BuildContexts {
		if n, ok := normalized(name); ok && n == want {
			return ref, true
		}
	}
	return "", false
}

func normalized(image string) (string, bool) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", false
	}
	return reference.TagNameOnly(named).String(), true
}

// fromLine is a FROM instruction with its image replaced, flags and stage
// name kept.
func fromLine(n *parser.Node, image string, args []string) string {
	words := append([]string{instructionWord(n)}, n.Flags...)
	words = append(words, image)
	if len(args) == 3 {
		words = append(words, args[1], args[2])
	}
	return strings.Join(words, " ")
}

// imageSchemes are the --build-context values that name an image, as
// buildah reads them.
var imageSchemes = []string{"docker-image://", "container-image://", "docker://"}

// ParseBuildContext reads one --build-context NAME=docker-image://REF:
// the image REF replaces FROM NAME. Other kinds of build contexts
// (directories, URLs) are refused: a FROM can only name an image.
func ParseBuildContext(value string) (name, ref string, err error) {
	name, source, ok := strings.Cut(value, "=")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
		return "", "", fmt.Errorf("--build-context %q: want NAME=docker-image://REF (REF builds what FROM NAME would)", value)
	}
	for _, scheme := range imageSchemes {
		if r, ok := strings.CutPrefix(source, scheme); ok {
			// Kept as written: the store looks a short name up as
			// buildah would, which a normalised one would not match.
			if _, err := reference.ParseNormalizedNamed(r); err != nil {
				return "", "", fmt.Errorf("--build-context %q: %q is not an image reference: %v", value, r, err)
			}
			return name, r, nil
		}
	}
	return "", "", fmt.Errorf("--build-context %q: only an image is supported, NAME=docker-image://REF (REF builds what FROM %s would)", value, name)
}

// ParseBuildContexts reads every --build-context value, NAME to REF.
func ParseBuildContexts(values []string) (map[string]string, error) {
	contexts := map[string]string{}
	for _, v := range values {
		name, ref, err := ParseBuildContext(v)
		if err != nil {
			return nil, err
		}
		if _, ok := contexts[name]; ok {
			return nil, fmt.Errorf("--build-context %q: %s is given twice", v, name)
		}
		contexts[name] = ref
	}
	return contexts, nil
}

package discover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/distribution/reference"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

// containerLists are the pod spec fields that hold containers with images.
var containerLists = []string{"containers", "initContainers", "ephemeralContainers"}

// relatedImagePrefix starts the environment variables through which an
// operator gets the images it starts: the Operator Lifecycle Manager's
// convention, which it rewrites to digests for disconnected installs.
const relatedImagePrefix = "RELATED_IMAGE_"

// testHooks are the helm.sh/hook values of a Helm test: test, and Helm
// 2's test-success, which Helm 3 still runs as a test. (Helm 3 drops an
// object with test-failure, an unknown hook, so it never renders.)
var testHooks = map[string]bool{"test": true, "test-success": true, "test-failure": true}

// manifests records the images of the Kubernetes objects in data, a YAML
// stream or JSON; name is the file as FoundIn shows it.
func (f *finder) manifests(name string, data []byte) error { return f.decode(name, data, false) }

// rendered records the images of the objects a chart rendered: unlike a
// plain manifest's (which hoist applies whatever its annotations), their
// Helm test hooks are not installed.
func (f *finder) rendered(name string, data []byte) error { return f.decode(name, data, true) }

func (f *finder) decode(name string, data []byte, fromChart bool) error {
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for doc := 1; ; doc++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			hint := ""
			if bytes.Contains(data, []byte("{{")) {
				hint = " (a template that was not rendered?)"
			}
			return fmt.Errorf("%s: document %d: invalid YAML%s: %w", name, doc, hint, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if err := f.object(name, obj, fromChart); err != nil {
			return err
		}
	}
}

// object records the images of one decoded object; documents that are not
// Kubernetes objects (values files, configuration) hold none.
func (f *finder) object(name string, obj map[string]any, fromChart bool) error {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	if kind == "" || apiVersion == "" {
		return nil
	}
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		for _, item := range items {
			if m, ok := item.(map[string]any); ok {
				if err := f.object(name, m, fromChart); err != nil {
					return err
				}
			}
		}
		return nil
	}
	w := &objectWalk{
		f:        f,
		where:    fmt.Sprintf("%s (%s/%s)", name, kind, objectName(obj)),
		found:    f.found,
		possible: f.possible,
		claimed:  map[string]bool{},
	}
	if fromChart && isTestHook(obj) && !f.opts.IncludeTests {
		// Nothing runs it at install; what only it names is listed as
		// skipped, and it is no place to warn about.
		w.found, w.possible = f.skipped, nil
	}
	if err := w.pods(obj, ""); err != nil {
		return err
	}
	if kind == "CustomResourceDefinition" {
		// A schema: its descriptions and examples name no image that runs.
		return nil
	}
	w.fields(obj, "", "", false)
	return nil
}

func objectName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	if name, _ := meta["name"].(string); name != "" {
		return name
	}
	name, _ := meta["generateName"].(string)
	return name
}

// isTestHook tells whether every hook an object's helm.sh/hook annotation
// lists is a test: a test that is also a pre-install hook runs at install.
func isTestHook(obj map[string]any) bool {
	meta, _ := obj["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	hooks, _ := annotations["helm.sh/hook"].(string)
	if strings.TrimSpace(hooks) == "" {
		return false
	}
	for _, h := range strings.Split(hooks, ",") {
		if !testHooks[strings.ToLower(strings.TrimSpace(h))] {
			return false
		}
	}
	return true
}

// objectWalk finds the images of one object in two passes: pods (the
// containers, their arguments and environment, image volumes), then every
// other field (custom resources' image fields, possible references). The
// first pass claims the fields it read, so that the second does not read
// them again as something else.
type objectWalk struct {
	f     *finder
	where string
	// found gets the images to bundle (the finder's skipped ones in a test
	// hook); possible the possible ones (nil: none).
	found, possible records
	claimed         map[string]bool
}

func (w *objectWalk) record(set records, ref string, kind Kind, p string) {
	if set == nil || w.f.excluded(ref) {
		return
	}
	set.add(ref, Source{FoundIn: w.where, Kind: kind, Field: p})
}

// pods reads every container list anywhere in v, at path p: pods, pod
// templates, and custom resources that embed either (an Argo Rollout, a
// Prometheus's container overrides). Map keys are visited in order so
// that the first error reported is always the same one.
func (w *objectWalk) pods(v any, p string) error {
	switch v := v.(type) {
	case map[string]any:
		for _, key := range containerLists {
			list, _ := v[key].([]any)
			for i, c := range list {
				c, ok := c.(map[string]any)
				if !ok {
					continue
				}
				if err := w.container(c, index(field(p, key), i)); err != nil {
					return err
				}
			}
		}
		if err := w.imageVolumes(v, p); err != nil {
			return err
		}
		for _, k := range sortedKeys(v) {
			if err := w.pods(v[k], field(p, k)); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := w.pods(e, index(p, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// container reads one container: its image, which must be a reference,
// the images its command line passes, and its RELATED_IMAGE_* variables.
func (w *objectWalk) container(c map[string]any, p string) error {
	name, _ := c["name"].(string)
	// A container without an image is an override of one defined
	// elsewhere, as in some custom resources: it names none itself.
	if image, ok := c["image"]; ok {
		s, ok := image.(string)
		if !ok || s == "" {
			return fmt.Errorf("%s: container %q: image %v is not an image reference", w.where, name, image)
		}
		ip := field(p, "image")
		w.claimed[ip] = true
		if err := w.f.addTo(w.found, s, Source{FoundIn: w.where, Kind: KindPod, Field: ip}); err != nil {
			return err
		}
	}
	for _, key := range []string{"command", "args"} {
		items, _ := c[key].([]any)
		w.arguments(items, field(p, key))
	}
	env, _ := c["env"].([]any)
	for i, e := range env {
		m, _ := e.(map[string]any)
		name, _ := m["name"].(string)
		value, _ := m["value"].(string)
		if strings.HasPrefix(name, relatedImagePrefix) {
			w.named(value, KindArgument, field(index(field(p, "env"), i), "value"))
		}
	}
	return nil
}

// arguments reads a command line for the images it passes: --flag=VALUE,
// or --flag VALUE as two items, where VALUE is a fully qualified reference
// or the flag's name says it takes an image (--acme-http01-solver-image).
func (w *objectWalk) arguments(items []any, p string) {
	for i := 0; i < len(items); i++ {
		s, _ := items[i].(string)
		name, value, inline := splitFlag(s)
		if name == "" {
			continue
		}
		vp, two := index(p, i), false
		if !inline {
			next, ok := "", false
			if i+1 < len(items) {
				next, ok = items[i+1].(string)
			}
			if !ok || strings.HasPrefix(next, "-") {
				continue
			}
			value, vp, two = next, index(p, i+1), true
		}
		var taken bool
		if _, ok := qualified(value); ok || namesImage(name) {
			taken = w.named(value, KindArgument, vp)
		}
		if taken && two {
			i++
		}
	}
}

// imageVolumes reads the image volumes of a pod spec (volumes[].image,
// Kubernetes 1.31+): images the kubelet pulls as a container's.
func (w *objectWalk) imageVolumes(v map[string]any, p string) error {
	vols, _ := v["volumes"].([]any)
	for i, vol := range vols {
		m, _ := vol.(map[string]any)
		img, _ := m["image"].(map[string]any)
		raw, ok := img["reference"]
		if !ok {
			continue
		}
		name, _ := m["name"].(string)
		s, ok := raw.(string)
		if !ok || s == "" {
			return fmt.Errorf("%s: volume %q: image reference %v is not an image reference", w.where, name, raw)
		}
		rp := field(field(index(field(p, "volumes"), i), "image"), "reference")
		w.claimed[rp] = true
		if err := w.f.addTo(w.found, s, Source{FoundIn: w.where, Kind: KindPod, Field: rp}); err != nil {
			return err
		}
	}
	return nil
}

// named records s, found at p in a place meant for an image (a flag or a
// field that says so): bundled when it names its tag or digest, possible
// when it does not (the operator may add a tag of its own). It reports
// whether s was a reference at all; one that is not (empty, a policy
// word, a $(VAR)) names nothing, which is no error in a field whose
// meaning hoist only guesses.
func (w *objectWalk) named(s string, kind Kind, p string) bool {
	named, ok := parseImage(s)
	if !ok {
		return false
	}
	w.claimed[p] = true
	if pinned(named) {
		w.record(w.found, reference.TagNameOnly(named).String(), kind, p)
	} else {
		w.record(w.possible, named.String(), KindPossible, p)
	}
	return true
}

// fields reads every field the pods pass did not claim: under spec, a
// string named image, or a repository and tag split, is an image of a
// custom resource; anywhere, a string holding a fully qualified reference
// is a possible one. key is v's key in its map ("" in a list).
func (w *objectWalk) fields(v any, p, key string, underSpec bool) {
	switch v := v.(type) {
	case map[string]any:
		if underSpec {
			w.split(v, p)
		}
		for _, k := range sortedKeys(v) {
			w.fields(v[k], field(p, k), k, underSpec || (p == "" && k == "spec"))
		}
	case []any:
		for i, e := range v {
			w.fields(e, index(p, i), "", underSpec)
		}
	case string:
		if w.claimed[p] {
			return
		}
		if underSpec && key == "image" && w.named(v, KindCustomResource, p) {
			return
		}
		w.possibleIn(v, p)
	}
}

// split records the image of a map that splits it into repository and tag
// (or digest), with an optional registry, as charts' values and many
// custom resources do: {registry: quay.io, repository: org/app, tag: v1}.
// Without a tag or digest the map may be anything else (a Git repository).
func (w *objectWalk) split(m map[string]any, p string) {
	repo, _ := m["repository"].(string)
	tag, _ := m["tag"].(string)
	digest, _ := m["digest"].(string)
	if repo == "" || tag == "" && digest == "" {
		return
	}
	s := repo
	if registry, _ := m["registry"].(string); registry != "" {
		s = strings.TrimSuffix(registry, "/") + "/" + repo
	}
	if tag != "" {
		s += ":" + tag
	}
	if digest != "" {
		s += "@" + digest
	}
	named, ok := parseImage(s)
	if !ok {
		return
	}
	for _, k := range []string{"registry", "repository", "tag", "digest"} {
		w.claimed[field(p, k)] = true
	}
	w.record(w.found, reference.TagNameOnly(named).String(), KindCustomResource, p)
}

// possibleIn records the fully qualified references in s, a value or a
// text (a script, a configuration file), as possible.
func (w *objectWalk) possibleIn(s, p string) {
	if w.possible == nil || !strings.Contains(s, "/") || !strings.ContainsAny(s, ":@") {
		return
	}
	for _, word := range strings.FieldsFunc(s, separator) {
		// The end of a sentence or a YAML key is not part of a tag.
		if named, ok := qualified(strings.TrimRight(word, ".:")); ok {
			w.record(w.possible, reference.TagNameOnly(named).String(), KindPossible, p)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

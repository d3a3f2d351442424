package discover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

// containerLists are the pod spec fields that hold containers with images.
var containerLists = []string{"containers", "initContainers", "ephemeralContainers"}

// manifests records the images of the Kubernetes objects in data, a YAML
// stream or JSON; name is the file as FoundIn shows it.
func (f *finder) manifests(name string, data []byte) error {
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
		if err := f.object(name, obj); err != nil {
			return err
		}
	}
}

// object records the images of one decoded object; documents that are not
// Kubernetes objects (values files, configuration) hold none.
func (f *finder) object(name string, obj map[string]any) error {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	if kind == "" || apiVersion == "" {
		return nil
	}
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		for _, item := range items {
			if m, ok := item.(map[string]any); ok {
				if err := f.object(name, m); err != nil {
					return err
				}
			}
		}
		return nil
	}
	where := fmt.Sprintf("%s (%s/%s)", name, kind, objectName(obj))
	return containerImages(obj, func(image any, container string) error {
		s, ok := image.(string)
		if !ok || s == "" {
			return fmt.Errorf("%s: container %q: image %v is not an image reference", where, container, image)
		}
		return f.add(s, where)
	})
}

func objectName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	if name, _ := meta["name"].(string); name != "" {
		return name
	}
	name, _ := meta["generateName"].(string)
	return name
}

// containerImages calls fn with the image and name of every container of
// every container list found anywhere in v. Map keys are visited in order
// so that the first error reported is always the same one.
func containerImages(v any, fn func(image any, container string) error) error {
	switch v := v.(type) {
	case map[string]any:
		for _, key := range containerLists {
			list, _ := v[key].([]any)
			for _, c := range list {
				c, ok := c.(map[string]any)
				if !ok {
					continue
				}
				image, ok := c["image"]
				if !ok {
					// An override of a container defined elsewhere, as in
					// some custom resources: it names no image.
					continue
				}
				name, _ := c["name"].(string)
				if err := fn(image, name); err != nil {
					return err
				}
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := containerImages(v[k], fn); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := containerImages(e, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

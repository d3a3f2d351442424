package launch

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Rewriter maps image references to where the images were pushed, for
// clusters whose nodes have no mirror configuration: a workload's
// "nginx:1.27" becomes "registry.corp:5000/docker.io/library/nginx@sha256:...".
type Rewriter map[string]string // normalized reference → new reference

// Add maps ref (tagged, or by digest) to its pushed copy.
func (r Rewriter) Add(ref, pushed, digest string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return err
	}
	r[reference.TagNameOnly(named).String()] = pushed
	r[named.Name()+"@"+digest] = pushed
	return nil
}

// image returns the new reference of ref, if it has one.
func (r Rewriter) image(ref string) (string, bool) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", false
	}
	if canonical, ok := named.(reference.Canonical); ok {
		if to, ok := r[named.Name()+"@"+canonical.Digest().String()]; ok {
			return to, true
		}
	}
	to, ok := r[reference.TagNameOnly(named).String()]
	return to, ok
}

// podSpecPaths are where workloads keep their pod spec.
var podSpecPaths = [][]string{
	{"spec"},                     // Pod
	{"spec", "template", "spec"}, // Deployment, StatefulSet, DaemonSet, ReplicaSet, Job
	{"spec", "jobTemplate", "spec", "template", "spec"}, // CronJob
}

// Object rewrites the images of one object in place; it returns how many.
func (r Rewriter) Object(obj *unstructured.Unstructured) int {
	n := 0
	for _, p := range podSpecPaths {
		spec, ok, _ := unstructured.NestedMap(obj.Object, p...)
		if !ok {
			continue
		}
		changed := false
		for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
			list, ok := spec[field].([]any)
			if !ok {
				continue
			}
			for _, c := range list {
				m, ok := c.(map[string]any)
				if !ok {
					continue
				}
				if ref, ok := m["image"].(string); ok {
					if to, ok := r.image(ref); ok {
						m["image"] = to
						changed = true
						n++
					}
				}
			}
		}
		if changed {
			unstructured.SetNestedMap(obj.Object, spec, p...)
		}
	}
	return n
}

// Run rewrites the images of a chart's rendered manifests: Helm's
// post-renderer.
func (r Rewriter) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(rendered, 4096)
	var out bytes.Buffer
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("rewriting images: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		r.Object(&unstructured.Unstructured{Object: obj})
		data, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	return &out, nil
}

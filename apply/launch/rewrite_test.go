package launch

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestRewriter(t *testing.T) {
	const d = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	rw := Rewriter{}
	if err := rw.Add("docker.io/library/nginx:1.27", "reg:5000/docker.io/library/nginx@"+d, d); err != nil {
		t.Fatal(err)
	}
	rw.Add("quay.io/acme/tool:v1", "reg:5000/quay.io/acme/tool@"+d, d)
	var cron map[string]any
	yaml.Unmarshal([]byte(`apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: i, image: "nginx:1.27"}]
          containers: [{name: c, image: "quay.io/acme/tool@`+d+`"}, {name: other, image: "busybox"}]
`), &cron)
	obj := &unstructured.Unstructured{Object: cron}
	if n := rw.Object(obj); n != 2 {
		t.Errorf("rewrote %d images, want 2", n)
	}
	spec, _, _ := unstructured.NestedMap(obj.Object, "spec", "jobTemplate", "spec", "template", "spec")
	init := spec["initContainers"].([]any)[0].(map[string]any)["image"]
	cs := spec["containers"].([]any)
	if init != "reg:5000/docker.io/library/nginx@"+d || cs[0].(map[string]any)["image"] != "reg:5000/quay.io/acme/tool@"+d || cs[1].(map[string]any)["image"] != "busybox" {
		t.Errorf("after rewrite: %v", spec)
	}
	// As Helm's post-renderer, over a rendered stream.
	out, err := rw.Run(bytes.NewBufferString("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx:1.27}]}\n---\n# empty\n"))
	if err != nil || !strings.Contains(out.String(), "image: reg:5000/docker.io/library/nginx@"+d) {
		t.Errorf("post-render: %v\n%s", err, out)
	}
}

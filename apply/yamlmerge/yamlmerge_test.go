package yamlmerge

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestOverlay(t *testing.T) {
	current := "a: 1\nm:\n  x: 1\n  l: [1, 2]\n---\n\n---\nb: 2\nm: scalar\n"
	over := "a: 9\nm:\n  l: [3]\n  new: v\nc: 3\n"
	for _, c := range []struct {
		missing Missing
		want    string
	}{
		{KeepMissing, "a: 9\nm:\n  l:\n  - 3\n  x: 1\n---\nb: 2\nm:\n  l:\n  - 3\n  new: v\n"},
		{AddMissing, "a: 9\nc: 3\nm:\n  l:\n  - 3\n  new: v\n  x: 1\n---\na: 9\nb: 2\nc: 3\nm:\n  l:\n  - 3\n  new: v\n"},
	} {
		out, err := Overlay([]byte(current), []byte(over), c.missing)
		if err != nil || string(out) != c.want {
			t.Errorf("missing=%v: %v\n%s\nwant\n%s", c.missing, err, out, c.want)
		}
	}
}

func TestOverlayRefuses(t *testing.T) {
	for _, c := range []struct{ current, over, want string }{
		{"a: 1\n", "- a\n", "the data is not a YAML map: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"},
		{"a: 1\n---\n[x\n", "a: 2\n", "document 2 of the image's file: error converting YAML to JSON: yaml: line 1: did not find expected ',' or ']'"},
	} {
		_, err := Overlay([]byte(c.current), []byte(c.over), AddMissing)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q over %q: %v\nwant %s", c.over, c.current, err, c.want)
		}
	}
}

// FuzzOverlay: files come with images, the map with Clusterfiles. Either
// an error, or YAML whose every document has the map's keys (AddMissing).
func FuzzOverlay(f *testing.F) {
	f.Add("a: 1\nm: {x: 1}\n---\nb: 2\n", "m: {y: 2}\nc: [1]\n")
	f.Add("", "a: 1")
	f.Add("a: &x [*x]\n", "a: 1")
	f.Add("---\n---\n", "{}")
	f.Add("a: 1", "null")
	f.Fuzz(func(t *testing.T, current, over string) {
		out, err := Overlay([]byte(current), []byte(over), AddMissing)
		if err != nil {
			return
		}
		var patch map[string]any
		yaml.Unmarshal([]byte(over), &patch)
		for i, doc := range strings.Split(string(out), "---\n") {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatalf("document %d of the result: %v\n%s", i+1, err, out)
			}
			for k := range patch {
				if _, ok := m[k]; !ok && len(out) > 0 {
					t.Fatalf("document %d lacks %q\n%s", i+1, k, out)
				}
			}
		}
	})
}

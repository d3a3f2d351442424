package metadata

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEmptyListsAreNeverNull(t *testing.T) {
	m := &Metadata{SchemaVersion: SchemaVersion, Type: TypeCluster, Apps: []App{{Name: "a", Type: AppHelm}}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "null") {
		t.Errorf("null in %s", data)
	}
	want := `{"schemaVersion":"v1alpha1","type":"cluster","apps":[{"name":"a","type":"helm","files":[],"cmds":[],"env":{}}],"launch":{"apps":[],"cmds":[],"cmd":[]},"env":{},"kubeVersion":"","renderKubeVersion":"","cni":[],"csi":[],"images":[]}`
	if string(data) != want {
		t.Errorf("got  %s\nwant %s", data, want)
	}
}

func TestRangesStayReadable(t *testing.T) {
	m := New(TypeApp)
	m.KubeVersion = ">=1.28 <1.38"
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"kubeVersion":">=1.28 <1.38"`) {
		t.Errorf("escaped: %s", data)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	m := New(TypeCluster)
	m.Apps = []App{{Name: "web", Type: AppHelm, Files: []string{"apps/web/"}, Env: map[string]string{"K": "V"}}}
	m.Launch.Apps = []string{"web"}
	m.RenderKubeVersion = "v1.37.2"
	m.Images = []Image{{Ref: "docker.io/library/nginx:1.27", Digest: "sha256:" + strings.Repeat("a", 64), Platform: "linux/amd64", FoundIn: "apps/web/templates/deploy.yaml"}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if string(again) != string(data) {
		t.Errorf("round trip changed:\n%s\n%s", data, again)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"schemaVersion":"v2","type":"cluster"}`, "schemaVersion \"v2\" is not supported"},
		{`{"schemaVersion":"v1alpha1","type":"vm"}`, "type \"vm\""},
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"","type":"helm"}]}`, "has no name"},
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"a","type":"helm"},{"name":"a","type":"shell"}]}`, "appears twice"},
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"a","type":"ansible"}]}`, "unknown type \"ansible\""},
		// The name is the app's folder, apps/<name>/: never outside it.
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"../../etc","type":"shell"}]}`, `app name "../../etc": want lower-case letters`},
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"Web","type":"helm"}]}`, `app name "Web"`},
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"` + strings.Repeat("a", 54) + `","type":"helm"}]}`, "at most 53 characters"},
		{`{"schemaVersion":"v1alpha1","type":"app","launch":{"apps":["x"]}}`, "launch names app \"x\""},
		{`{"schemaVersion":"v1alpha1","type":"app","cni":["x"]}`, "plugin app \"x\""},
		{`{"schemaVersion":`, "decoding io.hoist.image.metadata"},
		{`{"schemaVersion":"v1alpha1","type":"app","renderKubeVersion":"1.37"}`, `renderKubeVersion "1.37": not a Kubernetes version`},
	} {
		_, err := Decode([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// The types are typed strings; a document whose type is not a string must
// still fail as it did when they were plain ones.
func TestDecodeTypeMismatch(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"schemaVersion":"v1alpha1","type":5}`, "decoding io.hoist.image.metadata: json: cannot unmarshal number into Go struct field Metadata.type of type string"},
		{`{"schemaVersion":"v1alpha1","type":"app","apps":[{"name":"a","type":true}]}`, "decoding io.hoist.image.metadata: json: cannot unmarshal bool into Go struct field App.apps.type of type string"},
	} {
		_, err := Decode([]byte(tc.doc))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// An image built before renderKubeVersion existed decodes, with it empty;
// one with a pre-release version decodes too.
func TestRenderKubeVersionOptional(t *testing.T) {
	m, err := Decode([]byte(`{"schemaVersion":"v1alpha1","type":"cluster","kubeVersion":">=1.28"}`))
	if err != nil || m.RenderKubeVersion != "" {
		t.Errorf("old document: %+v, %v", m, err)
	}
	m, err = Decode([]byte(`{"schemaVersion":"v1alpha1","type":"cluster","renderKubeVersion":"v1.38.0-rc.1"}`))
	if err != nil || m.RenderKubeVersion != "v1.38.0-rc.1" {
		t.Errorf("pre-release: %+v, %v", m, err)
	}
}

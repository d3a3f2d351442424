package metadata

import (
	"testing"
)

// FuzzDecode: the metadata document comes with an image, from anyone.
// Decode returns metadata that validates, encodes and decodes to the same
// document, or an error; never a panic.
func FuzzDecode(f *testing.F) {
	m := New(TypeCluster)
	m.Apps = []App{{Name: "web", Type: AppHelm, Files: []string{"apps/web/"}}}
	m.Launch.Apps = []string{"web"}
	m.CNI = []string{"web"}
	m.RenderKubeVersion = "v1.37.2"
	seed, _ := m.Encode()
	f.Add(seed)
	f.Add([]byte(`{"schemaVersion":"v1alpha1","type":"app"}`))
	f.Add([]byte(`{"schemaVersion":"v1alpha1","type":"cluster","apps":[{"name":"a","type":"helm"},{"name":"a","type":"helm"}]}`))
	f.Add([]byte(`{"schemaVersion":"v1alpha1","type":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded metadata does not encode: %v", err)
		}
		again, err := Decode(out)
		if err != nil {
			t.Fatalf("encoded metadata does not decode: %v\n%s", err, out)
		}
		out2, _ := again.Encode()
		if string(out) != string(out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

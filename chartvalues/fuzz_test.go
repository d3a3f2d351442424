package chartvalues

import (
	"testing"
)

// FuzzValues: --set and APPENV come from the command line and the image.
// Whatever they hold, composing values returns values or an error, and a
// per-app --set is its app, a ':' and the rest.
func FuzzValues(f *testing.F) {
	for _, s := range []string{"image.tag=1.27", "web:image.tag=1.27", "image=nginx:1.27", "a[0]=x", "a.b", "web:", ":x=1",
		"list={a,b}", "a\\.b=c", "x=1,y=2", "web:a=b:c"} {
		f.Add(s, "image.repository", "docker.io/x")
	}
	f.Fuzz(func(t *testing.T, set, key, value string) {
		if app, rest := SplitSet(set); app != "" && app+":"+rest != set {
			t.Fatalf("SplitSet(%q) = %q, %q", set, app, rest)
		}
		if app, file := SplitFile(set); app != "" && app+"="+file != set {
			t.Fatalf("SplitFile(%q) = %q, %q", set, app, file)
		}
		flags := Flags{Set: []string{set}}
		if _, err := flags.Values("web", map[string]string{key: value}); err != nil {
			return
		}
		_ = flags.Check()
	})
}

package chartvalues

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSplit(t *testing.T) {
	for _, tt := range []struct{ in, app, rest string }{
		{"prod.yaml", "", "prod.yaml"},
		{"web=prod.yaml", "web", "prod.yaml"},
		{"./web=prod.yaml", "", "./web=prod.yaml"},
		{"dir/web=x.yaml", "", "dir/web=x.yaml"},
		{"Web=prod.yaml", "", "Web=prod.yaml"}, // not an app name
		{"web=", "", "web="},
	} {
		if app, rest := SplitFile(tt.in); app != tt.app || rest != tt.rest {
			t.Errorf("SplitFile(%q) = %q, %q; want %q, %q", tt.in, app, rest, tt.app, tt.rest)
		}
	}
	for _, tt := range []struct{ in, app, rest string }{
		{"image.tag=1", "", "image.tag=1"},
		{"web:image.tag=1", "web", "image.tag=1"},
		{"image=nginx:1.27", "", "image=nginx:1.27"},
		{"url=http://x:80", "", "url=http://x:80"},
		{"my-app:a=1,b=2", "my-app", "a=1,b=2"},
		{"a.b:c=1", "", "a.b:c=1"},
	} {
		if app, rest := SplitSet(tt.in); app != tt.app || rest != tt.rest {
			t.Errorf("SplitSet(%q) = %q, %q; want %q, %q", tt.in, app, rest, tt.app, tt.rest)
		}
	}
}

// TestValuesOrder: APPENV < --values < --values APP= < --set < --set APP:,
// whatever the order the flags were given in, and another app's flags do
// not apply.
func TestValuesOrder(t *testing.T) {
	dir := t.TempDir()
	global := writeFile(t, dir, "global.yaml", "image: {tag: from-global-file, repository: r}\nkeep: 1\n")
	web := writeFile(t, dir, "web.yaml", "image: {tag: from-web-file}\n")
	api := writeFile(t, dir, "api.yaml", "image: {tag: from-api-file}\n")
	env := map[string]string{"image.tag": "from-appenv", "image.pullPolicy": "Always", "replicaCount": "2"}

	cases := []struct {
		name  string
		flags Flags
		tag   string
	}{
		{"APPENV alone", Flags{}, "from-appenv"},
		{"a values file beats APPENV", Flags{Files: []string{global}}, "from-global-file"},
		{"the app's file beats the global one, given first", Flags{Files: []string{"web=" + web, global}}, "from-web-file"},
		{"another app's file does not apply", Flags{Files: []string{"api=" + api}}, "from-appenv"},
		{"--set beats the files", Flags{Files: []string{"web=" + web}, Set: []string{"image.tag=from-set"}}, "from-set"},
		{"the app's --set beats the global one, given first", Flags{Set: []string{"web:image.tag=from-web-set", "image.tag=from-set"}}, "from-web-set"},
		{"another app's --set does not apply", Flags{Set: []string{"api:image.tag=x"}}, "from-appenv"},
		{"later --set of one form wins", Flags{Set: []string{"image.tag=a", "image.tag=b"}}, "b"},
	}
	for _, c := range cases {
		vals, err := c.flags.Values("web", env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		image := vals["image"].(map[string]any)
		if image["tag"] != c.tag {
			t.Errorf("%s: tag %v, want %s", c.name, image["tag"], c.tag)
		}
		// Maps merge: what a later source does not set stays.
		if image["pullPolicy"] != "Always" || vals["replicaCount"] != int64(2) {
			t.Errorf("%s: values %v", c.name, vals)
		}
	}
	// A chart of no app gets the global flags only.
	vals, err := Flags{Files: []string{"web=" + web, global}, Set: []string{"web:x=1"}}.Values("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"image": map[string]any{"tag": "from-global-file", "repository": "r"}, "keep": float64(1)}; !reflect.DeepEqual(vals, want) {
		t.Errorf("no app: %v, want %v", vals, want)
	}
}

func TestValuesFreshEachCall(t *testing.T) {
	f := Flags{Set: []string{"a.b=1"}}
	v1, _ := f.Values("web", nil)
	v1["a"].(map[string]any)["b"] = "changed"
	v2, _ := f.Values("web", nil)
	if v2["a"].(map[string]any)["b"] != int64(1) {
		t.Errorf("second call saw the first's change: %v", v2)
	}
}

func TestFor(t *testing.T) {
	f := Flags{Files: []string{"a.yaml", "web=w.yaml", "api=x.yaml"}, Set: []string{"k=1", "api:k=2", "web:k=3"}}
	got := f.For("web")
	want := Flags{Files: []string{"a.yaml", "web=w.yaml"}, Set: []string{"k=1", "web:k=3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("For(web) = %+v, want %+v", got, want)
	}
	if got := f.Apps(); !reflect.DeepEqual(got, []string{"api", "web"}) {
		t.Errorf("Apps = %v", got)
	}
}

func TestErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	notMap := writeFile(t, dir, "list.yaml", "- a\n- b\n")
	for _, tt := range []struct {
		flags Flags
		want  string
	}{
		{Flags{Files: []string{"web=" + filepath.Join(dir, "missing.yaml")}}, "--values web=" + filepath.Join(dir, "missing.yaml")},
		{Flags{Files: []string{notMap}}, "--values " + notMap + ": " + notMap + " is not a YAML map of values"},
		{Flags{Set: []string{"web:a[=1"}}, "--set web:a[=1"},
	} {
		err := tt.flags.Check()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.flags, err, tt.want)
		}
	}
	_, err := Flags{}.Values("web", map[string]string{"a[": "1"})
	if err == nil || !strings.Contains(err.Error(), "APPENV web a[=1") {
		t.Errorf("APPENV: %v", err)
	}
}

func TestCheckApps(t *testing.T) {
	apps := []metadata.App{{Name: "web", Type: metadata.AppHelm}, {Name: "stack", Type: metadata.AppManifests}}
	if err := (Flags{Files: []string{"web=x.yaml", "plain.yaml"}, Set: []string{"web:a=1", "b=2"}}).CheckApps(apps); err != nil {
		t.Errorf("valid: %v", err)
	}
	for _, tt := range []struct {
		flags Flags
		want  string
	}{
		{Flags{Set: []string{"wbe:a=1"}}, "--set wbe:a=1: there is no app wbe (apps: web, stack)"},
		{Flags{Files: []string{"stack=x.yaml"}}, "--values stack=x.yaml: app stack is not a Helm chart (it is of type manifests)"},
	} {
		if err := tt.flags.CheckApps(apps); err == nil || err.Error() != tt.want+", it takes no values" && err.Error() != tt.want {
			t.Errorf("%+v: %v, want %q", tt.flags, err, tt.want)
		}
	}
	if err := (Flags{Set: []string{"web:a=1"}}).CheckApps(nil); err == nil || !strings.Contains(err.Error(), "(no apps)") {
		t.Errorf("no apps: %v", err)
	}
}

package apply

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// TestWithLaunch: the Clusterfile's launch (sealer's spec.appNames,
// spec.cmd, Application) changes what the plan launches, on a copy of the
// image's metadata; an app the image lacks is refused by name.
func TestWithLaunch(t *testing.T) {
	meta := &metadata.Metadata{
		Apps:   []metadata.App{{Name: "web", Type: metadata.AppManifests}, {Name: "db", Type: metadata.AppShell}, {Name: "ops", Type: metadata.AppShell}},
		Launch: metadata.Launch{Apps: []string{"web", "db"}, Cmds: []string{"echo image"}},
	}
	image := Image{Digest: "sha256:img", Meta: meta}
	c := clusterfile.Cluster{Image: "acme/shop:v2", Kubeconfig: "/k"}
	planned := func(img Image) []string {
		t.Helper()
		steps, err := appSteps(c, img, true, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range steps {
			out = append(out, s.Name+"="+s.Key[:15])
		}
		return out
	}
	before := planned(image)

	same, err := withLaunch(image, c.Image, clusterfile.Launch{})
	if err != nil || same.Meta != meta {
		t.Fatalf("no override: %v, a copy made", err)
	}
	got, err := withLaunch(image, c.Image, clusterfile.Launch{Apps: []string{"ops"}, Cmds: []string{"kubectl get nodes"}, AppCmds: map[string][]string{"ops": {"sh ./run.sh"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Meta.Launch, metadata.Launch{Apps: []string{"ops"}, Cmds: []string{"kubectl get nodes"}}) || !reflect.DeepEqual(got.Meta.App("ops").Cmds, []string{"sh ./run.sh"}) {
		t.Errorf("launch %+v, ops %+v", got.Meta.Launch, got.Meta.App("ops"))
	}
	if !reflect.DeepEqual(meta.Launch.Apps, []string{"web", "db"}) || meta.App("ops").Cmds != nil {
		t.Errorf("the image's metadata was changed: %+v", meta)
	}
	after := planned(got)
	if len(after) != 2 || !strings.HasPrefix(after[0], "ops=") || !strings.HasPrefix(after[1], stepCmds+"=") || after[1] == before[2] {
		t.Errorf("planned %v (before %v): want ops, then the new commands under a new key", after, before)
	}
	// Only an app's commands: the list stays, that app's key changes.
	cmdsOnly, err := withLaunch(image, c.Image, clusterfile.Launch{AppCmds: map[string][]string{"db": {"sh ./install.sh --fast"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := planned(cmdsOnly); p[0] != before[0] || p[1] == before[1] || p[2] != before[2] {
		t.Errorf("planned %v, before %v: only db's key changes", p, before)
	}

	// An app's env (over its APPENV) and its files change its key only.
	meta.Apps[0].Env = map[string]string{"A": "image", "B": "image"}
	before = planned(image)
	envOnly, err := withLaunch(image, c.Image, clusterfile.Launch{AppEnv: map[string]map[string]string{"web": {"B": "clusterfile"}}})
	if err != nil {
		t.Fatal(err)
	}
	if env := envOnly.Meta.App("web").Env; !reflect.DeepEqual(env, map[string]string{"A": "image", "B": "clusterfile"}) || meta.Apps[0].Env["B"] != "image" {
		t.Errorf("web's env %v, the image's %v", env, meta.Apps[0].Env)
	}
	if p := planned(envOnly); p[0] == before[0] || p[1] != before[1] || p[2] != before[2] {
		t.Errorf("planned %v, before %v: only web's key changes", p, before)
	}
	c.Launch.AppFiles = map[string][]clusterfile.AppFile{"db": {{Path: "v.yaml", Strategy: clusterfile.ConfigOverwrite, Data: "x"}}}
	if p := planned(image); p[0] != before[0] || p[1] == before[1] || p[2] != before[2] {
		t.Errorf("planned %v, before %v: only db's key changes", p, before)
	}
	c.Launch.AppFiles = nil

	for _, tc := range []struct {
		l    clusterfile.Launch
		want string
	}{
		{clusterfile.Launch{AppEnv: map[string]map[string]string{"cache": {"x": "y"}}}, `the Clusterfile's Application configures app "cache", which acme/shop:v2 does not have`},
		{clusterfile.Launch{AppFiles: map[string][]clusterfile.AppFile{"cache": {{Path: "x"}}}}, `the Clusterfile's Application configures app "cache", which acme/shop:v2 does not have`},
		{clusterfile.Launch{Apps: []string{"web", "cache"}}, `the Clusterfile launches app "cache", which acme/shop:v2 does not have (it has: web, db, ops)`},
		{clusterfile.Launch{AppCmds: map[string][]string{"cache": {"x"}}}, `the Clusterfile's Application configures app "cache", which acme/shop:v2 does not have`},
	} {
		if _, err := withLaunch(image, c.Image, tc.l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %s", tc.l, err, tc.want)
		}
	}
}

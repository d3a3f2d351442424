// Package chartvalues composes the values a Helm chart of hoist is rendered
// with, the same way wherever it is rendered: at build, where the chart's
// images are found (build/discover), and at install (apply/launch). One
// function on both sides is what makes the images bundled at build those
// the install runs.
//
// The order, lowest first: the chart's own values.yaml, the app's APPENV
// (each KEY=VALUE as a --set, keys in sorted order), the --values files that
// apply to every chart, the app's own --values APP=FILE, the --set K=V that
// apply to every chart, the app's own --set APP:K=V. Within one form, flags
// keep the order they were given in. The image's ENV and the Clusterfile's
// env are not chart values: they reach a chart only through its *.tmpl files
// (rendered at install), since the Clusterfile is not known at build.
//
// It is a leaf: it imports Helm's strvals and the metadata schema only.
package chartvalues

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// Flags are the values of one command line, as given.
type Flags struct {
	// Files are --values: FILE for every chart, or APP=FILE for the chart
	// of app APP (a file whose name starts with NAME= is written ./NAME=...).
	Files []string
	// Set are --set, in Helm's syntax (a.b=c, list[0]=x, a=1,b=2): K=V for
	// every chart, or APP:K=V for the chart of app APP.
	Set []string
}

// SplitFile reads a --values argument: ("web", "prod.yaml") for
// web=prod.yaml, ("", s) for a file of every chart.
func SplitFile(s string) (app, file string) {
	if a, f, ok := strings.Cut(s, "="); ok && metadata.IsAppName(a) && f != "" {
		return a, f
	}
	return "", s
}

// SplitSet reads a --set argument: ("web", "image.tag=1") for
// web:image.tag=1, ("", s) for a value of every chart. A value's ':' (as in
// image=nginx:1.27) comes after '=', so it never reads as an app.
func SplitSet(s string) (app, value string) {
	if a, v, ok := strings.Cut(s, ":"); ok && metadata.IsAppName(a) {
		return a, v
	}
	return "", s
}

// For returns the flags that apply to the chart of app, as given (APP=
// and APP: prefixes kept): what a change of re-renders that chart.
func (f Flags) For(app string) Flags {
	var out Flags
	for _, s := range f.Files {
		if a, _ := SplitFile(s); a == "" || a == app {
			out.Files = append(out.Files, s)
		}
	}
	for _, s := range f.Set {
		if a, _ := SplitSet(s); a == "" || a == app {
			out.Set = append(out.Set, s)
		}
	}
	return out
}

// Apps lists the apps that per-app flags name, sorted, each once.
func (f Flags) Apps() []string {
	seen := map[string]bool{}
	for _, s := range f.Files {
		if a, _ := SplitFile(s); a != "" {
			seen[a] = true
		}
	}
	for _, s := range f.Set {
		if a, _ := SplitSet(s); a != "" {
			seen[a] = true
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Check reads every file and parses every --set, so that a mistake is
// reported before anything is rendered, naming the flag.
func (f Flags) Check() error {
	for _, s := range f.Files {
		if _, err := readFile(s); err != nil {
			return err
		}
	}
	for _, s := range f.Set {
		_, v := SplitSet(s)
		if err := strvals.ParseInto(v, map[string]any{}); err != nil {
			return fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return nil
}

// CheckApps refuses per-app flags that name no Helm app of apps: a typo
// would otherwise render, and bundle, the chart's default images.
func (f Flags) CheckApps(apps []metadata.App) error {
	for _, name := range f.Apps() {
		var app *metadata.App
		for i := range apps {
			if apps[i].Name == name {
				app = &apps[i]
			}
		}
		flag := f.firstFor(name)
		switch {
		case app == nil:
			names := make([]string, 0, len(apps))
			for _, a := range apps {
				names = append(names, a.Name)
			}
			have := "no apps"
			if len(names) > 0 {
				have = "apps: " + strings.Join(names, ", ")
			}
			return fmt.Errorf("%s: there is no app %s (%s)", flag, name, have)
		case app.Type != metadata.AppHelm:
			return fmt.Errorf("%s: app %s is not a Helm chart (it is of type %s), it takes no values", flag, name, app.Type)
		}
	}
	return nil
}

// firstFor is the first flag naming app, as the user wrote it.
func (f Flags) firstFor(app string) string {
	for _, s := range f.Files {
		if a, _ := SplitFile(s); a == app {
			return "--values " + s
		}
	}
	for _, s := range f.Set {
		if a, _ := SplitSet(s); a == app {
			return "--set " + s
		}
	}
	return app
}

// Values composes the values of the chart of app ("" for a chart that is
// no app's) from its APPENV and the flags, in the package's order. The map
// is new on every call: Helm may change the one it renders with.
func (f Flags) Values(app string, appEnv map[string]string) (map[string]any, error) {
	vals := map[string]any{}
	keys := make([]string, 0, len(appEnv))
	for k := range appEnv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := strvals.ParseInto(k+"="+appEnv[k], vals); err != nil {
			return nil, fmt.Errorf("APPENV %s %s=%s: %w", app, k, appEnv[k], err)
		}
	}
	for _, perApp := range []bool{false, true} {
		for _, s := range f.Files {
			a, _ := SplitFile(s)
			if (a != "") != perApp || (perApp && a != app) {
				continue
			}
			v, err := readFile(s)
			if err != nil {
				return nil, err
			}
			Merge(vals, v)
		}
	}
	for _, perApp := range []bool{false, true} {
		for _, s := range f.Set {
			a, v := SplitSet(s)
			if (a != "") != perApp || (perApp && a != app) {
				continue
			}
			if err := strvals.ParseInto(v, vals); err != nil {
				return nil, fmt.Errorf("--set %s: %w", s, err)
			}
		}
	}
	return vals, nil
}

// readFile reads the values file of a --values argument.
func readFile(arg string) (map[string]any, error) {
	_, name := SplitFile(arg)
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--values %s: %w", arg, err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("--values %s: %s is not a YAML map of values: %w", arg, name, err)
	}
	return v, nil
}

// Merge merges src into dst as Helm merges values files (helm's
// --values): maps recursively, anything else replaced. Maps of src are
// copied, not shared. It returns dst.
func Merge(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
			}
			dst[k] = Merge(dm, sm)
			continue
		}
		dst[k] = v
	}
	return dst
}

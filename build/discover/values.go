package discover

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/hoistdev/hoist/chartvalues"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// App is the app a chart belongs to in an image: its values come from its
// APPENV and the flags given for it (--values APP=FILE, --set APP:K=V).
type App struct {
	Name string
	Env  map[string]string // APPENV
}

// ImageApps maps the chart paths of an image's Helm apps (under root, the
// image's rootfs, as the build mounts it) to their apps: what the build
// gives Options.Apps. The launcher at install composes the same values
// from the same metadata (package chartvalues), so both render alike.
func ImageApps(root string, apps []metadata.App) map[string]App {
	out := map[string]App{}
	for _, a := range apps {
		if a.Type != metadata.AppHelm {
			continue
		}
		for _, f := range a.Files {
			out[filepath.Join(root, f)] = App{Name: a.Name, Env: a.Env}
		}
	}
	return out
}

// flags are the value flags of Options.
func (o Options) flags() chartvalues.Flags {
	return chartvalues.Flags{Files: o.ValueFiles, Set: o.Set}
}

// loadValues checks the value flags once, before any chart, and keys
// Options.Apps by absolute path.
func (f *finder) loadValues() error {
	if err := f.opts.flags().Check(); err != nil {
		return err
	}
	f.apps = map[string]App{}
	for p, a := range f.opts.Apps {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("chart of app %s: %w", a.Name, err)
		}
		f.apps[abs] = a
	}
	f.usedApps = map[string]bool{}
	return nil
}

// valuesFor composes the values of the chart at p named name (its
// Chart.yaml name). With Options.Apps, the chart's app is the one it maps
// p to (none: only the flags of every chart apply); without (find-images),
// per-app flags apply to the charts of that name.
func (f *finder) valuesFor(p, name string) (map[string]any, error) {
	var app App
	if f.opts.Apps != nil {
		if abs, err := filepath.Abs(p); err == nil {
			app = f.apps[abs]
		}
	} else {
		app.Name = name
	}
	f.usedApps[app.Name] = true
	return f.opts.flags().Values(app.Name, app.Env)
}

// unusedAppFlags warns, in find-images, of per-app flags that named no
// chart found: a typo would otherwise pass unnoticed.
func (f *finder) unusedAppFlags() {
	if f.opts.Apps != nil {
		return // the build checks them against its apps
	}
	var unused []string
	for _, a := range f.opts.flags().Apps() {
		if !f.usedApps[a] {
			unused = append(unused, a)
		}
	}
	sort.Strings(unused)
	for _, a := range unused {
		f.warn("values given for %s (--values %s=FILE or --set %s:K=V), but no chart named %s was found", a, a, a, a)
	}
}

// warn reports a finding that does not stop the search.
func (f *finder) warn(format string, args ...any) {
	if f.opts.Warn != nil {
		f.opts.Warn(fmt.Sprintf(format, args...))
	}
}

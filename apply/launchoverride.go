package apply

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// withLaunch is the image with what the Clusterfile changes of its launch
// (sealer's spec.cmd, spec.appNames and Application): the apps launched,
// the commands after them, an app's own commands and env. An app's files
// (l.AppFiles) are the launcher's, checked here to name an app. The image's metadata is
// copied, not changed; the apps' journal keys follow the launch that runs.
func withLaunch(image Image, name string, l clusterfile.Launch) (Image, error) {
	if image.Meta == nil || (l.Apps == nil && l.Cmds == nil && l.AppCmds == nil && l.AppEnv == nil && l.AppFiles == nil) {
		return image, nil
	}
	m := *image.Meta
	m.Apps = slices.Clone(m.Apps)
	if l.Apps != nil {
		for _, app := range l.Apps {
			if m.App(app) == nil {
				return image, fmt.Errorf("the Clusterfile launches app %q, which %s does not have (it has: %s)", app, name, strings.Join(appNames(&m), ", "))
			}
		}
		m.Launch.Apps = slices.Clone(l.Apps)
	}
	if l.Cmds != nil {
		m.Launch.Cmds = slices.Clone(l.Cmds)
	}
	index := func(app string) (int, error) {
		i := slices.IndexFunc(m.Apps, func(a metadata.App) bool { return a.Name == app })
		if i < 0 {
			return i, fmt.Errorf("the Clusterfile's Application configures app %q, which %s does not have (it has: %s)", app, name, strings.Join(appNames(&m), ", "))
		}
		return i, nil
	}
	for app, cmds := range l.AppCmds {
		i, err := index(app)
		if err != nil {
			return image, err
		}
		m.Apps[i].Cmds = slices.Clone(cmds)
	}
	// An app's env from the Application wins over its APPENV, as in
	// sealer; its templates, files and commands see it.
	for app, env := range l.AppEnv {
		i, err := index(app)
		if err != nil {
			return image, err
		}
		merged := maps.Clone(m.Apps[i].Env)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, env)
		m.Apps[i].Env = merged
	}
	for app := range l.AppFiles {
		if _, err := index(app); err != nil {
			return image, err
		}
	}
	image.Meta = &m
	return image, nil
}

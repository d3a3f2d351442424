package discover

import (
	"fmt"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// warnDependencies warns of each vendored subchart of c (and of its
// subcharts) whose version is outside the range its dependency in
// Chart.yaml asks for. Helm renders such a subchart without a word, but as
// if the dependency did not name it: under its own name rather than its
// alias, so the values under the alias do not reach it and the
// dependency's condition and tags no longer switch it off. The images
// found would not be those the chart's author meant.
func (f *finder) warnDependencies(c *chart.Chart, files func(string) string) {
	for _, dep := range c.Metadata.Dependencies {
		if dep == nil {
			continue
		}
		for _, sub := range c.Dependencies() {
			// Helm's own test (chartutil.getAliasDependency).
			if sub.Name() != dep.Name || chartutil.IsCompatibleRange(dep.Version, sub.Metadata.Version) {
				continue
			}
			want := fmt.Sprintf("outside the range %q", dep.Version)
			if dep.Version == "" {
				want = "and its dependency gives no version range"
			}
			msg := fmt.Sprintf("chart %s: the vendored subchart %s is version %s, %s of dependency %s in %s",
				files(c.ChartFullPath()), files(sub.ChartFullPath()), sub.Metadata.Version, want, dep.Name, files(c.ChartFullPath()+"/Chart.yaml"))
			if dep.Alias != "" {
				msg += fmt.Sprintf(": Helm ignores its alias %s and renders it as %s, so values under %s: do not reach it", dep.Alias, sub.Name(), dep.Alias)
				if dep.Condition != "" || len(dep.Tags) > 0 {
					msg += " and its condition and tags do not switch it off"
				}
			} else {
				msg += ": Helm renders it all the same"
			}
			f.warn("%s; run `helm dependency update` on the chart to vendor a version in range", msg)
		}
	}
	for _, sub := range c.Dependencies() {
		f.warnDependencies(sub, files)
	}
}

// dependencyHint is what to do about a dependency missing from charts/:
// fetch it, as `helm install` of a chart directory would ask.
func dependencyHint(display string, archive bool) string {
	if archive {
		return "the archive was packaged without it: run `helm dependency build` on the chart's directory, then `helm package`"
	}
	return fmt.Sprintf("run `helm dependency build %s` to fetch it into the chart's charts/ directory", display)
}

// renderError is a Helm render error whose template paths name the
// chart's directory rather than the chart's name.
type renderError struct {
	msg string
	err error
}

func (e *renderError) Error() string { return e.msg }
func (e *renderError) Unwrap() error { return e.err }

// templateError rewrites the template paths of a Helm error, which start
// with the chart's name (web/templates/deployment.yaml:12), to where the
// file is (charts/frontend/templates/deployment.yaml:12, or inside an
// archive): a chart's directory need not bear its name, and a build shows
// charts by their path in the image.
func templateError(err error, name string, files func(string) string) error {
	// files maps "NAME/x" to the place of x; the place of NAME/ is its prefix.
	dir := strings.TrimSuffix(files(name+"/x"), "x")
	re, rerr := regexp.Compile(`(^|[\s("'<])` + regexp.QuoteMeta(name) + `/(templates|charts|crds)/`)
	if rerr != nil {
		return err
	}
	msg := re.ReplaceAllString(err.Error(), "${1}"+strings.ReplaceAll(dir, "$", "$$")+"${2}/")
	return &renderError{msg: msg, err: err}
}

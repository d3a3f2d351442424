package discover

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/distribution/reference"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"sigs.k8s.io/yaml"
)

// Release name and namespace the charts are rendered with: templates that
// use them only change object names, not images.
const (
	releaseName      = "hoist"
	releaseNamespace = "default"
)

// imageAnnotations are the Chart.yaml annotations that list a chart's
// images: helm.sh/images, and Artifact Hub's and Bitnami's (images) of the
// same format, a YAML list of {name, image} in a string.
var imageAnnotations = []string{"helm.sh/images", "artifacthub.io/images", bitnamiImages}

// bitnamiImages is Bitnami's annotation key.
const bitnamiImages = "images"

// chart renders the chart at p (a directory, or a .tgz archive when archive
// is true) and records the images of what it renders and of its Chart.yaml
// annotations.
func (f *finder) chart(p string, archive bool) error {
	display := f.display(p)
	chrt, err := loader.Load(p)
	if err != nil {
		return fmt.Errorf("chart %s: %w", display, err)
	}
	if err := checkDependencies(chrt); err != nil {
		return fmt.Errorf("chart %s: %w; %s", display, err, dependencyHint(display, archive))
	}
	// files maps a chart-internal path ("web/templates/x.yaml") to
	// FoundIn's: the file under p, or inside the archive.
	files := func(name string) string {
		if archive {
			return display + "/" + name
		}
		_, rest, _ := strings.Cut(name, "/")
		return path.Join(display, rest)
	}
	// Before rendering, which drops what it does not use.
	f.warnDependencies(chrt, files)

	// A library chart renders nothing of its own.
	if chrt.Metadata.Type != "library" {
		vals, err := f.valuesFor(p, chrt.Name())
		if err != nil {
			return fmt.Errorf("chart %s: %w", display, err)
		}
		rendered, err := render(chrt, vals, f.opts)
		if err != nil {
			return fmt.Errorf("chart %s: %w", display, templateError(err, chrt.Name(), files))
		}
		for _, r := range rendered {
			if err := f.rendered(files(r.name), []byte(r.content)); err != nil {
				return err
			}
		}
	}
	// After rendering, the chart holds only the subcharts that are enabled.
	return f.annotations(chrt, files)
}

// checkDependencies fails when a dependency of Chart.yaml is not in charts/,
// as `helm install` does: its images would be missed silently.
func checkDependencies(c *chart.Chart) error {
	if err := action.CheckDependencies(c, c.Metadata.Dependencies); err != nil {
		return err
	}
	for _, d := range c.Dependencies() {
		if err := checkDependencies(d); err != nil {
			return fmt.Errorf("subchart %s: %w", d.Name(), err)
		}
	}
	return nil
}

type renderedFile struct{ name, content string }

// render renders a chart offline, as `helm template` does, and returns its
// manifests and hooks by template name.
func render(chrt *chart.Chart, vals map[string]any, opts Options) ([]renderedFile, error) {
	// Helm's own default is v1.20.0, which most charts refuse today.
	kubeVersion, apiVersions, err := capabilities(opts.KubeVersion, opts.APIVersions)
	if err != nil {
		return nil, err
	}
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = releaseName
	install.Namespace = releaseNamespace
	install.KubeVersion = kubeVersion
	install.APIVersions = apiVersions
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	files := splitManifest(rel.Manifest)
	for _, h := range rel.Hooks {
		files = append(files, renderedFile{name: h.Path, content: h.Manifest})
	}
	return files, nil
}

// splitManifest splits a release manifest into its files by the
// "---\n# Source: NAME" line pairs Helm writes before each one.
func splitManifest(manifest string) []renderedFile {
	var files []renderedFile
	var b strings.Builder
	flush := func() {
		if len(files) > 0 {
			files[len(files)-1].content = b.String()
		}
		b.Reset()
	}
	lines := strings.Split(manifest, "\n")
	for i := 0; i < len(lines); i++ {
		if lines[i] == "---" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "# Source: ") {
			flush()
			files = append(files, renderedFile{name: strings.TrimPrefix(lines[i+1], "# Source: ")})
			i++
			continue
		}
		b.WriteString(lines[i])
		b.WriteByte('\n')
	}
	flush()
	return files
}

// annotations records the images listed in the image annotations of c and
// of its subcharts.
func (f *finder) annotations(c *chart.Chart, files func(string) string) error {
	chartYAML := files(c.ChartFullPath() + "/Chart.yaml")
	for _, key := range imageAnnotations {
		s, ok := c.Metadata.Annotations[key]
		if !ok {
			continue
		}
		err := f.imageAnnotation(chartYAML, key, s)
		if err != nil && key == bitnamiImages {
			// An unprefixed key: another chart may use it for something
			// else, which must not stop its build.
			f.warn("%v: not Bitnami's list of images, ignored", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	for _, d := range c.Dependencies() {
		if err := f.annotations(d, files); err != nil {
			return err
		}
	}
	return nil
}

// imageAnnotation records the images of one image annotation of a
// Chart.yaml, all or none: an entry that is not an image fails the whole
// annotation.
func (f *finder) imageAnnotation(chartYAML, key, s string) error {
	var entries []struct {
		Name  string `json:"name"`
		Image string `json:"image"`
	}
	if err := yaml.Unmarshal([]byte(s), &entries); err != nil {
		return fmt.Errorf("%s: annotation %s: want a YAML list of {name, image}: %w", chartYAML, key, err)
	}
	where := fmt.Sprintf("%s (%s)", chartYAML, key)
	for i, e := range entries {
		if e.Image == "" {
			return fmt.Errorf("%s: entry %d (%q) has no image", where, i+1, e.Name)
		}
		if _, err := reference.ParseNormalizedNamed(e.Image); err != nil {
			return fmt.Errorf("%s: invalid image reference %q: %w", where, e.Image, err)
		}
	}
	for _, e := range entries {
		if err := f.add(e.Image, Source{FoundIn: where, Kind: KindAnnotation}); err != nil {
			return err
		}
	}
	return nil
}

// isChartArchive reports whether p is a gzipped tar holding NAME/Chart.yaml,
// as `helm package` makes. Other archives are not errors: a rootfs may hold
// any.
func isChartArchive(p string) (bool, error) {
	file, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer file.Close()
	gz, err := gzip.NewReader(file)
	if err != nil {
		return false, nil
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, nil
		}
		dir, base := path.Split(path.Clean(h.Name))
		if base == "Chart.yaml" && dir != "" && !strings.Contains(strings.Trim(dir, "/"), "/") {
			return true, nil
		}
	}
}

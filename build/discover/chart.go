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
// images: helm.sh/images, and Artifact Hub's of the same format.
var imageAnnotations = []string{"helm.sh/images", "artifacthub.io/images"}

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
		return fmt.Errorf("chart %s: %w", display, err)
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

	// A library chart renders nothing of its own.
	if chrt.Metadata.Type != "library" {
		rendered, err := render(chrt, f.valuesFor(p))
		if err != nil {
			return fmt.Errorf("chart %s: %w", display, err)
		}
		for _, r := range rendered {
			if err := f.manifests(files(r.name), []byte(r.content)); err != nil {
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
func render(chrt *chart.Chart, vals map[string]any) ([]renderedFile, error) {
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = releaseName
	install.Namespace = releaseNamespace
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
		var entries []struct {
			Name  string `json:"name"`
			Image string `json:"image"`
		}
		if err := yaml.Unmarshal([]byte(s), &entries); err != nil {
			return fmt.Errorf("%s: annotation %s: %w", chartYAML, key, err)
		}
		where := fmt.Sprintf("%s (%s)", chartYAML, key)
		for i, e := range entries {
			if e.Image == "" {
				return fmt.Errorf("%s: entry %d (%q) has no image", where, i+1, e.Name)
			}
			if err := f.add(e.Image, where); err != nil {
				return err
			}
		}
	}
	for _, d := range c.Dependencies() {
		if err := f.annotations(d, files); err != nil {
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

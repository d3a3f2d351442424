package discover

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// Image is one container image reference found, normalised, with every
// place it was found.
type Image struct {
	// Ref is the normalised reference: docker.io/library/nginx:latest for
	// nginx; a digest is kept (name@sha256:..., name:tag@sha256:...).
	Ref string `json:"ref"`
	// FoundIn lists where Ref was found, sorted: "file (Kind/name)" for an
	// object, "file:line" for an image list, "Chart.yaml (annotation)".
	FoundIn []string `json:"foundIn"`
}

// Options tune Find.
type Options struct {
	// ValueFiles are Helm values files (YAML), applied to every chart, in order.
	ValueFiles []string
	// Set are Helm --set values (strvals syntax), applied after ValueFiles.
	Set []string
	// ChartValues are extra values per chart path (absolute or as given to
	// Find), merged last; the build passes per-app values this way.
	ChartValues map[string]map[string]any
	// ImageLists are extra image list files, one reference a line.
	ImageLists []string
	// Exclude drops an image whose Ref matches one of these: a path.Match
	// pattern on the whole normalised reference, or a prefix when the
	// pattern ends in "/" or "*".
	Exclude []string
	// BaseDir, when set, makes the paths in FoundIn relative to it.
	BaseDir string
}

// Find walks each path (a file or a directory, recursively) and returns the
// images that the charts, manifests and image lists under it need, sorted by
// Ref, each once with all the places it was found.
//
// A directory with a Chart.yaml and a .tgz chart archive are Helm charts;
// *.yaml, *.yml and *.json files are Kubernetes manifests; files named
// imageList are image lists. Other files are ignored while walking, but a
// file given directly must be one of these.
func Find(paths []string, opts Options) ([]Image, error) {
	f := &finder{opts: opts, found: map[string]map[string]bool{}}
	for _, p := range opts.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
	}
	if err := f.loadValues(); err != nil {
		return nil, err
	}
	for _, p := range paths {
		if err := f.walk(p); err != nil {
			return nil, err
		}
	}
	for _, p := range opts.ImageLists {
		if err := f.imageList(p); err != nil {
			return nil, err
		}
	}
	images := make([]Image, 0, len(f.found))
	for ref, where := range f.found {
		img := Image{Ref: ref}
		for w := range where {
			img.FoundIn = append(img.FoundIn, w)
		}
		sort.Strings(img.FoundIn)
		images = append(images, img)
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Ref < images[j].Ref })
	return images, nil
}

type finder struct {
	opts Options
	// values are ValueFiles and Set merged, the base of every chart's values.
	values map[string]any
	// chartValues are Options.ChartValues keyed by absolute path.
	chartValues map[string]map[string]any
	found       map[string]map[string]bool
}

func (f *finder) loadValues() error {
	f.values = map[string]any{}
	for _, name := range f.opts.ValueFiles {
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("values file: %w", err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("values file %s: %w", name, err)
		}
		mergeValues(f.values, v)
	}
	for _, s := range f.opts.Set {
		if err := strvals.ParseInto(s, f.values); err != nil {
			return fmt.Errorf("--set %s: %w", s, err)
		}
	}
	f.chartValues = map[string]map[string]any{}
	for p, v := range f.opts.ChartValues {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("chart values for %s: %w", p, err)
		}
		f.chartValues[abs] = v
	}
	return nil
}

// valuesFor returns a fresh copy of the values for the chart at p, since
// rendering may change the map it is given.
func (f *finder) valuesFor(p string) map[string]any {
	vals := mergeValues(map[string]any{}, f.values)
	if abs, err := filepath.Abs(p); err == nil {
		mergeValues(vals, f.chartValues[abs])
	}
	return vals
}

// mergeValues merges src into dst as Helm merges values files: maps
// recursively, anything else replaced. Maps of src are copied, not shared.
func mergeValues(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
			}
			dst[k] = mergeValues(dm, sm)
			continue
		}
		dst[k] = v
	}
	return dst
}

func (f *finder) walk(root string) error {
	info, err := os.Stat(root)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return f.file(root, true)
	}
	// WalkDir does not follow a symbolic link, not even as its root.
	start := root
	if li, err := os.Lstat(root); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		start = root + string(filepath.Separator)
	}
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		p = filepath.Clean(p)
		if d.IsDir() {
			if isChartDir(p) {
				if err := f.chart(p, false); err != nil {
					return err
				}
				// Its files are the chart's, and its charts/ are subcharts.
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Linked directories are not followed (they could loop).
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				return nil
			}
		}
		return f.file(p, false)
	})
}

func isChartDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "Chart.yaml"))
	return err == nil && st.Mode().IsRegular()
}

// file handles one file; explicit is true when the user named it, and then
// a file that holds no images is an error rather than skipped.
func (f *finder) file(p string, explicit bool) error {
	switch {
	case filepath.Base(p) == "imageList":
		return f.imageList(p)
	case isManifestFile(p):
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return f.manifests(f.display(p), data)
	case strings.HasSuffix(p, ".tgz"):
		ok, err := isChartArchive(p)
		if err != nil {
			return err
		}
		if ok {
			return f.chart(p, true)
		}
	}
	if explicit {
		return fmt.Errorf("%s: not a Helm chart, a manifest (.yaml, .yml, .json) or an image list (imageList, or --image-list)", p)
	}
	return nil
}

func isManifestFile(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// display is how FoundIn shows the file p.
func (f *finder) display(p string) string {
	if f.opts.BaseDir != "" {
		base, err1 := filepath.Abs(f.opts.BaseDir)
		abs, err2 := filepath.Abs(p)
		if err1 == nil && err2 == nil {
			if rel, err := filepath.Rel(base, abs); err == nil && filepath.IsLocal(rel) {
				p = rel
			}
		}
	}
	return filepath.ToSlash(p)
}

// add records the image reference raw found at where, normalised.
func (f *finder) add(raw, where string) error {
	if strings.Contains(raw, "{{") {
		return fmt.Errorf("%s: image %q is templated but unresolved", where, raw)
	}
	named, err := reference.ParseNormalizedNamed(raw)
	if err != nil {
		return fmt.Errorf("%s: invalid image reference %q: %w", where, raw, err)
	}
	ref := reference.TagNameOnly(named).String()
	if f.excluded(ref) {
		return nil
	}
	if f.found[ref] == nil {
		f.found[ref] = map[string]bool{}
	}
	f.found[ref][where] = true
	return nil
}

func (f *finder) excluded(ref string) bool { return Excluded(ref, f.opts.Exclude) }

// Excluded tells whether a normalised reference matches one of the
// --exclude-image patterns: a glob on the whole reference, or a prefix
// ending in / or *.
func Excluded(ref string, patterns []string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, ref); ok {
			return true
		}
		if (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "*")) && strings.HasPrefix(ref, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

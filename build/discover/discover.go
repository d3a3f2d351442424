package discover

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
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
	// Kinds are the kinds of Sources, sorted and each once.
	Kinds []Kind `json:"kinds"`
	// Sources are the places of FoundIn with the kind and field of each,
	// sorted: one place may name an image in several ways (a container's
	// image and an argument of another container).
	Sources []Source `json:"sources"`
}

// Options tune Find.
type Options struct {
	// ValueFiles are Helm values files (YAML), applied to every chart, in
	// order; APP=FILE applies to the chart of app APP only.
	ValueFiles []string
	// Set are Helm --set values (strvals syntax), applied after ValueFiles;
	// APP:K=V applies to the chart of app APP only. Package chartvalues
	// composes them, with an app's APPENV, as the install does.
	Set []string
	// Apps maps chart paths (absolute or as given to Find) to their apps:
	// the build passes its Helm apps (ImageApps). Without it, the app of
	// a chart, for per-app values, is its Chart.yaml name.
	Apps map[string]App
	// KubeVersion is the Kubernetes version charts are rendered for
	// (v1.31.4; "": NewestKubeVersion), and APIVersions are API versions
	// the charts see besides Helm's defaults (monitoring.coreos.com/v1), as
	// `helm template --kube-version --api-versions` take them.
	KubeVersion string
	APIVersions []string
	// Warn, when set, receives findings that do not stop the search (a
	// vendored subchart outside its dependency's range, values for a chart
	// not found), one sentence each, without a "warning:" prefix.
	Warn func(message string)
	// ImageLists are extra image list files, one reference a line.
	ImageLists []string
	// Exclude drops an image whose Ref matches one of these: a path.Match
	// pattern on the whole normalised reference, or a prefix when the
	// pattern ends in "/" or "*".
	Exclude []string
	// BaseDir, when set, makes the paths in FoundIn relative to it.
	BaseDir string
	// IncludeTests bundles the images of Helm test hooks (helm.sh/hook:
	// test), which nothing runs at install: by default they are Skipped.
	IncludeTests bool
}

// Find walks each path (a file or a directory, recursively) and returns the
// images that the charts, manifests and image lists under it need, sorted by
// Ref, each once with all the places it was found: Search's Images.
func Find(paths []string, opts Options) ([]Image, error) {
	r, err := Search(paths, opts)
	if err != nil {
		return nil, err
	}
	return r.Images, nil
}

// Search walks each path (a file or a directory, recursively) and returns
// the images that the charts, manifests and image lists under it need, the
// references it saw but does not bundle (possible ones, test hooks' ones),
// each sorted by Ref, each once with all the places it was found.
//
// A directory with a Chart.yaml and a .tgz chart archive are Helm charts;
// *.yaml, *.yml and *.json files are Kubernetes manifests; files named
// imageList are image lists. Other files are ignored while walking, but a
// file given directly must be one of these.
func Search(paths []string, opts Options) (*Result, error) {
	f := &finder{opts: opts, found: records{}, skipped: records{}, possible: records{}}
	for _, p := range opts.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
	}
	if err := f.loadValues(); err != nil {
		return nil, err
	}
	// Checked once, before any chart, rather than at each render.
	if _, _, err := capabilities(opts.KubeVersion, opts.APIVersions); err != nil {
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
	f.unusedAppFlags()
	return f.result(), nil
}

type finder struct {
	opts Options
	// apps are Options.Apps keyed by absolute path; usedApps the apps
	// whose charts were rendered (values.go).
	apps     map[string]App
	usedApps map[string]bool
	// found are the images to bundle; skipped those of test hooks left
	// out; possible the strings that only look like references.
	found, skipped, possible records
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
	// The Kubefile takes a chart as .tgz or .tar.gz: both, or the
	// images of an APP chart.tar.gz would be missed.
	case strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz"):
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

// add records the image reference raw found at src, normalised, as an
// image to bundle.
func (f *finder) add(raw string, src Source) error { return f.addTo(f.found, raw, src) }

// addTo records the image reference raw found at src, normalised, in set.
func (f *finder) addTo(set records, raw string, src Source) error {
	where := src.FoundIn
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
	set.add(ref, src)
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

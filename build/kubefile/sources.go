package kubefile

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// source is one APP source, resolved.
type source struct {
	written string // as in the Kubefile, for messages
	rel     string // path inside its build context (slash-separated)
	context string // named build context of a download; "" for the main one
	abs     string // where it is on disk
	isDir   bool
	files   []string // for a directory: its files, relative to it
}

func isURL(s string) bool {
	return strings.Contains(s, "://") && !strings.HasPrefix(s, "local://")
}

func (p *planner) resolveSource(line int, app, written, checksum string) (source, error) {
	if isURL(written) {
		if !strings.HasPrefix(written, "https://") {
			return source{}, p.errorf(line, "app %s: source %s: only local paths (local://path or path) and https:// URLs are supported", app, written)
		}
		return p.download(line, app, written, checksum)
	}
	rel := strings.TrimPrefix(written, "local://")
	if rel == "" {
		return source{}, p.errorf(line, "app %s: empty source path", app)
	}
	if filepath.IsAbs(rel) {
		return source{}, p.errorf(line, "app %s: source %s is outside the build context %s (absolute path)", app, written, p.ctx.abs)
	}
	clean := filepath.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return source{}, p.errorf(line, "app %s: source %s is outside the build context %s", app, written, p.ctx.abs)
	}
	full := filepath.Join(p.ctx.abs, clean)
	if _, err := os.Lstat(full); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return source{}, p.errorf(line, "app %s: source %s: no such file or directory in the build context %s", app, written, p.ctx.abs)
		}
		return source{}, p.errorf(line, "app %s: source %s: %v", app, written, err)
	}
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return source{}, p.errorf(line, "app %s: source %s: %v", app, written, err)
	}
	if !within(p.ctx.real, real) {
		return source{}, p.errorf(line, "app %s: source %s is a symlink that leads outside the build context (to %s)", app, written, real)
	}
	src := source{written: written, rel: filepath.ToSlash(clean), abs: full}
	ignored, err := p.ignored(filepath.ToSlash(clean))
	if err != nil {
		return source{}, p.errorf(line, "%v", err)
	}
	if ignored {
		return source{}, p.errorf(line, "app %s: source %s is excluded by the context's ignore file (.containerignore or .dockerignore)", app, written)
	}
	info, err := os.Stat(real)
	if err != nil {
		return source{}, p.errorf(line, "app %s: source %s: %v", app, written, err)
	}
	if !info.IsDir() {
		return src, nil
	}
	src.isDir = true
	err = filepath.WalkDir(real, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if file == real {
			return nil
		}
		inDir, _ := filepath.Rel(real, file)
		ignored, err := p.ignored(path.Join(src.rel, filepath.ToSlash(inDir)))
		if err != nil {
			return err
		}
		if ignored {
			return nil // not SkipDir: a later !pattern may bring back a file below
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(file)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				return fmt.Errorf("app %s: %s is a symlink to the absolute path %s, which leads outside the build context", app, filepath.Join(clean, inDir), target)
			}
			if !within(p.ctx.real, filepath.Join(filepath.Dir(file), target)) {
				return fmt.Errorf("app %s: %s is a symlink that leads outside the build context (to %s)", app, filepath.Join(clean, inDir), target)
			}
		}
		if !d.IsDir() {
			src.files = append(src.files, filepath.ToSlash(inDir))
		}
		return nil
	})
	if err != nil {
		return source{}, p.errorf(line, "%v", err)
	}
	sort.Strings(src.files)
	return src, nil
}

// within tells whether path is root or below it; both must be clean.
func within(root, file string) bool {
	rel, err := filepath.Rel(root, filepath.Clean(file))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// ignored applies the context's .containerignore (or .dockerignore), as
// buildah will when it copies.
func (p *planner) ignored(rel string) (bool, error) {
	if p.ignore == nil {
		p.ignore = &ignoreRules{}
		for _, name := range []string{".containerignore", ".dockerignore"} {
			f, err := os.Open(filepath.Join(p.ctx.abs, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return false, err
			}
			patterns, err := ignorefile.ReadAll(f)
			f.Close()
			if err != nil {
				return false, fmt.Errorf("%s: %w", name, err)
			}
			pm, err := patternmatcher.New(patterns)
			if err != nil {
				return false, fmt.Errorf("%s: %w", name, err)
			}
			p.ignore.matcher = pm
			break
		}
	}
	if p.ignore.matcher == nil {
		return false, nil
	}
	//nolint:staticcheck // the parent-aware variant needs a walk order we do not have here
	return p.ignore.matcher.MatchesOrParentMatches(rel)
}

type ignoreRules struct {
	matcher *patternmatcher.PatternMatcher
}

func hasExt(name string, exts ...string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".tmpl")
	for _, e := range exts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// detect decides how an app is launched from its files, and lists them.
func (p *planner) detect(a *app) (metadata.AppType, []string, error) {
	dest := "apps/" + a.name + "/"
	var metaFiles []string
	files := appFiles{}
	charts := 0
	for _, src := range a.sources {
		if src.isDir {
			metaFiles = append(metaFiles, dest)
			for _, f := range src.files {
				files.add(src.written, f)
			}
			chart := filepath.Join(src.abs, "Chart.yaml")
			if _, err := os.Stat(chart); err == nil {
				if err := checkChart(chart); err != nil {
					return "", nil, p.errorf(a.line, "app %s: %s/Chart.yaml: %v", a.name, src.rel, err)
				}
				charts++
			}
			continue
		}
		base := path.Base(src.rel)
		metaFiles = append(metaFiles, dest+base)
		files.add(src.written, base)
		if hasExt(base, ".tgz", ".tar.gz") && isChartArchive(src.abs) {
			charts++
		}
	}
	metaFiles = dedupe(metaFiles)
	for _, r := range files.replaced {
		var shown []string
		for _, f := range r.files {
			if len(shown) == 3 {
				shown = append(shown, "...")
				break
			}
			shown = append(shown, dest+f)
		}
		p.warnf(a.line, "app %s: %s replaces %s from %s (the later source wins, as with COPY and in sealer)", a.name, r.later, strings.Join(shown, ", "), r.earlier)
	}
	all := files.list()
	imagePaths := make([]string, len(all))
	for i, f := range all {
		imagePaths[i] = dest + f
	}
	p.plan.AppFiles[a.name] = imagePaths

	if len(all) == 0 {
		return "", nil, p.errorf(a.line, "app %s holds no files", a.name)
	}
	if charts > 0 {
		if len(a.sources) > 1 {
			return "", nil, p.errorf(a.line, "app %s: a Helm app is one chart (a directory with Chart.yaml, or a chart .tgz) and nothing else; got %d sources", a.name, len(a.sources))
		}
		return metadata.AppHelm, metaFiles, nil
	}
	manifests, scripts := true, true
	var other []string
	for _, f := range all {
		isYAML, isShell := hasExt(f, ".yaml", ".yml"), hasExt(f, ".sh")
		manifests = manifests && isYAML
		scripts = scripts && isShell
		if !isYAML && !isShell {
			other = append(other, f)
		}
	}
	switch {
	case manifests:
		return metadata.AppManifests, metaFiles, nil
	case scripts:
		return metadata.AppShell, metaFiles, nil
	case a.hasCmds:
		return metadata.AppShell, metaFiles, nil
	}
	if len(other) == 0 { // a mix of YAML and scripts
		other = all
	}
	if len(other) > 3 {
		other = append(other[:3], "...")
	}
	return "", nil, p.errorf(a.line, "app %s is not a Helm chart, nor only YAML manifests, nor only shell scripts (%s): say how to launch it with APPCMDS %s [\"cmd\", ...]", a.name, strings.Join(other, ", "), a.name)
}

// appFiles are the files an app's sources give, relative to its folder.
// Sources are copied in order, and a later one replaces what an earlier
// one gave at the same path (a file, or a folder where a file was, and
// the other way round), as buildah's COPY does.
type appFiles struct {
	owner    map[string]string // file to the source that gives it
	below    map[string]int    // folder to how many files are below it
	replaced []replacement
}

// replacement is what a later source replaced of an earlier one.
type replacement struct {
	earlier, later string
	files          []string
}

func (af *appFiles) add(src, file string) {
	if af.owner == nil {
		af.owner, af.below = map[string]string{}, map[string]int{}
	}
	var gone []string
	if _, ok := af.owner[file]; ok {
		gone = append(gone, file)
	}
	if af.below[file] > 0 {
		for f := range af.owner {
			if strings.HasPrefix(f, file+"/") {
				gone = append(gone, f)
			}
		}
		sort.Strings(gone)
	}
	for d := path.Dir(file); d != "."; d = path.Dir(d) {
		if _, ok := af.owner[d]; ok {
			gone = append(gone, d)
		}
	}
	for _, f := range gone {
		af.note(af.owner[f], src, f)
		delete(af.owner, f)
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			af.below[d]--
		}
	}
	af.owner[file] = src
	for d := path.Dir(file); d != "."; d = path.Dir(d) {
		af.below[d]++
	}
}

func (af *appFiles) note(earlier, later, file string) {
	for i := range af.replaced {
		if r := &af.replaced[i]; r.earlier == earlier && r.later == later {
			r.files = append(r.files, file)
			return
		}
	}
	af.replaced = append(af.replaced, replacement{earlier, later, []string{file}})
}

// list is the files, sorted.
func (af *appFiles) list() []string {
	out := make([]string, 0, len(af.owner))
	for f := range af.owner {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	out := list[:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// checkChart reads a Chart.yaml far enough to know helm will take it.
func checkChart(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var chart struct {
		APIVersion string `json:"apiVersion"`
		Name       string `json:"name"`
		Version    string `json:"version"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		return err
	}
	switch {
	case chart.APIVersion != "v1" && chart.APIVersion != "v2":
		return fmt.Errorf("apiVersion %q: a Helm chart has v1 or v2", chart.APIVersion)
	case chart.Name == "":
		return errors.New("the chart has no name")
	case chart.Version == "":
		return errors.New("the chart has no version")
	}
	return nil
}

// isChartArchive tells whether a .tgz holds a Helm chart: a top directory
// with Chart.yaml in it, as `helm package` writes.
func isChartArchive(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return false
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF || err != nil {
			return false
		}
		parts := strings.Split(strings.TrimPrefix(path.Clean(h.Name), "./"), "/")
		if len(parts) == 2 && parts[1] == "Chart.yaml" {
			return true
		}
	}
}

package kubefile

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/openshift/imagebuilder/dockerfile/parser"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// sealerApps is where sealer keeps an image's apps (its APP copies to
// application/apps/<name>/); hoist keeps them in /apps/<name>/, where
// apply launches them from.
const sealerApps = "/application/apps"

// copiedApp is an app folder that a COPY or ADD of the final stage fills
// in sealer's layout.
type copiedApp struct {
	name    string
	word    string // COPY or ADD
	line    int
	sources []source // in the build context
	root    bool     // the sources fill the app's folder itself, not one below it
	files   []string // what it adds, relative to the app's folder
	why     string   // why its files are not known; "" when they are
}

// sealerLayout puts what a COPY or ADD of the final stage writes in
// sealer's application/apps/ in /apps/ instead, so that those apps are
// where hoist launches them from, and records them (copiedApps). Two
// cases: a destination in application/apps/, which is rewritten; and a
// folder of the build context that holds application/apps/ at the place
// the destination puts it (COPY . .), which is excluded from the COPY
// and copied to /apps/ by a COPY of its own.
func (p *planner) sealerLayout(i int, n *parser.Node) {
	var values []string
	for a := n.Next; a != nil; a = a.Next {
		values = append(values, a.Value)
	}
	if len(values) < 2 {
		return // buildah reports it
	}
	dest, err := p.expand(n.StartLine, values[len(values)-1], true)
	if err != nil {
		return // buildah reports it
	}
	abs := dest
	if !path.IsAbs(abs) {
		workdir := p.current().workdir
		if workdir == "" {
			return
		}
		abs = path.Join(workdir, abs)
	}
	abs = path.Clean(abs)
	switch {
	case abs == sealerApps || strings.HasPrefix(abs, sealerApps+"/"):
		intoDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || dest == "." || len(values) > 2
		p.moveDest(i, n, values, abs, intoDir)
	case abs == "/" || strings.HasPrefix(sealerApps, abs+"/"):
		p.moveContext(i, n, values, strings.TrimPrefix(strings.TrimPrefix(sealerApps, abs), "/"))
	}
}

// moveDest rewrites a destination in application/apps/ to the same place
// in /apps/.
func (p *planner) moveDest(i int, n *parser.Node, values []string, abs string, intoDir bool) {
	line, word := n.StartLine, strings.ToUpper(n.Value)
	dest := "/apps" + strings.TrimPrefix(abs, sealerApps)
	if intoDir && !strings.HasSuffix(dest, "/") {
		dest += "/"
	}
	text, ok := withDest(n, values, dest)
	if !ok || len(n.Heredocs) > 0 || !plainPath(dest) {
		p.warnf(line, "%s writes to %s, sealer's place for apps; hoist keeps apps in /apps/ and cannot move this one: write its destination as %s", word, abs, dest)
		return
	}
	p.replaced[i] = p.archText(text) + "\n"

	srcs, why := p.copySources(line, n, values)
	rel := strings.TrimPrefix(abs, sealerApps)
	if rel == "" {
		// The folder of every app: each folder a source holds is one.
		if why != "" {
			p.warnf(line, "%s writes to %s/, sealer's place for apps: hoist puts it in /apps/, but cannot tell which apps it holds (%s); declare them with APP", word, sealerApps, why)
		}
		for _, src := range srcs {
			if src.isDir {
				p.copied = append(p.copied, appsIn(src, word, line)...)
			}
		}
		return
	}
	name, inApp, _ := strings.Cut(strings.TrimPrefix(rel, "/"), "/")
	c := copiedApp{name: name, word: word, line: line, sources: srcs, root: inApp == "", why: why}
	for _, src := range srcs {
		switch {
		case src.isDir:
			for _, f := range src.files {
				c.files = append(c.files, path.Join(inApp, f))
			}
		case intoDir:
			c.files = append(c.files, path.Join(inApp, path.Base(src.rel)))
		case inApp != "":
			c.files = append(c.files, inApp)
		default:
			c.why = fmt.Sprintf("it makes /apps/%s a file, not a folder (end the destination with /)", name)
		}
	}
	p.copied = append(p.copied, c)
}

// moveContext handles a COPY whose sources hold sealer's layout: the
// folder under that lands in /application/apps is left out of it
// (--exclude, relative to the context as buildah reads it) and copied to
// /apps/ after it.
func (p *planner) moveContext(i int, n *parser.Node, values []string, under string) {
	line, word := n.StartLine, strings.ToUpper(n.Value)
	if len(n.Heredocs) > 0 {
		return
	}
	for _, f := range n.Flags {
		if strings.HasPrefix(f, "--from=") || strings.HasPrefix(f, "--parents") {
			return // not the build context's layout, or not at that place
		}
	}
	var found []source
	for _, v := range values[:len(values)-1] {
		w, err := p.expand(line, v, true)
		if err != nil || isURL(w) || strings.ContainsAny(w, "*?[") {
			continue
		}
		rel := path.Clean(strings.TrimPrefix(w, "/"))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		folder := path.Join(rel, under)
		if info, err := os.Stat(filepath.Join(p.ctx.abs, filepath.FromSlash(folder))); err != nil || !info.IsDir() {
			continue
		}
		if ignored, err := p.ignored(folder); err != nil || ignored {
			continue // buildah does not copy it either
		}
		src, why := p.listSource(line, folder)
		if why == "" && !plainPath(folder) {
			why = "its path has characters a Dockerfile pattern would read"
		}
		if why != "" {
			p.warnf(line, "%s copies %s to %s, sealer's place for apps; hoist keeps apps in /apps/ and cannot move it: %s", word, folder, sealerApps, why)
			continue
		}
		found = append(found, src)
	}
	if len(found) == 0 {
		return
	}
	orig := strings.TrimSpace(n.Original)
	written := instructionWord(n)
	var b strings.Builder
	b.WriteString(written)
	for _, src := range found {
		b.WriteString(" --exclude=" + src.rel)
	}
	b.WriteString(orig[len(written):] + "\n")
	for _, src := range found {
		b.WriteString(strings.Join(append([]string{written}, n.Flags...), " ") + " " + jsonArray([]string{src.rel, "/apps/"}) + "\n")
		p.copied = append(p.copied, appsIn(src, word, line)...)
	}
	p.replaced[i] = p.archText(b.String())
}

// copySources lists the sources of a COPY or ADD in the build context,
// or says why they cannot be known before the build.
func (p *planner) copySources(line int, n *parser.Node, values []string) ([]source, string) {
	for _, f := range n.Flags {
		if from, ok := strings.CutPrefix(f, "--from="); ok {
			return nil, "its sources come from " + from + ", not from the build context"
		}
		if strings.HasPrefix(f, "--parents") {
			return nil, "--parents keeps the sources' paths"
		}
	}
	if len(n.Heredocs) > 0 {
		return nil, "a heredoc"
	}
	var out []source
	for _, v := range values[:len(values)-1] {
		w, err := p.expand(line, v, true)
		switch {
		case err != nil:
			return nil, err.Error()
		case isURL(w):
			return nil, w + " is downloaded by the build"
		case strings.ContainsAny(w, "*?["):
			return nil, w + " is a pattern"
		}
		// As in COPY, an absolute source is relative to the context.
		src, why := p.listSource(line, strings.TrimPrefix(w, "/"))
		if why != "" {
			return nil, why
		}
		if n.Value == "add" && !src.isDir {
			return nil, "ADD may unpack " + w
		}
		out = append(out, src)
	}
	return out, ""
}

// listSource resolves a path of the build context as an APP source is,
// saying why not instead of failing: the COPY itself is buildah's.
func (p *planner) listSource(line int, rel string) (source, string) {
	src, err := p.resolveSource(line, "", rel, "")
	var kerr *Error
	if errors.As(err, &kerr) {
		return source{}, strings.TrimPrefix(kerr.Err.Error(), "app : ")
	}
	if err != nil {
		return source{}, err.Error()
	}
	return src, ""
}

// appsIn splits a listed folder of apps into one copiedApp per folder it
// holds; files beside them are not apps.
func appsIn(src source, word string, line int) []copiedApp {
	var out []copiedApp
	index := map[string]int{}
	for _, f := range src.files {
		name, inApp, ok := strings.Cut(f, "/")
		if !ok {
			continue
		}
		k, seen := index[name]
		if !seen {
			k = len(out)
			index[name] = k
			folder := source{written: path.Join(src.written, name), rel: path.Join(src.rel, name), abs: filepath.Join(src.abs, name), isDir: true}
			out = append(out, copiedApp{name: name, word: word, line: line, sources: []source{folder}, root: true})
		}
		out[k].files = append(out[k].files, inApp)
		out[k].sources[0].files = append(out[k].sources[0].files, inApp)
	}
	return out
}

// copiedApps records the app folders that COPY and ADD filled: files added
// to an app the Kubefile declares, an app of their own otherwise (as if
// APP named it). An app of the base image keeps its kind. A folder that
// cannot be an app is a warning: sealer built such Kubefiles without one.
func (p *planner) copiedApps() {
	var implicit []string
	for _, c := range p.copied {
		if a := p.apps[c.name]; a != nil && a.line != 0 && !a.implicit {
			a.extra = append(a.extra, c.files...)
			for _, s := range c.sources {
				p.plan.AppSources[c.name] = append(p.plan.AppSources[c.name], s.abs)
			}
			continue
		}
		if p.opts.Parent != nil && p.opts.Parent.App(c.name) != nil {
			continue
		}
		why := c.why
		switch {
		case why != "":
		case !metadata.IsAppName(c.name):
			why = fmt.Sprintf("%q is not an app name (lower-case letters, digits and '-', at most %d characters)", c.name, metadata.MaxAppName)
		case !c.root:
			why = "only files below its folder are given"
		}
		if why != "" {
			p.warnf(c.line, "%s puts application/apps/%s/ in /apps/%s/, where hoist keeps apps, but hoist cannot record %s as an app: %s; declare it with APP %s to launch it", c.word, c.name, c.name, c.name, why, c.name)
			continue
		}
		a := p.pendingApp(c.name)
		if !a.implicit {
			a.implicit, a.kind, a.line = true, c.word, c.line
			implicit = append(implicit, c.name)
		}
		a.sources = append(a.sources, c.sources...)
	}
	for _, name := range implicit {
		a := p.apps[name]
		kind, files, err := p.detect(a)
		if err != nil {
			msg := err.Error()
			var kerr *Error
			if errors.As(err, &kerr) {
				msg = kerr.Err.Error()
			}
			p.warnf(a.line, "%s puts application/apps/%s/ in /apps/%s/, but it is not an app hoist can launch: %s", a.kind, name, name, msg)
			delete(p.apps, name)
			delete(p.plan.AppFiles, name)
			continue
		}
		a.detected, a.metaFiles = kind, files
		p.appOrder = append(p.appOrder, name)
		for _, s := range a.sources {
			p.plan.AppSources[name] = append(p.plan.AppSources[name], s.abs)
		}
	}
}

// addExtra lists the files COPY or ADD added to a declared app with the
// app's own.
func (p *planner) addExtra(a *app) {
	if len(a.extra) == 0 {
		return
	}
	files := p.plan.AppFiles[a.name]
	for _, f := range a.extra {
		files = append(files, "apps/"+a.name+"/"+f)
	}
	sort.Strings(files)
	p.plan.AppFiles[a.name] = dedupe(files)
}

// withDest is the instruction with its destination replaced, the rest as
// written.
func withDest(n *parser.Node, values []string, dest string) (string, bool) {
	orig := strings.TrimSpace(n.Original)
	if n.Attributes["json"] {
		start := strings.Index(orig, "[")
		if start < 0 {
			return "", false
		}
		return orig[:start] + jsonArray(append(append([]string{}, values[:len(values)-1]...), dest)), true
	}
	last := values[len(values)-1]
	if !strings.HasSuffix(orig, last) {
		return "", false
	}
	return strings.TrimSuffix(orig, last) + dest, true
}

// plainPath tells whether a path can be written in a Dockerfile as it
// is: nothing buildah would expand, split or match in it.
func plainPath(p string) bool { return !strings.ContainsAny(p, " \t\r\n$\"'`\\*?[]{}") }

// archText replaces sealer's ${ARCH} in an instruction hoist writes, as
// rewriteArch does in one it keeps.
func (p *planner) archText(text string) string {
	if p.current().archDeclared {
		return text
	}
	return archWord.ReplaceAllLiteralString(text, p.opts.Platform.Arch)
}

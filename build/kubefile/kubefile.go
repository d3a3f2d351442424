package kubefile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/openshift/imagebuilder/dockerfile/parser"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// MaxSize is the largest Kubefile accepted. Real ones are a few KiB; anything
// near this is a wrong file given to -f.
const MaxSize = 4 << 20

// Options are the inputs of a plan besides the Kubefile itself.
type Options struct {
	// ContextDir is the build context; APP sources must stay inside it.
	ContextDir string
	// BuildArgs are --build-arg values.
	BuildArgs map[string]string
	// Platform is the target platform; zero means the host's.
	Platform Platform
	// Type is the image type, metadata.TypeCluster (the default) or TypeApp.
	Type metadata.ImageType
	// CacheDir keeps https:// sources, downloaded once. Needed only when a
	// Kubefile has such sources.
	CacheDir string
	// HTTPClient fetches https:// sources; nil means a client with timeouts.
	HTTPClient *http.Client
	// Parent is the metadata of the base image when it is a hoist image: its
	// apps, env, CNI, CSI and CMD are inherited (LAUNCH and CMDS are not).
	Parent *metadata.Metadata
	// BuildContexts are the images of --build-context NAME=docker-image://REF,
	// NAME to REF: a FROM NAME builds on REF instead, as in buildah and
	// BuildKit (ParseBuildContext reads the flag).
	BuildContexts map[string]string
	// SealerBase says why the final stage's base image is one sealer made
	// (its labels, once the build has it), "" when it is not: hoist cannot
	// build on such an image, and the FROM line says so.
	SealerBase string
}

// ParseFile reads the Kubefile at path and plans the build. Its https://
// sources are fetched with no deadline but the HTTP client's: a caller that
// can be interrupted reads the file with ReadFile and plans with File.Plan.
func ParseFile(path string, opts Options) (*Plan, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return f.Plan(context.Background(), opts)
}

func readFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading Kubefile: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, not a Kubefile", path)
	}
	if info.Size() > MaxSize {
		return nil, &Error{File: path, Line: 1, Err: fmt.Errorf("file is %s; a Kubefile may be at most %s: is this the right file?", sizeString(info.Size()), sizeString(MaxSize))}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Kubefile: %w", err)
	}
	return data, nil
}

// Parse plans the build of the Kubefile text data; name is used in errors.
// Like ParseFile, it fetches with no deadline but the HTTP client's.
func Parse(name string, data []byte, opts Options) (*Plan, error) {
	f, err := NewFile(name, data)
	if err != nil {
		return nil, err
	}
	return f.Plan(context.Background(), opts)
}

// File is a Kubefile read and split into instructions, not yet planned. A
// build reads it once and plans it for each platform: the instructions do
// not depend on the platform, their meaning (${ARCH}, TARGETARCH) does.
type File struct {
	name   string
	data   []byte
	result *parser.Result
}

// ReadFile reads the Kubefile at path and splits it into instructions.
func ReadFile(path string) (*File, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return NewFile(path, data)
}

// NewFile splits the Kubefile text data into instructions; name is used in
// errors.
func NewFile(name string, data []byte) (*File, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: name, Line: 1, Err: fmt.Errorf("file is %s; a Kubefile may be at most %s: is this the right file?", sizeString(int64(len(data))), sizeString(MaxSize))}
	}
	if line, ok := binaryLine(data); ok {
		return nil, &Error{File: name, Line: line, Err: errors.New("binary content (not UTF-8 text): is this the right file?")}
	}
	result, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, &Error{File: name, Line: errorLine(data, err), Err: err}
	}
	if len(result.AST.Children) == 0 {
		return nil, &Error{File: name, Line: 1, Err: errors.New("the Kubefile is empty: it holds no instruction (start with FROM)")}
	}
	return &File{name: name, data: data, result: result}, nil
}

// Name is the Kubefile as the user named it.
func (f *File) Name() string { return f.name }

// Base returns the image the final stage starts from ("" for scratch),
// reading no more than that needs: the build looks the base up before
// planning, to inherit a hoist base's apps. It fetches nothing.
func (f *File) Base(opts Options) (string, error) {
	plan, err := f.plan(context.Background(), opts, true)
	if err != nil {
		return "", err
	}
	return plan.Base, nil
}

// Plan plans the build for opts.Platform. Cancelling ctx stops the
// download of an https:// source.
func (f *File) Plan(ctx context.Context, opts Options) (*Plan, error) {
	return f.plan(ctx, opts, false)
}

func (f *File) plan(ctx context.Context, opts Options, baseOnly bool) (*Plan, error) {
	if opts.Platform == (Platform{}) {
		opts.Platform = HostPlatform()
	}
	if opts.Type == "" {
		opts.Type = metadata.TypeCluster
	}
	if opts.Type != metadata.TypeCluster && opts.Type != metadata.TypeApp {
		return nil, fmt.Errorf("image type %q: must be %q or %q", opts.Type, metadata.TypeCluster, metadata.TypeApp)
	}
	ctxDir, err := contextDir(opts.ContextDir)
	if err != nil {
		return nil, err
	}
	p := &planner{
		name:     f.name,
		opts:     opts,
		fetchCtx: ctx,
		ctx:      ctxDir,
		escape:   f.result.EscapeToken,
		nodes:    f.result.AST.Children,
		baseOnly: baseOnly,
		consumed: map[string]bool{},
		meta:     metadata.New(opts.Type),
		apps:     map[string]*app{},
		plan: &Plan{
			File:          f.name,
			ContextDir:    ctxDir.abs,
			Platform:      opts.Platform,
			AppFiles:      map[string][]string{},
			AppSources:    map[string][]string{},
			BuildArgs:     map[string]string{},
			BuildContexts: map[string]string{},
			Parent:        opts.Parent,
		},
	}
	p.parserWarnings(f.result.Warnings)
	if err := p.run(); err != nil {
		return nil, err
	}
	p.plan.Dockerfile = p.dockerfile(f.data)
	p.plan.Metadata = p.meta
	return p.plan, nil
}

// parserWarnings turns imagebuilder's warnings into file:line ones.
func (p *planner) parserWarnings(warnings []string) {
	const empty = "[WARNING]: Empty continuation line found in:\n    "
	for _, w := range warnings {
		text, ok := strings.CutPrefix(w, empty)
		if !ok {
			if !strings.Contains(w, "will become errors") {
				p.plan.Warnings = append(p.plan.Warnings, fmt.Sprintf("%s: warning: %s", p.name, strings.TrimPrefix(w, "[WARNING]: ")))
			}
			continue
		}
		line := 1
		for _, n := range p.nodes {
			if n.Original == text {
				line = n.StartLine
				break
			}
		}
		p.warnf(line, "empty or comment-only line inside a continued instruction; buildah says these will become errors")
	}
}

// binaryLine reports the line of the first byte that cannot be in a text
// file: a NUL, or invalid UTF-8.
func binaryLine(data []byte) (int, bool) {
	bad := bytes.IndexByte(data, 0)
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				if bad < 0 || i < bad {
					bad = i
				}
				break
			}
			i += size
		}
	}
	if bad < 0 {
		return 0, false
	}
	return bytes.Count(data[:bad], []byte("\n")) + 1, true
}

// errorLine finds the line a Dockerfile syntax error belongs to. The
// imagebuilder parser does not say, but it stops at the first error, so every
// prefix of the file that reaches the bad line fails the same way and shorter
// ones do not: a binary search over prefixes finds the line.
func errorLine(data []byte, want error) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	failsAt := func(n int) bool {
		_, err := parser.Parse(bytes.NewReader(bytes.Join(lines[:n], nil)))
		return err != nil && err.Error() == want.Error()
	}
	lo, hi := 1, len(lines) // failsAt(hi) holds: it is the whole file
	for lo < hi {
		mid := (lo + hi) / 2
		if failsAt(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

func sizeString(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// kv is one name and value, in the order written.
type kv struct{ name, value string }

type stage struct {
	name     string // the AS name, lower case
	base     string // the image it starts from, through parent stages
	baseLine int    // the line of the FROM that names base
	parent   *stage // the earlier stage this one is FROM, if any
	args     []kv   // ARGs declared in the stage that have a value
	env      []kv
	// archDeclared is set when the stage defines ARCH itself: then ${ARCH}
	// is the user's variable, not sealer's automatic one.
	archDeclared bool
	// workdir is where relative COPY destinations go: "/" unless a WORKDIR
	// of the stage (or of the stage it is FROM) says otherwise; "" when
	// it cannot be known. A base image's own WORKDIR is not known when
	// planning.
	workdir string
	// cmd are the stage's CMD commands; cmdReset is set by a CMD [],
	// which drops the commands inherited before it.
	cmd      []cmdLine
	cmdReset bool
}

// cmdLine is one CMD command and the line it is on (0: the base image's).
type cmdLine struct {
	text string
	line int
}

// clusterCmd lists the CMD commands the stage ends with: the inherited
// ones (the base image's, through the stages it is FROM) unless a CMD []
// dropped them, then its own.
func (s *stage) clusterCmd(inherited []cmdLine) []cmdLine {
	if s.parent != nil {
		inherited = s.parent.clusterCmd(inherited)
	}
	if s.cmdReset {
		inherited = nil
	}
	return append(append([]cmdLine{}, inherited...), s.cmd...)
}

// inheritedEnv is the ENV a stage starts with: its parent stage's, in order.
func (s *stage) inheritedEnv() []kv {
	if s.parent == nil {
		return nil
	}
	return append(s.parent.inheritedEnv(), s.parent.env...)
}

// app is an app as the Kubefile builds it up.
type app struct {
	name    string
	kind    string // APP, CNI or CSI; COPY or ADD for an app of sealer's layout
	line    int
	sources []source
	cmds    []string
	hasCmds bool
	env     map[string]string
	// implicit is set for an app no APP declares, which a COPY or ADD puts
	// in sealer's application/apps/ (layout.go): one that cannot be
	// launched is a warning, not an error, as sealer built it.
	implicit bool
	// detected and metaFiles are an implicit app's type and files, found
	// when it was recorded.
	detected  metadata.AppType
	metaFiles []string
	// extra are files a COPY or ADD adds to a declared app, in its folder.
	extra []string
}

// reference to an app by a later instruction, checked once all apps are known.
type appRef struct {
	name, instruction string
	line              int
}

type planner struct {
	name     string
	opts     Options
	fetchCtx context.Context // cancels the downloads of https:// sources
	ctx      contextRoot
	escape   rune
	nodes    []*parser.Node
	plan     *Plan
	meta     *metadata.Metadata
	global   []kv // ARGs before the first FROM
	stages   []*stage
	consumed map[string]bool // build args some ARG declared

	apps     map[string]*app
	appOrder []string
	ignore   *ignoreRules
	refs     []appRef

	baseOnly        bool // stop once the final stage's base is known
	lastFrom        int  // the node that starts the final stage
	launchLine      int
	kubeVersionLine int
	cmds            []string    // CMDS commands, in order
	copied          []copiedApp // app folders COPY or ADD fill in sealer's layout
	// replaced maps a node index to the lines that stand for it in the
	// Dockerfile, when it is not passed through unchanged.
	replaced map[int]string
}

func (p *planner) errorf(line int, format string, args ...any) error {
	return &Error{File: p.name, Line: line, Err: fmt.Errorf(format, args...)}
}

func (p *planner) warnf(line int, format string, args ...any) {
	p.plan.Warnings = append(p.plan.Warnings, fmt.Sprintf("%s:%d: warning: %s", p.name, line, fmt.Sprintf(format, args...)))
}

func (p *planner) run() error {
	p.replaced = map[int]string{}
	lastFrom := -1
	for i, n := range p.nodes {
		word := shorten(instructionWord(n))
		if !isDockerInstruction(word) && !isClusterInstruction(word) {
			if s := suggest(word); s != "" {
				return p.errorf(n.StartLine, "unknown instruction %s (did you mean %s?)", word, s)
			}
			return p.errorf(n.StartLine, "unknown instruction %s", word)
		}
		if n.Value == "from" {
			lastFrom = i
		}
	}
	p.lastFrom = lastFrom
	if lastFrom < 0 {
		return p.errorf(p.nodes[0].StartLine, "no FROM instruction: a Kubefile starts from a base image (FROM scratch for none)")
	}
	if p.opts.Parent != nil {
		p.inherit(p.opts.Parent)
	}

	for i, n := range p.nodes {
		word := strings.ToUpper(instructionWord(n))
		if isClusterInstruction(word) {
			if p.baseOnly {
				continue
			}
			if i < lastFrom {
				return p.errorf(n.StartLine, "%s must come after the last FROM: cluster instructions belong to the final stage", word)
			}
			if err := p.cluster(i, n, word); err != nil {
				return err
			}
			continue
		}
		if len(p.stages) == 0 && n.Value != "from" && n.Value != "arg" {
			return p.errorf(n.StartLine, "%s before FROM: only ARG may come before the first FROM", word)
		}
		var err error
		switch n.Value {
		case "from":
			err = p.from(i, n)
		case "arg":
			err = p.arg(n)
		case "env":
			err = p.env(n)
		case "workdir":
			err = p.workdir(n)
		case "copy", "add":
			p.rewriteArch(i, n)
			if i > lastFrom && !p.baseOnly {
				p.sealerLayout(i, n)
			}
		case "run":
			p.plan.HasRun = true
		case "cmd":
			err = p.cmd(n)
		}
		if err != nil {
			return err
		}
	}
	if p.baseOnly {
		if final := p.current(); !strings.EqualFold(final.base, "scratch") {
			p.plan.Base = final.base
		}
		return nil
	}
	return p.finish()
}

// instructionWord is the instruction as written (FROM, from, Form...).
func instructionWord(n *parser.Node) string {
	word, _, _ := strings.Cut(strings.TrimSpace(n.Original), " ")
	word, _, _ = strings.Cut(word, "\t")
	return word
}

// rest returns the arguments of an instruction: what follows the instruction
// word and its --flags.
func rest(n *parser.Node) string {
	s := strings.TrimSpace(n.Original)
	s = strings.TrimLeft(s[len(instructionWord(n)):], " \t")
	for strings.HasPrefix(s, "--") {
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			return ""
		}
		s = strings.TrimLeft(s[end:], " \t")
	}
	return s
}

func (p *planner) current() *stage { return p.stages[len(p.stages)-1] }

// lexEnv is the variables visible at this point: for the global scope the
// global ARGs and the automatic platform args; in a stage, the inherited ENV,
// the stage's ARGs, then its ENV (ENV wins over an ARG of the same name).
func (p *planner) lexEnv(withArch bool) shell.EnvGetter {
	values := map[string]string{}
	if len(p.stages) == 0 {
		for k, v := range p.opts.Platform.buildArgs() {
			values[k] = v
		}
		for _, a := range p.global {
			values[a.name] = a.value
		}
	} else {
		s := p.current()
		for _, e := range s.inheritedEnv() {
			values[e.name] = e.value
		}
		for _, a := range s.args {
			values[a.name] = a.value
		}
		for _, e := range s.env {
			values[e.name] = e.value
		}
		if withArch && !s.archDeclared {
			values["ARCH"] = p.opts.Platform.Arch
		}
	}
	list := make([]string, 0, len(values))
	for k, v := range values {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return shell.EnvsFromSlice(list)
}

func (p *planner) expand(line int, word string, withArch bool) (string, error) {
	out, _, err := shell.NewLex(p.escape).ProcessWord(word, p.lexEnv(withArch))
	if err != nil {
		return "", p.errorf(line, "%v", err)
	}
	return out, nil
}

func (p *planner) words(line int, text string, withArch bool) ([]string, error) {
	out, err := shell.NewLex(p.escape).ProcessWords(text, p.lexEnv(withArch))
	if err != nil {
		return nil, p.errorf(line, "%v", err)
	}
	return out, nil
}

func (p *planner) from(i int, n *parser.Node) error {
	var args []string
	for a := n.Next; a != nil; a = a.Next {
		args = append(args, a.Value)
	}
	if len(args) == 0 {
		return p.errorf(n.StartLine, "FROM needs a base image (FROM scratch for none)")
	}
	if len(args) != 1 && (len(args) != 3 || !strings.EqualFold(args[1], "as")) {
		return p.errorf(n.StartLine, "FROM takes one image and an optional AS name: FROM image [AS name]")
	}
	base, err := p.expand(n.StartLine, args[0], false)
	if err != nil {
		return err
	}
	// As in buildah, a build context replaces the image before stages are
	// looked at; the Dockerfile names the replacement itself, so that
	// buildah builds on what the plan inherits from.
	if ref, ok := p.buildContext(base); ok {
		p.replaced[i] = fromLine(n, ref, args) + "\n"
		base = ref
	}
	s := &stage{base: base, baseLine: n.StartLine, workdir: "/"}
	if len(args) == 3 {
		s.name = strings.ToLower(args[2])
	}
	for _, earlier := range p.stages {
		if earlier.name != "" && earlier.name == strings.ToLower(base) {
			s.parent, s.base, s.baseLine, s.workdir = earlier, earlier.base, earlier.baseLine, earlier.workdir
		}
	}
	if s.parent == nil && !strings.EqualFold(base, "scratch") {
		p.plan.Bases = append(p.plan.Bases, base)
	}
	// Only what the image builds on: an earlier stage may start from a
	// sealer image to copy files out of it.
	if i == p.lastFrom && !strings.EqualFold(s.base, "scratch") {
		if err := p.checkSealerBase(s.baseLine, s.base); err != nil {
			return err
		}
	}
	p.stages = append(p.stages, s)
	return nil
}

// workdir follows WORKDIR, for the COPY destinations that sealer's layout
// needs resolved.
func (p *planner) workdir(n *parser.Node) error {
	if n.Next == nil {
		return nil // buildah reports it
	}
	s := p.current()
	dir, err := p.expand(n.StartLine, n.Next.Value, false)
	if err != nil || (!path.IsAbs(dir) && s.workdir == "") {
		// Not an error of the Kubefile's: buildah has the last word on
		// WORKDIR. Relative destinations are unknown from here on.
		s.workdir = ""
		return nil
	}
	if !path.IsAbs(dir) {
		dir = path.Join(s.workdir, dir)
	}
	s.workdir = path.Clean(dir)
	return nil
}

func (p *planner) arg(n *parser.Node) error {
	for a := n.Next; a != nil; a = a.Next {
		name, def, hasDef := strings.Cut(a.Value, "=")
		if hasDef {
			var err error
			if def, err = p.expand(n.StartLine, def, false); err != nil {
				return err
			}
		}
		value, ok := p.opts.BuildArgs[name]
		if ok {
			p.consumed[name] = true
			p.plan.BuildArgs[name] = value
		} else if hasDef {
			value, ok = def, true
		}
		if len(p.stages) == 0 {
			if ok {
				p.global = append(p.global, kv{name, value})
			}
			continue
		}
		if !ok {
			for _, g := range p.global {
				if g.name == name {
					value, ok = g.value, true
				}
			}
		}
		if v, auto := p.opts.Platform.buildArgs()[name]; !ok && auto {
			value, ok = v, true
		}
		s := p.current()
		if name == "ARCH" {
			s.archDeclared = true
		}
		if ok {
			s.args = append(s.args, kv{name, value})
		}
	}
	return nil
}

func (p *planner) env(n *parser.Node) error {
	s := p.current()
	var pairs []kv
	for a := n.Next; a != nil && a.Next != nil; a = a.Next.Next {
		value, err := p.expand(n.StartLine, a.Next.Value, false)
		if err != nil {
			return err
		}
		pairs = append(pairs, kv{a.Value, value})
	}
	// All pairs of one ENV see the values from before it, as in docker.
	for _, e := range pairs {
		s.env = append(s.env, e)
		if e.name == "ARCH" {
			s.archDeclared = true
		}
	}
	return nil
}

// archWord matches sealer's ${ARCH} or $ARCH.
var archWord = regexp.MustCompile(`\$\{ARCH\}|\$ARCH\b`)

// rewriteArch replaces sealer's ${ARCH} in a COPY or ADD by the target
// architecture, unless the stage defines ARCH itself.
func (p *planner) rewriteArch(i int, n *parser.Node) {
	if len(p.stages) == 0 || p.current().archDeclared || !archWord.MatchString(n.Original) {
		return
	}
	p.replaced[i] = "" // filled in by dockerfile(), which has the lines
}

// cmd reads a CMD: sealer's cluster command, run on the first master at
// install after the apps, whatever the base. The line stays in the
// Dockerfile, so the image config keeps docker's CMD as well; the
// metadata says what runs. The shell form is one command, the JSON form
// one command per element (as CMDS), and CMD [] drops the commands
// inherited so far.
func (p *planner) cmd(n *parser.Node) error {
	line := n.StartLine
	if len(n.Flags) > 0 {
		return p.errorf(line, "CMD takes no flags (got %s): a command that starts with -- is written in JSON form, CMD [\"%s ...\"]", strings.Join(n.Flags, " "), n.Flags[0])
	}
	s := p.current()
	if !n.Attributes["json"] {
		text := rest(n)
		if text == "" {
			return p.errorf(line, "CMD needs a command, run on the first master at install: CMD kubectl apply -f app.yaml (CMD [] drops the base image's)")
		}
		s.cmd = append(s.cmd, cmdLine{text, line})
		return nil
	}
	if n.Next == nil {
		s.cmd, s.cmdReset = nil, true
		return nil
	}
	for a := n.Next; a != nil; a = a.Next {
		if strings.TrimSpace(a.Value) == "" {
			return p.errorf(line, "CMD: an empty command (each element of CMD [...] is a command)")
		}
		s.cmd = append(s.cmd, cmdLine{a.Value, line})
	}
	return nil
}

// commentOut marks a node whose lines become comments in the Dockerfile.
const commentOut = "\x00comment"

func (p *planner) cluster(i int, n *parser.Node, word string) error {
	line := n.StartLine
	text := rest(n)
	p.replaced[i] = commentOut
	if len(n.Flags) > 0 && word != "APP" && word != "CNI" && word != "CSI" {
		return p.errorf(line, "%s takes no flags (got %s)", word, strings.Join(n.Flags, " "))
	}
	switch word {
	case "APP", "CNI", "CSI":
		return p.app(i, n, word)
	case "APPCMDS":
		name, args := firstWord(text)
		if name == "" {
			return p.errorf(line, "APPCMDS needs an app name and commands: APPCMDS name [\"cmd\", ...]")
		}
		cmds, err := p.commands(line, word, args)
		if err != nil {
			return err
		}
		p.refs = append(p.refs, appRef{name, word, line})
		a := p.pendingApp(name)
		if a.hasCmds {
			return p.errorf(line, "APPCMDS for app %s given twice", name)
		}
		a.cmds, a.hasCmds = cmds, true
	case "APPENV":
		name, args := firstWord(text)
		if name == "" || args == "" {
			return p.errorf(line, "APPENV needs an app name and at least one KEY=VALUE")
		}
		words, err := p.words(line, args, false)
		if err != nil {
			return err
		}
		p.refs = append(p.refs, appRef{name, word, line})
		a := p.pendingApp(name)
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok || k == "" {
				return p.errorf(line, "APPENV %s: %q is not KEY=VALUE", name, w)
			}
			a.env[k] = v
		}
	case "LAUNCH":
		if p.launchLine != 0 {
			return p.errorf(line, "LAUNCH given twice (first at line %d)", p.launchLine)
		}
		var names []string
		if strings.HasPrefix(text, "[") {
			if err := json.Unmarshal([]byte(text), &names); err != nil {
				return p.errorf(line, "LAUNCH: %s is not a JSON array of app names", text)
			}
		} else {
			names = strings.Fields(text)
		}
		if len(names) == 0 {
			return p.errorf(line, "LAUNCH names no app: LAUNCH [\"app\", ...]")
		}
		seen := map[string]bool{}
		for _, name := range names {
			if seen[name] {
				return p.errorf(line, "LAUNCH names app %s twice", name)
			}
			seen[name] = true
			p.refs = append(p.refs, appRef{name, word, line})
		}
		p.launchLine = line
		p.meta.Launch.Apps = names
	case "CMDS":
		cmds, err := p.commands(line, word, text)
		if err != nil {
			return err
		}
		p.cmds = append(p.cmds, cmds...)
	case "KUBEVERSION":
		if p.kubeVersionLine != 0 {
			return p.errorf(line, "KUBEVERSION given twice (first at line %d)", p.kubeVersionLine)
		}
		r, err := p.expand(line, text, false)
		if err != nil {
			return err
		}
		r = strings.TrimSpace(r)
		if r == "" {
			return p.errorf(line, "KUBEVERSION needs a version range, such as \">=1.28 <1.38\"")
		}
		if _, err := semver.NewConstraint(r); err != nil {
			return p.errorf(line, "KUBEVERSION %q is not a version range (such as \">=1.28 <1.38\" or \"~1.31\"): %v", r, err)
		}
		p.kubeVersionLine = line
		p.meta.KubeVersion = r
	case "IMAGE":
		words, err := p.words(line, text, true)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			return p.errorf(line, "IMAGE needs at least one image reference")
		}
		for _, w := range words {
			named, err := reference.ParseNormalizedNamed(w)
			if err != nil {
				return p.errorf(line, "IMAGE %q is not a valid image reference: %v", w, err)
			}
			p.plan.Images = append(p.plan.Images, ImageRef{Ref: reference.TagNameOnly(named).String(), Line: line})
		}
	}
	return nil
}

// commands reads a JSON array of shell commands, or one command written
// plainly.
func (p *planner) commands(line int, word, text string) ([]string, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, p.errorf(line, "%s needs at least one command: %s [\"cmd\", ...]", word, word)
	}
	if !strings.HasPrefix(text, "[") {
		return []string{text}, nil
	}
	var cmds []string
	if err := json.Unmarshal([]byte(text), &cmds); err != nil {
		return nil, p.errorf(line, "%s: %s is not a JSON array of strings", word, text)
	}
	for _, c := range cmds {
		if strings.TrimSpace(c) == "" {
			return nil, p.errorf(line, "%s: an empty command", word)
		}
	}
	return cmds, nil
}

func firstWord(s string) (string, string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// pendingApp returns the app of that name, creating a placeholder that an
// APP later in the file fills in (APPCMDS and APPENV may come first).
func (p *planner) pendingApp(name string) *app {
	if a, ok := p.apps[name]; ok {
		return a
	}
	a := &app{name: name, env: map[string]string{}}
	p.apps[name] = a
	return a
}

func (p *planner) app(i int, n *parser.Node, word string) error {
	line := n.StartLine
	checksum := ""
	for _, f := range n.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if k != "checksum" {
			return p.errorf(line, "%s: unknown flag --%s (only --checksum=sha256:... is known)", word, k)
		}
		checksum = v
	}
	words, err := p.words(line, rest(n), true)
	if err != nil {
		return err
	}
	if len(words) < 2 {
		return p.errorf(line, "%s needs a name and at least one source: %s name local://path ...", word, word)
	}
	name := words[0]
	if !metadata.IsAppName(name) {
		return p.errorf(line, "%s name %q: use lower-case letters, digits and '-', at most %d characters (it becomes a Helm release name)", word, name, metadata.MaxAppName)
	}
	a := p.pendingApp(name)
	if a.line != 0 {
		return p.errorf(line, "app %s is defined twice (first at line %d)", name, a.line)
	}
	if p.opts.Parent != nil && p.opts.Parent.App(name) != nil {
		return p.errorf(line, "app %s already exists in the base image; give this one another name", name)
	}
	a.kind, a.line = word, line
	p.appOrder = append(p.appOrder, name)

	var https int
	for _, w := range words[1:] {
		if strings.HasPrefix(w, "--") {
			return p.errorf(line, "%s %s: flags go before the app name (%s --checksum=sha256:... %s https://...)", word, name, word, name)
		}
		if isURL(w) {
			https++
		}
	}
	if checksum != "" && https != 1 {
		return p.errorf(line, "%s %s: --checksum needs exactly one https:// source", word, name)
	}
	for _, w := range words[1:] {
		src, err := p.resolveSource(line, name, w, checksum)
		if err != nil {
			return err
		}
		a.sources = append(a.sources, src)
		p.plan.AppSources[name] = append(p.plan.AppSources[name], src.abs)
	}
	switch word {
	case "CNI":
		p.meta.CNI = append(p.meta.CNI, name)
	case "CSI":
		p.meta.CSI = append(p.meta.CSI, name)
	}
	p.replaced[i] = p.copySteps(n, a)
	return nil
}

// copySteps are the COPY instructions that put an app's sources in place,
// after the original instruction as a comment.
func (p *planner) copySteps(n *parser.Node, a *app) string {
	var b strings.Builder
	// Absolute, so that a WORKDIR before the APP does not move the app.
	dest := "/apps/" + a.name + "/"
	var local []string
	for _, s := range a.sources {
		if s.context == "" {
			local = append(local, s.rel)
		}
	}
	if len(local) > 0 {
		b.WriteString("COPY " + jsonArray(append(local, dest)) + "\n")
	}
	for _, s := range a.sources {
		if s.context != "" {
			b.WriteString("COPY --from=" + s.context + " " + jsonArray([]string{s.rel, dest}) + "\n")
		}
	}
	return b.String()
}

func jsonArray(list []string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(list) // a []string always encodes
	return strings.ReplaceAll(strings.TrimSpace(b.String()), `","`, `", "`)
}

func (p *planner) inherit(parent *metadata.Metadata) {
	for k, v := range parent.Env {
		p.meta.Env[k] = v
	}
	p.meta.Apps = append(p.meta.Apps, parent.Apps...)
	p.meta.CNI = append(p.meta.CNI, parent.CNI...)
	p.meta.CSI = append(p.meta.CSI, parent.CSI...)
}

// finish checks what needs the whole file and fills in the metadata.
func (p *planner) finish() error {
	p.copiedApps()
	for _, r := range p.refs {
		if a := p.apps[r.name]; a != nil && a.line != 0 {
			continue
		}
		if p.opts.Parent != nil && p.opts.Parent.App(r.name) != nil {
			if r.instruction == "LAUNCH" {
				continue
			}
			return p.errorf(r.line, "%s %s: app %s comes from the base image and cannot be changed here", r.instruction, r.name, r.name)
		}
		return p.errorf(r.line, "%s names app %s, which is not defined (no APP, CNI or CSI %s)%s", r.instruction, r.name, r.name, p.nearestApp(r.name))
	}
	for _, name := range p.appOrder {
		a := p.apps[name]
		kind, files := a.detected, a.metaFiles
		if !a.implicit {
			var err error
			if kind, files, err = p.detect(a); err != nil {
				return err
			}
		}
		p.addExtra(a)
		cmds := a.cmds
		if cmds == nil {
			cmds = []string{}
		}
		p.meta.Apps = append(p.meta.Apps, metadata.App{Name: name, Type: kind, Files: files, Cmds: cmds, Env: a.env})
	}
	final := p.current()
	p.meta.Launch.Cmd = p.clusterCmd(final)
	p.meta.Launch.Cmds = append(append([]string{}, p.meta.Launch.Cmd...), p.cmds...)
	// ENV of the final stage, with what it inherits, is the image's env.
	if !strings.EqualFold(final.base, "scratch") {
		p.plan.Base = final.base
	}
	for _, e := range append(final.inheritedEnv(), final.env...) {
		p.meta.Env[e.name] = e.value
	}
	var unused []string
	for k := range p.opts.BuildArgs {
		if !p.consumed[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		p.plan.Warnings = append(p.plan.Warnings, fmt.Sprintf("%s: warning: one or more build args were not consumed: %s", p.name, strings.Join(unused, ", ")))
	}
	return p.meta.Validate()
}

// clusterCmd is the image's CMD: the base image's (as sealer, not for an
// app image, which runs its own only), then the Kubefile's. A command
// given twice runs once, at its first place, as in sealer.
func (p *planner) clusterCmd(final *stage) []string {
	var inherited []cmdLine
	if p.opts.Parent != nil && p.opts.Type != metadata.TypeApp {
		for _, c := range p.opts.Parent.Launch.Cmd {
			inherited = append(inherited, cmdLine{c, 0})
		}
	}
	out := []string{}
	first := map[string]int{}
	for _, c := range final.clusterCmd(inherited) {
		if at, ok := first[c.text]; ok {
			if c.line > 0 {
				where := "the base image's CMD"
				if at > 0 {
					where = fmt.Sprintf("line %d", at)
				}
				p.warnf(c.line, "CMD %s: already run by %s; it runs once, as in sealer", c.text, where)
			}
			continue
		}
		first[c.text] = c.line
		out = append(out, c.text)
	}
	return out
}

func (p *planner) nearestApp(name string) string {
	best, bestDist := "", len(name)/2+1
	if len(name) > 60 {
		return ""
	}
	for _, n := range p.appOrder {
		if d := editDistance(name, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// dockerfile writes the Kubefile back with cluster instructions replaced:
// every other byte is the user's.
func (p *planner) dockerfile(data []byte) string {
	lines := strings.SplitAfter(string(data), "\n")
	owner := make([]int, len(lines)+2) // line number to node index+1
	for i, n := range p.nodes {
		if _, ok := p.replaced[i]; !ok {
			continue
		}
		for l := n.StartLine; l <= n.EndLine && l <= len(lines); l++ {
			owner[l] = i + 1
		}
	}
	var b strings.Builder
	for l := 1; l <= len(lines); l++ {
		text := lines[l-1]
		if owner[l] == 0 {
			b.WriteString(text)
			continue
		}
		i := owner[l] - 1
		n := p.nodes[i]
		repl := p.replaced[i]
		if repl == "" { // ${ARCH} in COPY/ADD
			b.WriteString(archWord.ReplaceAllLiteralString(text, p.opts.Platform.Arch))
			continue
		}
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		b.WriteString("# hoist: " + text)
		if l == n.EndLine && repl != commentOut {
			b.WriteString(repl)
		}
	}
	return b.String()
}

// contextRoot is the build context, as given and with symlinks resolved.
type contextRoot struct{ abs, real string }

func contextDir(dir string) (contextRoot, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return contextRoot{}, fmt.Errorf("build context %s: %w", dir, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return contextRoot{}, fmt.Errorf("build context: %w", err)
	}
	if !info.IsDir() {
		return contextRoot{}, fmt.Errorf("build context %s is not a directory", dir)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return contextRoot{}, fmt.Errorf("build context %s: %w", dir, err)
	}
	return contextRoot{abs: abs, real: real}, nil
}

package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/opencontainers/go-digest"
	"github.com/openshift/imagebuilder/dockerfile/parser"
	"github.com/sirupsen/logrus"
	"go.podman.io/common/libimage"
	"go.podman.io/image/v5/docker"
	dockerref "go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"

	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/chartvalues"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/layout"
)

// cacheFormat names what a build makes of its inputs. Bump it whenever the
// same inputs would make a different image (the image format, the
// metadata, the registry layer, the Dockerfile a Kubefile turns into):
// entries of other formats are never reused. A variable, so that a test
// can play a newer hoist.
var cacheFormat = "1"

// The build cache. A build whose inputs all hash to a key seen before
// reuses the image that key made, without running buildah (no working
// container, no mount) and without collecting images again; any other
// build runs as before, on buildah's layer cache. The key holds:
//
//   - cacheFormat and Options.Version (hoist's own);
//   - per platform: the platform, the Dockerfile the Kubefile became (its
//     ARG references expanded by buildah from the build args, which are
//     in the key too), the planned metadata (apps, env, launch, kube
//     version, the base's metadata), the build args some ARG consumes,
//     and the images the stages start from, as resolved in the store (ID
//     and digest) and, with --pull always, the registry's digest for them;
//   - every file of the context directory but those its .containerignore
//     or .dockerignore excludes (path, type, mode bits, content; a link's
//     target), and the downloaded APP sources the same way;
//   - the options that change the result: --type, --target, --label,
//     --annotation, --values (and the files' content), --set,
//     --kube-version, --api-versions, --image-list (the files' content),
//     --exclude-image, --include-tests, --allow-missing, --tls-verify.
//
// The bundled images are resolved by their tags when they are collected;
// a cached rebuild keeps the digests the cached image bundled, as a base
// image in the store is kept, unless --pull always asks the registries
// again: then any tag that moved makes the build run.
//
// --no-cache skips the reuse, and records the image it makes under its
// key: the next build reuses the newest image.
//
// Some inputs cannot be known without running the build: a Dockerfile
// that copies from an image (COPY --from=IMAGE, RUN --mount=from=IMAGE),
// ADD of a URL or git repository, a stage base not in the store. Such a
// build has no key and always runs.

// cacheEntry is what a key made.
type cacheEntry struct {
	ID string `json:"id"` // the image, or the index
	// Images are the bundled images the build collected (not those the
	// base image holds), as --pull always checks them again.
	Images []cachedImage `json:"images,omitempty"`
}

type cachedImage struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// buildKey returns the cache key of a build, or "" when it has none (see
// above). Errors are not the build's: it meets them itself, if they
// matter, and reports them better.
func buildKey(ctx context.Context, store *clusterimage.Store, opts Options, plans []*kubefile.Plan) string {
	key, err := computeKey(ctx, store, opts, plans)
	if err != nil {
		logrus.Debugf("build cache: no key, the build runs: %v", err)
		return ""
	}
	return key
}

// errNoKey marks inputs the key cannot cover.
var errNoKey = errors.New("an input is only known by running the build")

func computeKey(ctx context.Context, store *clusterimage.Store, opts Options, plans []*kubefile.Plan) (string, error) {
	h := sha256.New()
	field := func(name string, values ...string) {
		// Quoted values and counts keep fields from running together.
		fmt.Fprintf(h, "%s %d", name, len(values))
		for _, v := range values {
			fmt.Fprintf(h, " %q", v)
		}
		h.Write([]byte{'\n'})
	}
	field("format", cacheFormat, opts.Version)
	field("type", string(opts.Type))
	field("target", opts.Target)
	field("labels", opts.Labels...)
	field("annotations", opts.Annotations...)
	field("set", opts.Set...)
	field("kube-version", opts.KubeVersion)
	field("api-versions", opts.APIVersions...)
	field("exclude-images", opts.ExcludeImages...)
	field("flags", strconv.FormatBool(opts.IncludeTests), strconv.FormatBool(opts.AllowMissing), strconv.FormatBool(opts.TLSNoVerify))
	for _, v := range opts.ValueFiles {
		app, file := chartvalues.SplitFile(v)
		field("values", app, file)
		if err := hashPath(h, file, nil); err != nil {
			return "", err
		}
	}
	for _, list := range opts.ImageLists {
		field("image-list", list)
		if err := hashPath(h, list, nil); err != nil {
			return "", err
		}
	}
	for _, plan := range plans {
		meta, err := plan.Metadata.Encode()
		if err != nil {
			return "", err
		}
		field("platform", plan.Platform.String())
		field("dockerfile", plan.Dockerfile)
		field("metadata", string(meta))
		field("build-args", sortedPairs(plan.BuildArgs)...)
		if err := checkSources(plan); err != nil {
			return "", err
		}
		for _, base := range plan.Bases {
			resolved, err := resolveBase(ctx, store, base, plan.Platform, opts.Pull)
			if err != nil {
				return "", fmt.Errorf("FROM %s: %w", base, err)
			}
			field("base", base, resolved)
		}
		names := make([]string, 0, len(plan.BuildContexts))
		for name := range plan.BuildContexts {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			field("build-context", name)
			if err := hashPath(h, plan.BuildContexts[name], nil); err != nil {
				return "", err
			}
		}
	}
	// Every platform builds from the same context.
	ignore, err := contextIgnore(plans[0].ContextDir)
	if err != nil {
		return "", err
	}
	field("context")
	if err := hashPath(h, plans[0].ContextDir, ignore); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// checkSources refuses a key to a Dockerfile that reads what the key
// cannot cover: an image named by --from (rather than a stage or a build
// context), a URL or git repository that ADD fetches.
func checkSources(plan *kubefile.Plan) error {
	res, err := parser.Parse(strings.NewReader(plan.Dockerfile))
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for name := range plan.BuildContexts {
		known[name] = true
	}
	stage := 0
	from := func(v string) error {
		if !known[strings.ToLower(v)] {
			return fmt.Errorf("%w: --from=%s", errNoKey, v)
		}
		return nil
	}
	for _, n := range res.AST.Children {
		switch n.Value {
		case "from":
			known[strconv.Itoa(stage)] = true
			stage++
			var args []string
			for a := n.Next; a != nil; a = a.Next {
				args = append(args, a.Value)
			}
			if len(args) == 3 {
				known[strings.ToLower(args[2])] = true
			}
		case "copy", "add":
			for _, f := range n.Flags {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					if err := from(v); err != nil {
						return err
					}
				}
			}
			if n.Value == "add" {
				for a := n.Next; a != nil; a = a.Next {
					if strings.Contains(a.Value, "://") || strings.HasPrefix(a.Value, "git@") {
						return fmt.Errorf("%w: ADD %s", errNoKey, a.Value)
					}
				}
			}
		case "run":
			for _, f := range n.Flags {
				mount, ok := strings.CutPrefix(f, "--mount=")
				if !ok {
					continue
				}
				for _, opt := range strings.Split(mount, ",") {
					if v, ok := strings.CutPrefix(opt, "from="); ok {
						if err := from(v); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	return nil
}

// resolveBase names the image a stage starts from as buildah will find
// it: the store's image for the platform and, when buildah pulls it again
// (--pull always), the registry's manifest digest.
func resolveBase(ctx context.Context, store *clusterimage.Store, base string, pl kubefile.Platform, pull PullPolicy) (string, error) {
	img, _, err := store.Runtime.LookupImage(base, &libimage.LookupImageOptions{OS: pl.OS, Architecture: pl.Arch, Variant: pl.Variant})
	if err != nil {
		// buildah pulls it: what it gets is not known yet.
		return "", fmt.Errorf("%w: not in the store", errNoKey)
	}
	resolved := img.ID() + " " + img.Digest().String()
	if pull == PullAlways {
		d, err := remoteDigest(ctx, store.SystemContext(), base)
		if err != nil {
			return "", fmt.Errorf("%w: asking its registry: %v", errNoKey, err)
		}
		resolved += " " + d.String()
	}
	return resolved, nil
}

// remoteDigest is the digest of the manifest (or index) a registry serves
// for ref now; a reference pinned by digest is its own answer.
func remoteDigest(ctx context.Context, sys *types.SystemContext, ref string) (digest.Digest, error) {
	named, err := dockerref.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	if canonical, ok := named.(dockerref.Canonical); ok {
		return canonical.Digest(), nil
	}
	src, err := docker.NewReference(dockerref.TagNameOnly(named))
	if err != nil {
		return "", err
	}
	is, err := src.NewImageSource(ctx, sys)
	if err != nil {
		return "", err
	}
	defer is.Close()
	raw, _, err := is.GetManifest(ctx, nil)
	if err != nil {
		return "", err
	}
	return manifest.Digest(raw)
}

// contextIgnore returns the matcher of the context's ignore file when
// skipping what it matches is exactly what buildah skips: patterns
// without exceptions ('!'), where a match excludes the path and all below
// it. With exceptions (or no file), nil: every file is hashed, which can
// only cost a cache miss.
func contextIgnore(dir string) (*patternmatcher.PatternMatcher, error) {
	for _, name := range []string{".containerignore", ".dockerignore"} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil || pm.Exclusions() {
			return nil, err
		}
		return pm, nil
	}
	return nil, nil
}

// hashPath writes a file or a tree to h: each entry's path, type and mode
// bits, a regular file's content, a link's target. What ignore matches is
// left out (but the ignore file itself is a file of the tree).
func hashPath(h hash.Hash, root string, ignore *patternmatcher.PatternMatcher) error {
	// A root that is a link is read through it, as buildah reads it: the
	// walk would otherwise hash the link alone.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if ignore != nil && rel != "." {
			//nolint:staticcheck // without exceptions, a match of the path or a parent is what excludes it
			if skip, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel)); err != nil {
				return err
			} else if skip {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %s", rel, info.Mode())
		switch {
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %d ", info.Size())
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %q", target)
		}
		h.Write([]byte{'\n'})
		return nil
	})
}

func cachePath(store *clusterimage.Store, key string) string {
	return filepath.Join(layout.Local{Root: store.Root}.BuildCache(), key+".json")
}

// reuse returns the image a key made, named with the build's tags, when
// it is still in the store and, with --pull always, every bundled image's
// tag still names what it bundled. Nil: the build runs.
func reuse(ctx context.Context, store *clusterimage.Store, opts Options, plans []*kubefile.Plan, key string) *Result {
	data, err := os.ReadFile(cachePath(store, key))
	if err != nil {
		return nil
	}
	var entry cacheEntry
	if err := json.Unmarshal(data, &entry); err != nil || entry.ID == "" {
		return nil
	}
	if _, err := store.Storage.Image(entry.ID); err != nil {
		logrus.Debugf("build cache: %s is gone from the store", entry.ID)
		return nil
	}
	if opts.Pull == PullAlways && !imagesUnmoved(ctx, store, opts, entry.Images) {
		return nil
	}
	for _, tag := range opts.Tags {
		if err := store.Tag(entry.ID, tag); err != nil {
			logrus.Debugf("build cache: tagging %s: %v", entry.ID, err)
			return nil
		}
	}
	if !opts.Quiet {
		fmt.Fprintf(opts.Out, "--> Using cache %s: nothing that goes into the build changed (--no-cache builds again)\n", entry.ID)
	}
	return &Result{ID: entry.ID, Plans: plans}
}

// imagesUnmoved asks the registries, as many at once as --jobs, whether
// each bundled image's reference still names the digest bundled.
func imagesUnmoved(ctx context.Context, store *clusterimage.Store, opts Options, images []cachedImage) bool {
	sys := store.SystemContext()
	if opts.TLSNoVerify {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	jobs := opts.Jobs
	if jobs < 1 {
		jobs = 4
	}
	var mu sync.Mutex
	moved := false
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for _, img := range images {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := remoteDigest(ctx, sys, img.Ref)
			if err != nil || d.String() != img.Digest {
				logrus.Debugf("build cache: %s now %s (%v), bundled %s", img.Ref, d, err, img.Digest)
				mu.Lock()
				moved = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return !moved
}

// remember records what key made: the final image (or index) id, built
// from plans whose per-platform images are ids. A build that bundled an
// image without its digest (--allow-missing) is not remembered: the next
// one tries to fetch it again.
func remember(ctx context.Context, store *clusterimage.Store, key string, plans []*kubefile.Plan, ids []string, id string) {
	if key == "" {
		return
	}
	if err := writeEntry(ctx, store, key, plans, ids, id); err != nil {
		logrus.Debugf("build cache: not recorded: %v", err)
	}
}

func writeEntry(ctx context.Context, store *clusterimage.Store, key string, plans []*kubefile.Plan, ids []string, id string) error {
	img, _, err := store.Runtime.LookupImage(ids[0], nil)
	if err != nil {
		return err
	}
	meta, err := clusterimage.MetadataOf(ctx, img)
	if err != nil {
		return err
	}
	entry := cacheEntry{ID: id}
	inParent := map[string]bool{}
	if parent := plans[0].Parent; parent != nil {
		for _, p := range parent.Images {
			inParent[p.Ref] = p.Digest != ""
		}
	}
	if meta != nil {
		for _, rec := range meta.Images {
			if rec.Digest == "" {
				return fmt.Errorf("%s was not bundled", rec.Ref)
			}
			if !inParent[rec.Ref] {
				entry.Images = append(entry.Images, cachedImage{Ref: rec.Ref, Digest: rec.Digest})
			}
		}
	}
	data, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	path := cachePath(store, key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// A whole entry or none: a reader never sees half of one.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

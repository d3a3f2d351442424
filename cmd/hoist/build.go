package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/build/discover"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
)

type buildOptions struct {
	file        string
	tags        []string
	buildArgs   []string
	contexts    []string // --build-context NAME=docker-image://REF
	labels      []string
	annotations []string
	target      string
	platforms   string
	imageType   string // a metadata.ImageType, as given: the build checks it
	noCache     bool
	pull        string // a build.PullPolicy, as given: the build checks it
	quiet       bool
	dryRun      bool
	format      string

	valueFiles    []string
	set           []string
	kubeVersion   string
	apiVersions   []string
	imageLists    []string
	excludeImages []string
	jobs          int
	allowMissing  bool
	includeTests  bool
	tlsVerify     bool
	progress      io.Writer
}

func newBuildCommand(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [CONTEXT]",
		Short: "Build a cluster or app image from a Kubefile",
		Long: `Build a cluster or app image from a Kubefile.

CONTEXT is the build context directory (default: the current directory). The
Kubefile is CONTEXT/Kubefile unless -f names another. The build runs through
buildah into the image store under --root; RUN steps run with runc. With
--dry-run, hoist only parses and plans the build and prints the Dockerfile
buildah would run and the image metadata, with the images the Kubefile's
apps need (found from their sources; the build also reads what COPY, ADD
and RUN put under charts/ and manifests/, and collects digests).

Charts are rendered for --kube-version, else the io.hoist.kubernetes.version
label of the base image, else the highest version KUBEVERSION allows, else
the newest version hoist's Kubernetes base image ships; the version is
recorded in the metadata (renderKubeVersion).

A rebuild in which nothing that goes into the build changed (the Kubefile,
the context's files, build args, flags, base images, hoist's version)
reuses the image without running buildah; --pull always also asks the
registries whether a bundled image's tag moved; --no-cache builds again.
See docs/kubefile.md (Rebuilds and the build cache).`,
		Example: `  hoist build -t acme/platform:v1 -f Kubefile.example examples/platform
  hoist build --platform linux/amd64,linux/arm64 -t acme/platform:v1 .
  hoist build --build-context docker.io/sealerio/kubernetes:v1.22.15=docker-image://hoist.dev/kubernetes:v1.37.2 -t acme/app:v1 .
  hoist build --dry-run --format json -f Kubefile.example examples/platform`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			contextDir := "."
			if len(args) == 1 {
				contextDir = args[0]
			}
			o.progress = progressTo(cmd, o.quiet)
			o.imageType = imageType(o.imageType)
			return runBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, o, contextDir)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "Kubefile to build (default CONTEXT/Kubefile)")
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (KEY alone takes it from the environment)")
	f.StringArrayVar(&o.contexts, "build-context", nil, "build FROM NAME on another image: NAME=docker-image://REF (repeatable), as buildah and docker buildx do")
	f.StringArrayVar(&o.labels, "label", nil, "add a config label KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.annotations, "annotation", nil, "add a manifest annotation KEY=VALUE (repeatable)")
	f.StringVar(&o.target, "target", "", "build up to this stage of a multi-stage Kubefile")
	f.StringVar(&o.platforms, "platform", "", "target platform os/arch[/variant] (default: this machine's); comma-separated for an index of several")
	f.StringVar(&o.imageType, "type", string(metadata.TypeCluster), "image type: cluster (brings a cluster up) or app (installs into an existing one); sealer's kube-installer and app-installer are these two")
	f.BoolVar(&o.noCache, "no-cache", false, "build again: do not reuse the image of unchanged inputs, nor cached layers")
	f.StringVar(&o.pull, "pull", string(build.PullMissing), "pull base images: missing, always or never")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the image ID")
	f.BoolVar(&o.dryRun, "dry-run", false, "parse and plan only; print the Dockerfile and the metadata")
	f.StringVar(&o.format, "format", "", "with --dry-run: json, or a Go template")
	f.StringArrayVar(&o.valueFiles, "values", nil, "Helm values FILE for every chart, or APP=FILE for app APP's, when finding images (repeatable)")
	f.StringArrayVar(&o.set, "set", nil, "Helm value k=v for every chart, or APP:k=v for app APP's, when finding images (repeatable)")
	f.StringVar(&o.kubeVersion, "kube-version", "", "Kubernetes version charts are rendered for (default: the base image's io.hoist.kubernetes.version, else the highest KUBEVERSION allows, else "+discover.NewestKubeVersion+")")
	f.StringSliceVar(&o.apiVersions, "api-versions", nil, "Kubernetes API versions charts see besides Helm's defaults, such as monitoring.coreos.com/v1 (repeatable, or comma-separated)")
	f.StringArrayVar(&o.imageLists, "image-list", nil, "file of extra images to bundle, one a line (repeatable)")
	f.StringArrayVar(&o.excludeImages, "exclude-image", nil, "image not to bundle: a reference, or a prefix ending in / or * (repeatable)")
	f.IntVar(&o.jobs, "jobs", 4, "images pulled in parallel")
	f.BoolVar(&o.includeTests, "include-tests", false, "bundle the images of charts' Helm test hooks (helm.sh/hook: test) too")
	f.BoolVar(&o.allowMissing, "allow-missing", false, "build even when an image cannot be bundled (recorded without digest, with a warning)")
	f.BoolVar(&o.tlsVerify, "tls-verify", true, "require HTTPS and verified certificates from registries (false for registries on loopback)")
	return cmd
}

func runBuild(ctx context.Context, stdout, stderr io.Writer, g *globalOptions, o *buildOptions, contextDir string) error {
	for _, t := range o.tags {
		if _, err := reference.ParseNormalizedNamed(t); err != nil {
			return fmt.Errorf("invalid tag %q: %w", t, err)
		}
	}
	args, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
	}
	contexts, err := kubefile.ParseBuildContexts(o.contexts)
	if err != nil {
		return err
	}
	for _, kv := range append(append([]string{}, o.labels...), o.annotations...) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("label or annotation %q: want KEY=VALUE", kv)
		}
	}
	platforms := []kubefile.Platform{kubefile.HostPlatform()}
	if o.platforms != "" {
		platforms = nil
		for _, s := range strings.Split(o.platforms, ",") {
			pl, err := kubefile.ParsePlatform(strings.TrimSpace(s))
			if err != nil {
				return err
			}
			platforms = append(platforms, pl)
		}
	}
	if len(platforms) > 1 && len(o.tags) == 0 && !o.dryRun {
		return errors.New("a build for several platforms makes an index, which needs a name: add -t NAME")
	}
	file := o.file
	if file == "" {
		file = filepath.Join(contextDir, "Kubefile")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no Kubefile in %s: name one with -f", contextDir)
		}
	}
	if o.format != "" && !o.dryRun {
		return errors.New("--format applies to --dry-run only")
	}
	if o.kubeVersion != "" {
		if _, err := discover.ParseKubeVersion(o.kubeVersion); err != nil {
			return fmt.Errorf("--kube-version: %w", err)
		}
	}
	if err := discover.CheckAPIVersions(o.apiVersions); err != nil {
		return fmt.Errorf("--api-versions: %w", err)
	}
	opts := build.Options{
		ContextDir:    contextDir,
		File:          file,
		Tags:          o.tags,
		BuildArgs:     args,
		BuildContexts: contexts,
		Labels:        o.labels,
		Annotations:   o.annotations,
		Target:        o.target,
		Type:          metadata.ImageType(o.imageType),
		Platforms:     platforms,
		NoCache:       o.noCache,
		Pull:          build.PullPolicy(o.pull),
		Quiet:         o.quiet,
		CacheDir:      layout.Local{Root: g.root}.Downloads(),
		Version:       currentVersion().Version + " " + currentVersion().GitCommit,
		Out:           stdout,
		ValueFiles:    o.valueFiles,
		Set:           o.set,
		KubeVersion:   o.kubeVersion,
		APIVersions:   o.apiVersions,
		ImageLists:    o.imageLists,
		ExcludeImages: o.excludeImages,
		Jobs:          o.jobs,
		AllowMissing:  o.allowMissing,
		IncludeTests:  o.includeTests,
		TLSNoVerify:   !o.tlsVerify,
		Progress:      o.progress,
		Err:           stderr,
		// buildah's steps on stdout are the build's progress; of the
		// build's own events, only warnings and waits are for the user.
		Reporter: progress.NewNotices(stderr),
	}
	defer opts.Reporter.Close()
	if !o.dryRun {
		store, err := g.openStore()
		if err != nil {
			return err
		}
		defer store.Close()
		res, err := build.Build(ctx, store, opts)
		if err != nil {
			return err
		}
		if !o.quiet {
			for _, tag := range o.tags {
				fmt.Fprintf(stdout, "Successfully tagged %s\n", tag)
			}
		}
		fmt.Fprintln(stdout, res.ID)
		return nil
	}
	return dryRun(ctx, stdout, g, o, opts)
}

// dryRun plans without building. The store is only read, to inherit a
// hoist base image's metadata, and only when it already exists.
func dryRun(ctx context.Context, stdout io.Writer, g *globalOptions, o *buildOptions, opts build.Options) error {
	store, err := g.openExistingStore()
	if err != nil {
		return err
	}
	if store != nil {
		defer store.Close()
	}
	previews, err := build.DryRun(ctx, store, opts)
	if err != nil {
		return err
	}
	if o.format != "" {
		if len(previews) == 1 {
			return writeFormatted(stdout, o.format, previews[0])
		}
		if o.format == "json" {
			return writeFormatted(stdout, o.format, previews)
		}
		for _, p := range previews {
			if err := writeFormatted(stdout, o.format, p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range previews {
		if err := printPlan(stdout, p); err != nil {
			return err
		}
	}
	return nil
}

func printPlan(w io.Writer, out build.Preview) error {
	fmt.Fprintf(w, "# Dockerfile (%s)\n%s", out.Platform, out.Dockerfile)
	if !strings.HasSuffix(out.Dockerfile, "\n") {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n# Metadata (%s)\n", metadata.Annotation)
	if err := writeFormatted(w, "json", out.Metadata); err != nil {
		return err
	}
	if len(out.AppFiles) > 0 {
		fmt.Fprintln(w, "\n# App files")
		names := make([]string, 0, len(out.AppFiles))
		for name := range out.AppFiles {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			for _, f := range out.AppFiles[name] {
				fmt.Fprintf(w, "%s\t%s\n", name, f)
			}
		}
	}
	if len(out.Images) > 0 {
		fmt.Fprintln(w, "\n# Requested images (IMAGE)")
		for _, img := range out.Images {
			fmt.Fprintln(w, img)
		}
	}
	return nil
}

// parseBuildArgs reads --build-arg values as docker does: KEY=VALUE, or KEY
// alone to take the value from the environment (skipped when unset).
func parseBuildArgs(list []string) (map[string]string, error) {
	args := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want KEY=VALUE", a)
		}
		if !ok {
			env, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = env
		}
		args[k] = v
	}
	return args, nil
}

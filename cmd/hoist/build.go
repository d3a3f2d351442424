package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

type buildOptions struct {
	file      string
	tags      []string
	buildArgs []string
	platforms string
	imageType string
	dryRun    bool
	format    string
}

func newBuildCommand(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [CONTEXT]",
		Short: "Build a cluster or app image from a Kubefile",
		Long: `Build a cluster or app image from a Kubefile.

CONTEXT is the build context directory (default: the current directory). The
Kubefile is CONTEXT/Kubefile unless -f names another. With --dry-run, hoist
parses and plans the build and prints the Dockerfile buildah will run and the
image metadata, without building anything.`,
		Example: `  hoist build --dry-run -f Kubefile.example examples/platform
  hoist build --dry-run --format json -t acme/platform:v1 .`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			contextDir := "."
			if len(args) == 1 {
				contextDir = args[0]
			}
			return runBuild(cmd.OutOrStdout(), cmd.ErrOrStderr(), g, o, contextDir)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "Kubefile to build (default CONTEXT/Kubefile)")
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (KEY alone takes it from the environment)")
	f.StringVar(&o.platforms, "platform", "", "target platform os/arch[/variant] (default: this machine's); comma-separated for several")
	f.StringVar(&o.imageType, "type", metadata.TypeCluster, "image type: cluster (brings a cluster up) or app (installs into an existing one)")
	f.BoolVar(&o.dryRun, "dry-run", false, "parse and plan only; print the Dockerfile and the metadata")
	f.StringVar(&o.format, "format", "", "with --dry-run: json, or a Go template")
	return cmd
}

// dryRunOutput is what `build --dry-run --format json` prints, per platform.
type dryRunOutput struct {
	Platform   string              `json:"platform"`
	Dockerfile string              `json:"dockerfile"`
	Metadata   *metadata.Metadata  `json:"metadata"`
	AppFiles   map[string][]string `json:"appFiles"`
	BuildArgs  map[string]string   `json:"buildArgs"`
	Images     []string            `json:"requestedImages"`
}

func runBuild(stdout, stderr io.Writer, g *globalOptions, o *buildOptions, contextDir string) error {
	for _, t := range o.tags {
		if _, err := reference.ParseNormalizedNamed(t); err != nil {
			return fmt.Errorf("invalid tag %q: %w", t, err)
		}
	}
	args, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
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

	var plans []*kubefile.Plan
	for _, pl := range platforms {
		plan, err := kubefile.ParseFile(file, kubefile.Options{
			ContextDir: contextDir,
			BuildArgs:  args,
			Platform:   pl,
			Type:       o.imageType,
			CacheDir:   filepath.Join(g.root, "cache", "downloads"),
		})
		if err != nil {
			return err
		}
		plans = append(plans, plan)
	}
	// Warnings are the same for every platform; print them once.
	for _, w := range plans[0].Warnings {
		fmt.Fprintln(stderr, w)
	}
	if !o.dryRun {
		return errors.New("building images is not implemented yet: use --dry-run to see the plan")
	}

	outputs := make([]dryRunOutput, len(plans))
	for i, plan := range plans {
		images := []string{}
		for _, img := range plan.Images {
			images = append(images, img.Ref)
		}
		outputs[i] = dryRunOutput{
			Platform:   plan.Platform.String(),
			Dockerfile: plan.Dockerfile,
			Metadata:   plan.Metadata,
			AppFiles:   plan.AppFiles,
			BuildArgs:  plan.BuildArgs,
			Images:     images,
		}
	}
	if o.format != "" {
		if len(outputs) == 1 {
			return writeFormatted(stdout, o.format, outputs[0])
		}
		if o.format == "json" {
			return writeFormatted(stdout, o.format, outputs)
		}
		for _, out := range outputs {
			if err := writeFormatted(stdout, o.format, out); err != nil {
				return err
			}
		}
		return nil
	}
	for _, out := range outputs {
		if err := printPlan(stdout, out); err != nil {
			return err
		}
	}
	return nil
}

func printPlan(w io.Writer, out dryRunOutput) error {
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

package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/build/discover"
)

// newFindImagesCommand needs no store: it only reads files.
func newFindImagesCommand(_ *globalOptions) *cobra.Command {
	var opts discover.Options
	var format string
	cmd := &cobra.Command{
		Use:   "find-images PATH...",
		Short: "List the container images that charts, manifests and image lists need",
		Long: `List the container images that the Helm charts, Kubernetes manifests and
image lists under each PATH need, and where each was found: what a cluster
image built from them must bundle.

Charts (a directory with Chart.yaml, or a .tgz archive) are rendered offline
as "helm template" does, for Kubernetes --kube-version (default: the newest
version hoist's Kubernetes base image ships), with their default values, then
--values files, then --set values (APP=FILE and APP:K=V apply to the charts
named APP only); their image annotations (helm.sh/images, artifacthub.io/images,
Bitnami's images) are read too, and their Helm test hooks are left out unless
--include-tests. *.yaml, *.yml and *.json files are read as Kubernetes objects,
and files named imageList as one image a line. References are normalised
(nginx is docker.io/library/nginx:latest).

In objects, images are read from containers (kind pod), image fields under a
custom resource's spec (custom-resource), and operators' flags such as
--config-reloader-image=IMAGE and RELATED_IMAGE_* variables (argument).
References seen anywhere else, or without a tag where an operator may add
one, are not bundled: stderr warns of them.`,
		Example: `  hoist find-images examples/platform
  hoist find-images charts/web --values prod.yaml --set image.tag=1.27.3
  hoist find-images . --exclude-image 'registry.k8s.io/' --format json
  hoist find-images . --format '{{.Ref}}'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.KubeVersion != "" {
				v, err := discover.ParseKubeVersion(opts.KubeVersion)
				if err != nil {
					return fmt.Errorf("--kube-version: %w", err)
				}
				opts.KubeVersion = v
			}
			if err := discover.CheckAPIVersions(opts.APIVersions); err != nil {
				return fmt.Errorf("--api-versions: %w", err)
			}
			opts.Warn = func(message string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+message) }
			found, err := discover.Search(args, opts)
			if err != nil {
				// Helm reports some errors (schema validation) on several
				// lines; hoist's errors are one.
				if msg := strings.TrimSpace(err.Error()); strings.Contains(msg, "\n") {
					return errors.New(strings.ReplaceAll(msg, "\n", " "))
				}
				return err
			}
			// What is not bundled (possible references, test hooks' images)
			// is a warning on stderr in every format: stdout stays the list
			// of images to bundle, in the shape scripts read.
			for _, m := range found.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+m)
			}
			images := found.Images
			w := cmd.OutOrStdout()
			switch format {
			case "":
			case "json":
				return writeFormatted(w, format, images)
			default:
				for _, img := range images {
					if err := writeFormatted(w, format, img); err != nil {
						return err
					}
				}
				return nil
			}
			// On stderr: the table stays what it was for scripts.
			rendered := opts.KubeVersion
			if rendered == "" {
				rendered = discover.NewestKubeVersion
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "charts rendered for Kubernetes %s\n", rendered)
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tFOUND IN")
			for _, img := range images {
				fmt.Fprintf(tw, "%s\t%s\n", img.Ref, strings.Join(img.FoundIn, ", "))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.ValueFiles, "values", nil, "Helm values FILE applied to every chart, or APP=FILE to the charts named APP (repeatable, in order)")
	f.StringArrayVar(&opts.Set, "set", nil, "Helm value KEY=VALUE applied to every chart, or APP:KEY=VALUE to the charts named APP, after --values (repeatable)")
	f.StringVar(&opts.KubeVersion, "kube-version", "", "Kubernetes version charts are rendered for (default "+discover.NewestKubeVersion+")")
	f.StringSliceVar(&opts.APIVersions, "api-versions", nil, "Kubernetes API versions charts see besides Helm's defaults, such as monitoring.coreos.com/v1 (repeatable, or comma-separated)")
	f.StringArrayVar(&opts.ImageLists, "image-list", nil, "file listing more images, one a line, # comments (repeatable)")
	f.BoolVar(&opts.IncludeTests, "include-tests", false, "bundle the images of Helm test hooks (helm.sh/hook: test) too; by default they are listed as not bundled")
	f.StringArrayVar(&opts.Exclude, "exclude-image", nil, "drop images matching PATTERN: a glob on the normalised reference, or a prefix ending in / or * (repeatable)")
	f.StringVar(&format, "format", "", "json, or a Go template applied to each image ({{.Ref}}, {{.FoundIn}}, {{.Kinds}}, {{.Sources}})")
	return cmd
}

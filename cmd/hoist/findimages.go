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
as "helm template" does, with their default values, then --values files, then
--set values; their helm.sh/images annotation is read too. *.yaml, *.yml and
*.json files are read as Kubernetes objects, and files named imageList as one
image a line. References are normalised (nginx is docker.io/library/nginx:latest).`,
		Example: `  hoist find-images examples/platform
  hoist find-images charts/web --values prod.yaml --set image.tag=1.27.3
  hoist find-images . --exclude-image 'registry.k8s.io/' --format json
  hoist find-images . --format '{{.Ref}}'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			images, err := discover.Find(args, opts)
			if err != nil {
				// Helm reports some errors (schema validation) on several
				// lines; hoist's errors are one.
				if msg := strings.TrimSpace(err.Error()); strings.Contains(msg, "\n") {
					return errors.New(strings.ReplaceAll(msg, "\n", " "))
				}
				return err
			}
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
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tFOUND IN")
			for _, img := range images {
				fmt.Fprintf(tw, "%s\t%s\n", img.Ref, strings.Join(img.FoundIn, ", "))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.ValueFiles, "values", nil, "Helm values file applied to every chart (repeatable, in order)")
	f.StringArrayVar(&opts.Set, "set", nil, "Helm value KEY=VALUE applied to every chart, after --values (repeatable)")
	f.StringArrayVar(&opts.ImageLists, "image-list", nil, "file listing more images, one a line, # comments (repeatable)")
	f.StringArrayVar(&opts.Exclude, "exclude-image", nil, "drop images matching PATTERN: a glob on the normalised reference, or a prefix ending in / or * (repeatable)")
	f.StringVar(&format, "format", "", "json, or a Go template applied to each image ({{.Ref}}, {{.FoundIn}})")
	return cmd
}

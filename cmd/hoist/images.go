package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.podman.io/common/pkg/auth"
	"go.podman.io/image/v5/types"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/archive"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// progressTo returns where progress bars go: stderr when it is a terminal
// and -q is not given, else nowhere.
func progressTo(cmd *cobra.Command, quiet bool) io.Writer {
	if quiet {
		return nil
	}
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

func newImagesCommand(g *globalOptions) *cobra.Command {
	var quiet, all, jsonFlag bool
	var format string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the images in the local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := oneSpelling(cmd, "format", "json"); err != nil {
				return err
			}
			if jsonFlag {
				format = "json"
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			list, err := store.List(cmd.Context(), all)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case quiet:
				seen := map[string]bool{}
				for _, img := range list {
					if !seen[img.ID] {
						seen[img.ID] = true
						fmt.Fprintln(w, shortID(img.ID))
					}
				}
				return nil
			case format != "":
				if format == "json" {
					if list == nil {
						list = []clusterimage.Summary{}
					}
					return writeFormatted(w, format, list)
				}
				for _, img := range list {
					if err := writeFormatted(w, format, img); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tTYPE\tCREATED\tSIZE")
			for _, img := range list {
				typ := img.Type
				if img.Index {
					typ += " (index)"
				}
				if typ == "" {
					typ = "-"
				}
				names := img.Names
				if len(names) == 0 {
					names = []string{"<none>:<none>"}
				}
				for _, name := range names {
					repo, tag := splitName(name)
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", repo, tag, shortID(img.ID), strings.TrimSpace(typ), ago(img.Created), humanSize(img.Size))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only image IDs")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list unnamed images (the layer cache of builds)")
	cmd.Flags().StringVar(&format, "format", "", "json (sealer's --json works too), or a Go template per image")
	cmd.Flags().BoolVar(&jsonFlag, "json", false, "sealer's spelling of --format json")
	cmd.Flags().MarkHidden("json")
	return cmd
}

func newInspectCommand(g *globalOptions) *cobra.Command {
	var format string
	var images bool
	cmd := &cobra.Command{
		Use:   "inspect NAME [NAME...]",
		Short: "Show an image's details and its hoist metadata",
		Long: `Show an image's details as JSON: id, digest, names, platforms, size,
created, labels, annotations, and the decoded hoist metadata under "metadata"
(null for images not built by hoist). An index shows its platforms and the
metadata of its first image.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			var all []*clusterimage.Details
			for _, name := range args {
				d, err := store.Inspect(cmd.Context(), name)
				if err != nil {
					return err
				}
				all = append(all, d)
			}
			if images {
				return printImages(cmd.OutOrStdout(), format, all)
			}
			if format == "" || format == "json" {
				return writeFormatted(cmd.OutOrStdout(), "json", all)
			}
			for _, d := range all {
				if err := writeFormatted(cmd.OutOrStdout(), format, d); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "json (the default), or a Go template such as '{{.Metadata.Type}}'")
	cmd.Flags().BoolVar(&images, "images", false, "list the bundled container images: a table, or JSON with --format json")
	return cmd
}

// printImages lists the container images bundled in hoist images.
func printImages(w io.Writer, format string, all []*clusterimage.Details) error {
	list := []metadata.Image{}
	for _, d := range all {
		if d.Metadata != nil {
			list = append(list, d.Metadata.Images...)
		}
	}
	if format != "" {
		return writeFormatted(w, format, list)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tPLATFORM\tFOUND IN")
	for _, img := range list {
		d := img.Digest
		if d == "" {
			d = "(not bundled)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img.Ref, d, img.Platform, img.FoundIn)
	}
	return tw.Flush()
}

func newTagCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "tag IMAGE NAME [NAME...]",
		Short: "Add names to an image",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			for _, name := range args[1:] {
				if err := store.Tag(args[0], name); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newRmiCommand(g *globalOptions) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "rmi NAME [NAME...]",
		Short: "Remove image names; an image goes with its last name",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return errors.New("--all and image names cannot be given together")
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			reports, err := store.Remove(cmd.Context(), args, all, force)
			for _, r := range reports {
				for _, name := range r.Untagged {
					fmt.Fprintf(cmd.OutOrStdout(), "Untagged: %s\n", name)
				}
				if r.Removed {
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", r.ID)
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove images even when in use")
	return cmd
}

func newSaveCommand(g *globalOptions) *cobra.Command {
	var output, format, compress, splitSize, since string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "save NAME -o FILE",
		Short: "Write an image to an archive file",
		Long: `Write an image to an archive file. The default format is oci-archive, which
keeps the hoist metadata annotation and holds an index of several platforms
whole; docker-archive is what "docker load" reads.

An oci-archive's layers are compressed with zstd by default (--compress gzip
for readers without zstd, none to keep the image's manifest digest); the
image ID, config and metadata stay the same whatever the compression.
--split-size cuts the archive into FILE.000, FILE.001, ... and FILE.json,
which lists each part's sha256; "hoist load -i FILE.000" reads them all.
--since OLD leaves out the layers OLD has: "hoist load" of such an archive
needs OLD in the store.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return errors.New("name the archive with -o FILE")
			}
			opts := clusterimage.SaveOptions{Format: format, Compress: compress, Since: since}
			if splitSize != "" {
				size, err := archive.ParseSize(splitSize)
				if err != nil {
					return fmt.Errorf("--split-size: %w", err)
				}
				opts.SplitSize = size
			}
			// zstd is the default of an oci-archive only: the flag's
			// default is left to SaveArchive.
			if !cmd.Flags().Changed("compress") {
				opts.Compress = ""
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			opts.Copy = clusterimage.CopyOptions{Progress: progressTo(cmd, quiet), TLSVerify: true}
			return store.SaveArchive(cmd.Context(), args[0], output, opts)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "archive file to write")
	cmd.Flags().StringVar(&format, "format", clusterimage.FormatOCIArchive, "oci-archive or docker-archive")
	cmd.Flags().StringVar(&compress, "compress", clusterimage.CompressZstd, "layer compression of an oci-archive: zstd, gzip or none")
	cmd.Flags().StringVar(&splitSize, "split-size", "", "cut the archive into parts of at most this size (bytes, or 4G, 500M, ...), with a manifest FILE.json")
	cmd.Flags().StringVar(&since, "since", "", "leave out the layers this image has (a differential archive; load needs it in the store)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

func newLoadCommand(g *globalOptions) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Read images from an archive (oci-archive, docker-archive, docker save)",
		Long: `Read images from an archive: an oci-archive (layers uncompressed, gzip or
zstd), a docker-archive or docker save tar, an OCI layout directory, or a
split archive (-i FILE.000 or FILE.json: every part is checked against its
sha256 first). A differential archive (save --since) needs its base image
in the store. A refused archive changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return errors.New("name the archive with -i FILE")
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			names, err := store.Load(cmd.Context(), input, clusterimage.CopyOptions{Progress: progressTo(cmd, quiet), TLSVerify: true})
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "Loaded image: %s\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive file to read")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

func newPushCommand(g *globalOptions) *cobra.Command {
	var tlsVerify, skipVerify, quiet bool
	cmd := &cobra.Command{
		Use:   "push NAME [DESTINATION]",
		Short: "Copy an image (or a whole index) to a registry",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := skipTLSVerify(cmd, skipVerify, &tlsVerify); err != nil {
				return err
			}
			dest := ""
			if len(args) == 2 {
				dest = args[1]
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			return store.Push(cmd.Context(), args[0], dest, clusterimage.CopyOptions{Progress: progressTo(cmd, quiet), TLSVerify: tlsVerify})
		},
	}
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (false for registries on loopback; sealer's --skip-tls-verify is --tls-verify=false)")
	addSkipTLSVerify(cmd, &skipVerify)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

func newPullCommand(g *globalOptions) *cobra.Command {
	var tlsVerify, quiet bool
	var platform string
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "Copy an image from a registry (an index whole, unless --platform)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			id, err := store.Pull(cmd.Context(), args[0], platform, clusterimage.CopyOptions{Progress: progressTo(cmd, quiet), TLSVerify: tlsVerify})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (false for registries on loopback)")
	cmd.Flags().StringVar(&platform, "platform", "", "pull only this platform's image, os/arch[/variant]")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

func newLoginCommand(g *globalOptions) *cobra.Command {
	var username, password string
	var passwordStdin, tlsVerify bool
	cmd := &cobra.Command{
		Use:   "login REGISTRY",
		Short: "Store credentials for a registry in hoist's auth file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if password != "" && passwordStdin {
				return errors.New("--password and --password-stdin cannot be given together")
			}
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			sys := store.SystemContext()
			if !tlsVerify {
				sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
			}
			var stdin io.Reader = bufio.NewReader(cmd.InOrStdin())
			return auth.Login(cmd.Context(), sys, &auth.LoginOptions{
				AuthFile:      store.AuthFile(),
				Username:      username,
				Password:      password,
				StdinPassword: passwordStdin,
				Stdin:         stdin,
				Stdout:        cmd.OutOrStdout(),
			}, args)
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer --password-stdin: arguments are visible to other users)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates")
	return cmd
}

func newLogoutCommand(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "logout [REGISTRY]",
		Short: "Remove stored credentials for a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			return auth.Logout(store.SystemContext(), &auth.LogoutOptions{
				AuthFile: store.AuthFile(),
				All:      all,
				Stdout:   cmd.OutOrStdout(),
			}, args)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove the credentials of every registry")
	return cmd
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// splitName splits a stored name into repository and tag, as podman shows it.
func splitName(name string) (string, string) {
	if i := strings.LastIndex(name, "@"); i >= 0 {
		return name[:i], "<none>"
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i], name[i+1:]
	}
	return name, "<none>"
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func humanSize(n int64) string {
	const unit = 1000 // podman shows decimal sizes
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.3g %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

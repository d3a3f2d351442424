package main

import (
	"github.com/spf13/cobra"
)

// globalOptions are the flags every command has.
type globalOptions struct {
	root string
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	cmd := &cobra.Command{
		Use:   "hoist",
		Short: "Pack a Kubernetes cluster or app into one OCI image and install it over SSH, offline",
		Long: `hoist builds cluster images from a Kubefile (a Dockerfile plus cluster
instructions, compatible with sealer) and installs them on machines over SSH,
fully offline.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&g.root, "root", "/var/lib/hoist", "directory of the image store, caches and state")
	cmd.AddCommand(
		newVersionCommand(),
		newBuildCommand(g),
	)
	return cmd
}

package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/apply"
	"github.com/hoistdev/hoist/apply/unpack"
)

// newNodeCommand is what hoist runs on the nodes, through the copy of
// itself it installs there: not for users, so hidden.
func newNodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "node",
		Short:  "Commands hoist runs on the nodes",
		Hidden: true,
	}
	var dest, digest string
	unpackCmd := &cobra.Command{
		Use:   "unpack --dest DIR --digest DIGEST",
		Short: "Unpack a zstd tar from stdin into DIR, atomically",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dest == "" || digest == "" {
				return errors.New("--dest and --digest are required")
			}
			return unpack.Unpack(cmd.InOrStdin(), dest, digest)
		},
	}
	unpackCmd.Flags().StringVar(&dest, "dest", "", "directory to fill")
	unpackCmd.Flags().StringVar(&digest, "digest", "", "digest of the content, recorded in the tree")
	digestCmd := &cobra.Command{
		Use:   "digest FILE",
		Short: "Print the sha256 of a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			digest, err := apply.FileDigest(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), digest)
			return nil
		},
	}
	cmd.AddCommand(unpackCmd, digestCmd)
	return cmd
}

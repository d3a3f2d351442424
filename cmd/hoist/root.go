package main

import (
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/layout"
)

// globalOptions are the flags every command has.
type globalOptions struct {
	root          string
	storageDriver string
	debug         bool
	// process: this is the hoist process (main), not a test running
	// commands in its own process, whose environment must stay its own.
	process bool
}

// openStore opens the image store under --root. In the hoist process, the
// temporary files of buildah and of the programs hoist starts go to the
// store's tmp/ from then on: buildah reads only TMPDIR (else /var/tmp), and
// everything hoist writes belongs under --root.
func (g *globalOptions) openStore() (*clusterimage.Store, error) {
	store, err := clusterimage.Open(g.root, clusterimage.OpenOptions{Driver: g.storageDriver})
	if err == nil && g.process {
		os.Setenv("TMPDIR", store.TmpDir())
	}
	return store, err
}

// openExistingStore opens the image store under --root if there is one
// (nil if not): a command that only reads must not create a store.
func (g *globalOptions) openExistingStore() (*clusterimage.Store, error) {
	if _, err := os.Stat(layout.Local{Root: g.root}.StorageDriver()); err != nil {
		return nil, nil
	}
	return g.openStore()
}

func newRootCommand() *cobra.Command { return newRoot(&globalOptions{}) }

func newRoot(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hoist",
		Short: "Pack a Kubernetes cluster or app into one OCI image and install it over SSH, offline",
		Long: `hoist builds cluster images from a Kubefile (a Dockerfile plus cluster
instructions, compatible with sealer) and installs them on machines over SSH,
fully offline.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			// The libraries log what hoist reports as its own one-line
			// error; their log is for --debug.
			logrus.SetLevel(logrus.FatalLevel)
			if g.debug {
				logrus.SetLevel(logrus.DebugLevel)
			}
		},
	}
	cmd.PersistentFlags().StringVar(&g.root, "root", "/var/lib/hoist", "directory of the image store, caches and state")
	cmd.PersistentFlags().BoolVar(&g.debug, "debug", false, "log what the build and image libraries do")
	cmd.PersistentFlags().StringVar(&g.storageDriver, "storage-driver", "", "storage driver of a new image store: overlay or vfs (default: overlay where the kernel allows it)")
	cmd.AddCommand(
		newVersionCommand(),
		newBuildCommand(g),
		newImagesCommand(g),
		newInspectCommand(g),
		newTagCommand(g),
		newRmiCommand(g),
		newSaveCommand(g),
		newLoadCommand(g),
		newPushCommand(g),
		newPullCommand(g),
		newLoginCommand(g),
		newLogoutCommand(g),
		newRegistryCommand(),
		newFindImagesCommand(g),
		newNodeCommand(),
		newApplyCommand(g),
		newRunCommand(g),
		newStatusCommand(g),
		newKubeconfigCommand(g),
		newCertsCommand(g),
		newDeleteCommand(g),
		newBackupCommand(g),
		newRestoreCommand(g),
	)
	return cmd
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// sealer's spellings of hoist's flags are accepted, so that sealer users'
// commands and scripts work unchanged (sealer is archived; hoist is its
// successor). Each is a hidden flag: the usage of hoist's own flag names it
// once, so that help stays one flag per meaning and a sealer user still
// finds it.

// addFileFlag adds -f/--file, a Clusterfile, and sealer's --Clusterfile
// (its -f) to the same variable.
func addFileFlag(cmd *cobra.Command, file *string, value, usage string) {
	fl := cmd.Flags()
	fl.StringVarP(file, "file", "f", value, usage+" (sealer's --Clusterfile works too)")
	fl.StringVar(file, "Clusterfile", value, usage)
	fl.MarkHidden("Clusterfile")
}

// oneSpelling refuses a flag given in both hoist's spelling and sealer's:
// for an inverted flag (--tls-verify, --skip-tls-verify) they could
// disagree, and for the others one of the two would be silently dropped.
func oneSpelling(cmd *cobra.Command, name, sealer string) error {
	if cmd.Flags().Changed(name) && cmd.Flags().Changed(sealer) {
		return fmt.Errorf("--%s and --%s (sealer's spelling) cannot be given together", name, sealer)
	}
	return nil
}

// addSkipTLSVerify adds sealer's --skip-tls-verify beside --tls-verify,
// which skipTLSVerify then resolves.
func addSkipTLSVerify(cmd *cobra.Command, skip *bool) {
	cmd.Flags().BoolVar(skip, "skip-tls-verify", false, "sealer's spelling of --tls-verify=false")
	cmd.Flags().MarkHidden("skip-tls-verify")
}

// skipTLSVerify sets tlsVerify from sealer's --skip-tls-verify when that
// was given.
func skipTLSVerify(cmd *cobra.Command, skip bool, tlsVerify *bool) error {
	if err := oneSpelling(cmd, "tls-verify", "skip-tls-verify"); err != nil {
		return err
	}
	if cmd.Flags().Changed("skip-tls-verify") {
		*tlsVerify = !skip
	}
	return nil
}

// sealerImageTypes are sealer's build --type values: a kube-installer
// image brings a cluster up, an app-installer image installs into one.
var sealerImageTypes = map[string]metadata.ImageType{
	"kube-installer": metadata.TypeCluster,
	"app-installer":  metadata.TypeApp,
}

// imageType is hoist's name of a build --type given either way; any other
// value is left for the build to refuse.
func imageType(t string) string {
	if h, ok := sealerImageTypes[t]; ok {
		return string(h)
	}
	return t
}

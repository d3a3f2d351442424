package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=..."), by the Makefile.
var version = "0.1.0-dev"

type versionInfo struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit"`
	GoVersion string `json:"goVersion"`
	Built     string `json:"built"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.GitCommit = s.Value
			case "vcs.time":
				v.Built = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && v.GitCommit != "" {
			v.GitCommit += "-dirty"
		}
	}
	return v
}

func newVersionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the hoist version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := currentVersion()
			if format != "" {
				return writeFormatted(cmd.OutOrStdout(), format, v)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Version:      %s\n", v.Version)
			fmt.Fprintf(w, "Git Commit:   %s\n", v.GitCommit)
			fmt.Fprintf(w, "Go Version:   %s\n", v.GoVersion)
			fmt.Fprintf(w, "Built:        %s\n", v.Built)
			fmt.Fprintf(w, "OS/Arch:      %s/%s\n", v.OS, v.Arch)
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "output format: json or a Go template")
	return cmd
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/registry"
)

func newRegistryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Serve a registry data directory",
	}
	cmd.AddCommand(newRegistryServeCommand())
	return cmd
}

func newRegistryServeCommand() *cobra.Command {
	var root, addr, cert, key, htpasswd string
	var readOnly bool
	cmd := &cobra.Command{
		Use:   "serve --root DIR",
		Short: "Serve a registry directory (such as an image's registry/) with the CNCF Distribution registry",
		Long: `Serve a registry data directory (the directory holding docker/registry/v2,
such as the registry/ folder of a cluster image) with the CNCF Distribution
registry, read-only unless --read-only=false.

Images are found by their original names: /v2/docker.io/library/nginx/... and
containerd's mirror form /v2/library/nginx/...?ns=docker.io both reach the
repository docker.io/library/nginx. A host with a port is stored with '_' for
':' (registry.corp:5000/x is registry.corp_5000/x). Each request is logged on
stdout; SIGTERM or Ctrl-C stops the server after the requests in flight.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return errors.New("name the registry directory with --root DIR")
			}
			if (cert == "") != (key == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			srv, err := registry.Start(cmd.Context(), root, addr, cert, key, registry.Options{
				ReadOnly: readOnly,
				Htpasswd: htpasswd,
				Log:      cmd.OutOrStdout(),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "serving %s on %s (read-only: %v)\n", root, srv.Addr, readOnly)
			select {
			case err := <-srv.Done():
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Stop(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "registry data directory to serve")
	f.StringVar(&addr, "addr", "0.0.0.0:5000", "address to listen on, HOST:PORT")
	f.StringVar(&cert, "tls-cert", "", "TLS certificate file (serve HTTPS)")
	f.StringVar(&key, "tls-key", "", "TLS key file")
	f.StringVar(&htpasswd, "htpasswd", "", "htpasswd file (bcrypt) of the users allowed in")
	f.BoolVar(&readOnly, "read-only", true, "refuse pushes")
	return cmd
}

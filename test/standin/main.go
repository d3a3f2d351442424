// Command standin serves stand-ins for public images on loopback, for
// machines that cannot reach public registries (this project's CI, an air
// gap): a hoist registry holding, for each reference given, a generated
// image under that name. Pointed at by a registries.conf mirror, it lets
// `hoist build` of Kubefile.example run offline.
//
//	go run ./test/standin --dir DIR --addr 127.0.0.1:5000 docker.io/library/nginx:1.27.3 ...
//
// It serves until SIGTERM or Ctrl-C. The images have random content: they
// stand in for the real ones, they are not them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hoistdev/hoist/registry"
)

func main() {
	dir := flag.String("dir", "", "registry data directory")
	addr := flag.String("addr", "127.0.0.1:5000", "address to serve on")
	size := flag.Int64("size", 64<<10, "bytes of each generated layer")
	flag.Parse()
	if err := run(*dir, *addr, *size, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}

func run(dir, addr string, size int64, refs []string) error {
	if dir == "" {
		return fmt.Errorf("--dir is required")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := registry.Start(ctx, dir, addr, "", "", registry.Options{})
	if err != nil {
		return err
	}
	for _, ref := range refs {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return err
		}
		repo, err := registry.RepositoryPath(named)
		if err != nil {
			return err
		}
		target := srv.Addr + "/" + repo
		if tagged, ok := reference.TagNameOnly(named).(reference.Tagged); ok {
			target += ":" + tagged.Tag()
		}
		img, err := random.Image(size, 2)
		if err != nil {
			return err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return err
		}
		r, err := name.ParseReference(target, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(r, img); err != nil {
			return fmt.Errorf("pushing a stand-in for %s: %w", ref, err)
		}
		fmt.Printf("stand-in for %s at %s\n", ref, target)
	}
	fmt.Printf("serving on %s\n", srv.Addr)
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(shutdown)
}

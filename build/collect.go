package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"go.podman.io/common/pkg/retry"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	dockerref "go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/registry"
)

// wanted is one image the build must bundle, and where it was needed.
type wanted struct {
	Ref     string
	FoundIn []string
}

// collectOptions tune how images are fetched.
type collectOptions struct {
	Jobs         int
	TLSVerify    bool
	AllowMissing bool
	Platforms    []kubefile.Platform
	Progress     io.Writer
	// Warn is told what --allow-missing let through, one image a call.
	Warn func(message string)
	// Stored is told each blob stored in (or found in) the cache.
	Stored func(digest.Digest)
	// Fetched is told each image as soon as it is whole in the cache
	// (those Pinned will list), from the fetching goroutines.
	Fetched func(registry.Pinned)
}

// collected is the outcome: the records for the metadata, and the images
// pinned in the cache, to extract into the image's registry/ directory.
type collected struct {
	Records []metadata.Image
	Pinned  []registry.Pinned
}

// cacheDir is the blob cache (registry.CachedBlob) every build of a store
// pulls into: blobs are shared between builds, and a build interrupted
// during pulls finds what it fetched.
func cacheDir(store *clusterimage.Store) string {
	return layout.Local{Root: store.Root}.BlobCache()
}

// collect copies every wanted image, for the build's platforms, into the
// store's blob cache. Images the parent's registry layer holds are not
// fetched again.
func collect(ctx context.Context, store *clusterimage.Store, images []wanted, parent *metadata.Metadata, opts collectOptions) (*collected, error) {
	out := &collected{}
	inParent := map[string]metadata.Image{}
	if parent != nil {
		for _, img := range parent.Images {
			if img.Digest != "" {
				inParent[img.Ref] = img
			}
		}
	}
	var todo []wanted
	for _, w := range images {
		if p, ok := inParent[w.Ref]; ok {
			out.Records = append(out.Records, p)
			continue
		}
		todo = append(todo, w)
	}
	if len(todo) == 0 {
		return out, nil
	}

	cache := cacheDir(store)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	policy, err := signature.NewPolicyFromFile(store.PolicyPath())
	if err != nil {
		return nil, err
	}

	jobs := opts.Jobs
	if jobs < 1 {
		jobs = 4
	}
	type result struct {
		record metadata.Image
		pinned registry.Pinned
		err    error
	}
	results := make([]result, len(todo))
	// Workers take the images in order, so that a build with one job
	// fetches them one after the other, as listed.
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(jobs, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					results[i].err = ctx.Err()
					continue
				}
				rec, pin, err := fetch(ctx, store, policy, cache, todo[i], opts)
				results[i] = result{rec, pin, err}
				if err == nil && opts.Fetched != nil {
					opts.Fetched(pin)
				}
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("collecting images interrupted: %w", ctx.Err())
	}

	var missing []string
	for i, r := range results {
		if r.err != nil {
			missing = append(missing, fmt.Sprintf("%s (needed by %s): %v", todo[i].Ref, strings.Join(todo[i].FoundIn, ", "), r.err))
			out.Records = append(out.Records, metadata.Image{Ref: todo[i].Ref, FoundIn: strings.Join(todo[i].FoundIn, ", ")})
			continue
		}
		out.Records = append(out.Records, r.record)
		out.Pinned = append(out.Pinned, r.pinned)
	}
	sort.Slice(out.Records, func(i, j int) bool { return out.Records[i].Ref < out.Records[j].Ref })
	if len(missing) > 0 {
		if !opts.AllowMissing {
			return nil, fmt.Errorf("%d image(s) cannot be bundled:\n  %s", len(missing), strings.Join(missing, "\n  "))
		}
		for _, m := range missing {
			opts.Warn("warning: not bundled (--allow-missing): " + m)
		}
	}
	return out, nil
}

// fetch copies one image into the cache registry, with retries.
func fetch(ctx context.Context, store *clusterimage.Store, policy *signature.Policy, cache string, w wanted, opts collectOptions) (metadata.Image, registry.Pinned, error) {
	named, err := dockerref.ParseNormalizedNamed(w.Ref)
	if err != nil {
		return metadata.Image{}, registry.Pinned{}, err
	}
	repo, err := registry.RepositoryPath(named)
	if err != nil {
		return metadata.Image{}, registry.Pinned{}, err
	}
	srcRef, err := docker.NewReference(named)
	if err != nil {
		return metadata.Image{}, registry.Pinned{}, err
	}
	tag := ""
	if tagged, ok := named.(dockerref.Tagged); ok {
		tag = tagged.Tag()
	}
	destRef := registry.NewBlobReference(cache, opts.Stored)
	srcSys := store.SystemContext()
	if !opts.TLSVerify {
		srcSys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	destSys := store.SystemContext()

	var rec metadata.Image
	var pinned registry.Pinned
	op := func() error {
		pc, err := signature.NewPolicyContext(policy)
		if err != nil {
			return err
		}
		defer pc.Destroy()
		src, err := srcRef.NewImageSource(ctx, srcSys)
		if err != nil {
			return err
		}
		raw, mime, err := src.GetManifest(ctx, nil)
		if err != nil {
			src.Close()
			return err
		}
		copts := &copy.Options{
			SourceCtx:      srcSys,
			DestinationCtx: destSys,
			ReportWriter:   opts.Progress,
		}
		var platforms []string
		if manifest.MIMETypeIsMultiImage(mime) {
			list, err := manifest.ListFromBlob(raw, mime)
			if err != nil {
				src.Close()
				return err
			}
			for _, pl := range opts.Platforms {
				d, err := list.ChooseInstance(&types.SystemContext{OSChoice: pl.OS, ArchitectureChoice: pl.Arch, VariantChoice: pl.Variant})
				if err != nil {
					src.Close()
					return fmt.Errorf("no %s image in the index: %w", pl, err)
				}
				copts.Instances = append(copts.Instances, d)
				platforms = append(platforms, pl.String())
			}
			// Only the build's platforms are copied; the index itself is
			// kept unchanged, so it keeps its digest.
			copts.ImageListSelection = copy.CopySpecificImages
		} else {
			img, err := image.FromUnparsedImage(ctx, srcSys, image.UnparsedInstance(src, nil))
			if err != nil {
				src.Close()
				return err
			}
			info, err := img.Inspect(ctx)
			if err != nil {
				src.Close()
				return err
			}
			if info.Os != "" && info.Architecture != "" {
				pl := info.Os + "/" + info.Architecture
				if info.Variant != "" {
					pl += "/" + info.Variant
				}
				platforms = append(platforms, pl)
			}
		}
		src.Close()
		copied, err := copy.Image(ctx, pc, destRef, srcRef, copts)
		if err != nil {
			return err
		}
		d, err := manifest.Digest(copied)
		if err != nil {
			return err
		}
		if canonical, ok := named.(dockerref.Canonical); ok && canonical.Digest() != d {
			return fmt.Errorf("the registry gave digest %s for a reference pinned to %s", d, canonical.Digest())
		}
		rec = metadata.Image{Ref: w.Ref, Digest: d.String(), Platform: strings.Join(platforms, ","), FoundIn: strings.Join(w.FoundIn, ", ")}
		pinned = registry.Pinned{Repo: repo, Digest: d, Tag: tag}
		return nil
	}
	err = retry.IfNecessary(ctx, op, &retry.Options{MaxRetry: 3, Delay: time.Second, IsErrorRetryable: retryable})
	return rec, pinned, err
}

// retryable keeps retries for transient failures: an image that does not
// exist, or a denied request, will not appear by waiting.
func retryable(err error) bool {
	msg := err.Error()
	for _, final := range []string{"manifest unknown", "not found", "denied", "unauthorized", "no such host", "in the index", "pinned to"} {
		if strings.Contains(msg, final) {
			return false
		}
	}
	return !errors.Is(err, context.Canceled)
}

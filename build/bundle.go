package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
	"go.podman.io/common/libimage"
	"go.podman.io/storage"

	"github.com/hoistdev/hoist/build/discover"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/registry"
)

// Folders of a cluster image's rootfs that hold what runs in the cluster.
var discoveryRoots = []string{"apps", "charts", "manifests"}

// bundle finds the container images the built images need, collects them
// and adds them as one registry/ layer on top of each image, with the
// metadata's image list filled in. It returns the final image IDs.
func bundle(ctx context.Context, store *clusterimage.Store, opts Options, plans []*kubefile.Plan, ids []string, tmp string, rep reporter) ([]string, error) {
	start := time.Now()
	found, err := findImages(ctx, store, opts, plans, ids, rep)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return ids, nil
	}
	var wants []wanted
	for ref, places := range found {
		w := wanted{Ref: ref}
		for p := range places {
			w.FoundIn = append(w.FoundIn, p)
		}
		sort.Strings(w.FoundIn)
		wants = append(wants, w)
	}
	sort.Slice(wants, func(i, j int) bool { return wants[i].Ref < wants[j].Ref })

	logrus.Debugf("found %d images in %s", len(wants), time.Since(start))
	start = time.Now()
	cache := cacheDir(store)
	streamer, err := newLayerStreamer(cache, tmp)
	if err != nil {
		return nil, err
	}
	defer streamer.Close()
	// The registry tree goes straight into storage's staging area, each
	// image as soon as it is fetched, and its tar is digested as its blobs
	// arrive: when the last image is in, the layer is nearly done.
	var streamed *clusterimage.Streamed
	var streamErr error
	finished := false
	digestTree := func(dir string) (*clusterimage.Streamed, error) {
		// Once: the images of other platforms get the same tree.
		if !finished {
			finished = true
			streamed, streamErr = streamer.Finish(dir)
			if streamErr != nil {
				logrus.Debugf("registry layer not streamed, hashing it now: %v", streamErr)
			}
		}
		return streamed, streamErr
	}
	fetched := make(chan registry.Pinned, len(wants))
	staging := clusterimage.TreeLayer{
		Name: "registry",
		Fill: func(dir string) error {
			// Several at once: an image is dozens of directories and
			// small files, and where creating each costs the filesystem
			// more than its data (ext4 here, up to ~0.8 ms of CPU each)
			// one writer would trail the pulls.
			if err := registry.ExtractFrom(cache, dir, fetched, 4); err != nil {
				return fmt.Errorf("writing the registry layer: %w", err)
			}
			return nil
		},
		Digest: digestTree,
	}
	type stageResult struct {
		tree *clusterimage.StagedTree
		err  error
	}
	staged := make(chan stageResult, 1)
	go func() {
		t, err := store.StageTree(staging)
		staged <- stageResult{t, err}
	}()
	collected := rep.start(Node, StepCollectImages)
	got, err := collect(ctx, store, wants, plans[0].Parent, collectOptions{
		Jobs: opts.Jobs, TLSVerify: !opts.TLSNoVerify, AllowMissing: opts.AllowMissing,
		Platforms: platformsOf(plans), Progress: opts.Progress,
		Warn:   func(message string) { rep.warn(StepCollectImages, message) },
		Stored: streamer.Stored, Fetched: func(p registry.Pinned) { fetched <- p },
	})
	collected(err)
	close(fetched)
	stage := <-staged
	defer stage.tree.Discard() // unless used below
	if err != nil {
		return nil, err
	}
	logrus.Debugf("collected %d images in %s", len(got.Records), time.Since(start))
	start = time.Now()
	if stage.err != nil && !errors.Is(stage.err, storage.ErrNotSupported) {
		return nil, stage.err
	}
	layer := clusterimage.TreeLayer{
		Name: "registry",
		Fill: func(dir string) error {
			if err := registry.Extract(cache, dir, got.Pinned); err != nil {
				return fmt.Errorf("writing the registry layer: %w", err)
			}
			return nil
		},
		Digest: digestTree,
	}
	layered := rep.start(Node, StepRegistryLayer)
	out, err := addRegistryLayer(store, plans, ids, got, stage.tree, layer)
	layered(err)
	if err != nil {
		return nil, err
	}
	logrus.Debugf("registry layer extracted and committed in %s", time.Since(start))
	return out, nil
}

// findImages lists the images that the built images' apps, charts and
// manifests, their IMAGE instructions and the image lists name, each with
// the places that name it.
func findImages(ctx context.Context, store *clusterimage.Store, opts Options, plans []*kubefile.Plan, ids []string, rep reporter) (found map[string]map[string]bool, err error) {
	done := rep.start(Node, StepFindImages)
	defer func() { done(err) }()
	return gatherImages(plans, opts, rep, func(i int, plan *kubefile.Plan, warn func(string)) ([]discover.Image, error) {
		return discoverIn(ctx, store, ids[i], plan, opts, warn)
	})
}

// addRegistryLayer puts the collected images' layer on each built image:
// the staged tree (nil: none) on the first, the layer on the others.
func addRegistryLayer(store *clusterimage.Store, plans []*kubefile.Plan, ids []string, got *collected, staged *clusterimage.StagedTree, layer clusterimage.TreeLayer) ([]string, error) {
	// The parent's images are in its own registry layer, below this one.
	records := got.Records
	var out []string
	for i, plan := range plans {
		meta := *plan.Metadata
		meta.Images = records
		doc, err := meta.Encode()
		if err != nil {
			return nil, err
		}
		tags := map[string]string{metadata.Annotation: string(doc), metadata.TypeLabel: string(meta.Type)}
		// The layer is determined by the images (content-addressed) and the
		// metadata: the same ones on the same base give the same image.
		h := sha256.New()
		fmt.Fprintf(h, "%s\n%s\n", ids[i], doc)
		for _, p := range got.Pinned {
			fmt.Fprintf(h, "%s@%s:%s\n", p.Repo, p.Digest, p.Tag)
		}
		key := hex.EncodeToString(h.Sum(nil))
		var id string
		if i == 0 && staged != nil {
			id, err = store.AddStagedLayer(ids[i], staged, "hoist: bundled images (registry/)", key, tags, tags)
		} else {
			id, err = store.AddTreeLayer(ids[i], layer, "hoist: bundled images (registry/)", key, tags, tags)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// discoverIn mounts a built image and finds the images its apps, charts
// and manifests name: discovery reads exactly what ships.
func discoverIn(ctx context.Context, store *clusterimage.Store, id string, plan *kubefile.Plan, opts Options, warn func(string)) ([]discover.Image, error) {
	img, _, err := store.Runtime.LookupImage(id, &libimage.LookupImageOptions{})
	if err != nil {
		return nil, err
	}
	if img.TopLayer() == "" {
		return nil, nil // no layer, no files
	}
	root, err := img.Mount(ctx, nil, "")
	if err != nil {
		return nil, fmt.Errorf("mounting the built image to find its images: %w", err)
	}
	defer img.Unmount(false)
	var paths []string
	for _, dir := range discoveryRoots {
		if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
			paths = append(paths, filepath.Join(root, dir))
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	// The apps' charts get their APPENV and per-app flags, composed as
	// the install composes them.
	apps := discover.ImageApps(root, plan.Metadata.Apps)
	images, err := searchImages(paths, discoverOptions(opts, plan, apps, root, warn))
	if err != nil {
		return nil, fmt.Errorf("finding the images %s needs: %w", plan.File, err)
	}
	return images, nil
}

func platformsOf(plans []*kubefile.Plan) []kubefile.Platform {
	var out []kubefile.Platform
	for _, p := range plans {
		out = append(out, p.Platform)
	}
	return out
}

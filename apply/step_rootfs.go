package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
)

// rootfsStep sends the image's tree to the node, with its registry/ on
// registry nodes only.
func (r *runner) rootfsStep() step.Step {
	return step.Step{
		Name:  stepRootfs,
		Stage: step.Host,
		// The same image is a different tree with and without registry/,
		// and with other rendered templates.
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			return rootfsKey(in.ImageDigest, isRegistry(in, n)) + renderKey(r.rendered), true
		},
		Run: func(ctx context.Context, t *step.Target) error {
			withRegistry := isRegistry(t.Input, t.Node)
			packed, err := r.pack(withRegistry)
			if err != nil {
				return err
			}
			// A tree already there is not sent again; its templates are
			// rendered again all the same, for the env may have changed.
			if _, err = distribute(ctx, t.Exec, t.Hoist, packed, rootfsKey(r.image.Digest, withRegistry), t.Dir.Rootfs(), t.Progress); err != nil {
				return err
			}
			return writeRendered(ctx, t.Exec, t.Dir.Rootfs(), r.rendered)
		},
	}
}

// rootfsKey is the digest marker of a node's rootfs: the image, with or
// without its registry/.
func rootfsKey(imageDigest string, withRegistry bool) string {
	if withRegistry {
		return imageDigest + "+registry"
	}
	return imageDigest
}

// pack is the packed rootfs, with or without registry/: kept under --root
// once per image (packCached), checked and opened once per apply; nodes
// that need it meanwhile wait for it.
func (r *runner) pack(withRegistry bool) (packedTree, error) {
	r.packMu.Lock()
	defer r.packMu.Unlock()
	if p, ok := r.packed[withRegistry]; ok {
		return p, nil
	}
	var exclude []string
	if !withRegistry {
		exclude = []string{layout.ImageRegistry}
	}
	key := rootfsKey(r.image.Digest, withRegistry)
	if strings.ContainsAny(key, "/\x00") || strings.HasPrefix(key, ".") {
		return packedTree{}, fmt.Errorf("image digest %q cannot name a file", r.image.Digest)
	}
	p, err := packCached(layout.Local{Root: r.opts.Root}.PackedRootfs(key), r.image.Rootfs, exclude...)
	if err != nil {
		return packedTree{}, fmt.Errorf("packing the rootfs: %w", err)
	}
	r.packed[withRegistry] = p
	return p, nil
}

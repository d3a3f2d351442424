package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/layout"
)

// PushImages copies every image bundled in the image's registry/ to the
// registry at target (HOST:PORT), as <target>/<host>/<path> — the layout
// of a hoist registry, so that images of two registries with the same
// path stay apart — with their tags and digests intact, and returns how
// many it pushed: none, without touching the registry, for an image that
// bundles none. insecure allows plain HTTP and unverified TLS.
func PushImages(ctx context.Context, rootfs string, meta *metadata.Metadata, target string, insecure bool) (int, error) {
	images, err := bundled(meta)
	if err != nil || len(images) == 0 {
		return 0, err
	}
	h, err := NewHandler(ctx, filepath.Join(rootfs, layout.ImageRegistry), Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	src := ln.Addr().String()
	var dstOpts []name.Option
	transport := remote.DefaultTransport
	if insecure {
		dstOpts = append(dstOpts, name.Insecure)
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		transport = t
	}
	for _, img := range images {
		repo, named := img.repo, img.named
		from, err := name.NewDigest(src+"/"+repo+"@"+img.Digest, name.Insecure)
		if err != nil {
			return 0, err
		}
		desc, err := remote.Get(from, remote.WithContext(ctx))
		if err != nil {
			return 0, fmt.Errorf("%s in the image: %w", img.Ref, err)
		}
		to, err := name.NewDigest(target+"/"+repo+"@"+img.Digest, dstOpts...)
		if err != nil {
			return 0, err
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(transport)}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				return 0, err
			}
			err = remote.WriteIndex(to, idx, opts...)
		} else {
			i, err2 := desc.Image()
			if err2 != nil {
				return 0, err2
			}
			err = remote.Write(to, i, opts...)
		}
		if err != nil {
			return 0, fmt.Errorf("pushing %s to %s: %w", img.Ref, target, err)
		}
		if tagged, ok := named.(reference.Tagged); ok {
			tag, err := name.NewTag(target+"/"+repo+":"+tagged.Tag(), dstOpts...)
			if err != nil {
				return 0, err
			}
			if err := remote.Tag(tag, desc, opts...); err != nil {
				return 0, fmt.Errorf("tagging %s in %s: %w", img.Ref, target, err)
			}
		}
	}
	return len(images), nil
}

// Copy is a bundled image and where PushImages puts it in a target.
type Copy struct {
	Ref, Digest string
	To          string // <target>/<host>/<path>@<digest>
}

// Copies lists the image's bundled images with their copies in target, as
// PushImages puts them.
func Copies(meta *metadata.Metadata, target string) ([]Copy, error) {
	images, err := bundled(meta)
	if err != nil {
		return nil, err
	}
	var out []Copy
	for _, img := range images {
		out = append(out, Copy{Ref: img.Ref, Digest: img.Digest, To: target + "/" + img.repo + "@" + img.Digest})
	}
	return out, nil
}

// bundledImage is an image the image's registry/ holds, with its path
// there (<host>/<path>).
type bundledImage struct {
	metadata.Image
	named reference.Named
	repo  string
}

// bundled lists the images of the metadata that were bundled (those with a
// digest).
func bundled(meta *metadata.Metadata) ([]bundledImage, error) {
	var out []bundledImage
	for _, img := range meta.Images {
		if img.Digest == "" {
			continue
		}
		named, err := reference.ParseNormalizedNamed(img.Ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", img.Ref, err)
		}
		repo, err := RepositoryPath(named)
		if err != nil {
			return nil, err
		}
		out = append(out, bundledImage{Image: img, named: named, repo: repo})
	}
	return out, nil
}

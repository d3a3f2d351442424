package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
)

// remoteHoistPath is where installSelf puts the hoist binary of this digest
// (agent.FileDigest) under dir.
func remoteHoistPath(dir, digest string) string { return path.Join(dir, "hoist-"+digest[:16]) }

// installSelf puts the hoist binary at binary, whose agent.FileDigest is digest
// (computed once for every node), on the node under dir, once per version:
// the copy is named by its digest, checked by the copy itself after the
// upload, and moved into place only then. It returns the remote path and
// whether it had to upload.
func installSelf(ctx context.Context, node ssh.Executor, binary, digest, dir string) (string, bool, error) {
	remote := remoteHoistPath(dir, digest)
	q := ssh.Quote
	if out, err := ssh.Output(ctx, node, fmt.Sprintf("if [ -x %s ]; then %s; fi", q(remote), step.Agent(remote, agent.DigestCmd{File: remote}))); err == nil && strings.TrimSpace(string(out)) == digest {
		return remote, false, nil
	}
	f, err := os.Open(binary)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	tmp := remote + ".upload"
	if err := node.Run(ctx, fmt.Sprintf("mkdir -p %s && cat > %s && chmod 755 %s", q(dir), q(tmp), q(tmp)), f, nil); err != nil {
		return "", false, fmt.Errorf("uploading hoist: %w", err)
	}
	out, err := ssh.Output(ctx, node, step.Agent(tmp, agent.DigestCmd{File: tmp}))
	if err != nil {
		return "", false, fmt.Errorf("checking the uploaded hoist: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != digest {
		return "", false, fmt.Errorf("the uploaded hoist has digest %s, expected %s", got, digest)
	}
	if err := node.Run(ctx, "mv -f "+q(tmp)+" "+q(remote), nil, nil); err != nil {
		return "", false, err
	}
	return remote, true, nil
}

// packedTree is a tree packed by packTree: the file and the sha256 of its bytes.
type packedTree struct {
	File   string
	Digest string // sha256:<hex>
}

// packTree writes the tree at dir, as distribute sends it (a zstd tar), to a
// temporary file in tmpDir: packed once, it is sent to every node, so that
// more nodes cost no more compression. Top-level entries named in exclude
// are left out.
func packTree(dir, tmpDir string, exclude ...string) (packedTree, error) {
	f, err := os.CreateTemp(tmpDir, "rootfs-*.tar.zst")
	if err != nil {
		return packedTree{}, err
	}
	h := sha256.New()
	if err := agent.Pack(io.MultiWriter(f, h), dir, exclude...); err != nil {
		f.Close()
		os.Remove(f.Name())
		return packedTree{}, err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return packedTree{}, err
	}
	return packedTree{File: f.Name(), Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// distribute sends the packed tree to dest on the node, unpacked there by
// the node's hoist, unless the node already holds this digest. It returns
// whether it sent anything. progress, when not nil, is told the bytes sent
// so far and the total.
func distribute(ctx context.Context, node ssh.Executor, remoteHoist string, packed packedTree, digest, dest string, progress func(sent, total int64)) (bool, error) {
	out, err := ssh.Output(ctx, node, "cat "+ssh.Quote(path.Join(dest, agent.Marker))+" 2>/dev/null || true")
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(out)) == digest {
		return false, nil
	}
	f, err := os.Open(packed.File)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var in io.Reader = f
	if progress != nil {
		fi, err := f.Stat()
		if err != nil {
			return false, err
		}
		in = &countingReader{r: f, total: fi.Size(), progress: progress}
	}
	err = node.Run(ctx, step.Agent(remoteHoist, agent.UnpackCmd{Dest: dest, Digest: digest, StreamDigest: packed.Digest}), in, nil)
	if err != nil {
		return false, fmt.Errorf("distributing to %s: %w", dest, err)
	}
	return true, nil
}

type countingReader struct {
	r        io.Reader
	sent     int64
	total    int64
	progress func(sent, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sent += int64(n)
	if n > 0 {
		c.progress(c.sent, c.total)
	}
	return n, err
}

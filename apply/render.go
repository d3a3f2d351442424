package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hoistdev/hoist/apply/envtemplate"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// The templates of the rootfs are rendered as sealer renders them: the
// *.tmpl files under etc/, charts/ and manifests/ (the folders sealer's
// distributor renders before it copies the rootfs to the nodes), Go
// templates given the cluster's env ({{ .PodCIDR }}, sealer's b64enc and
// b64dec), each written beside itself without the suffix, the template
// kept. The app folders are the launcher's (apply/launch). Rendering
// happens here, once for all the nodes, so that a template that does not
// render stops the apply before any node is touched; the rootfs step
// writes the files on each node once its tree is in place.
var renderDirs = []string{"etc", "charts", "manifests"}

// renderedFile is a template of the rootfs, rendered.
type renderedFile struct {
	Path string      // in the rootfs, slash-separated, without .tmpl
	Mode fs.FileMode // the template's permissions
	Data []byte
}

// renderEnv is what the rootfs's templates see: the image's ENV, then the
// Clusterfile's env over it, as the apps' templates do (without an app's
// APPENV). A host's env is not used: sealer renders once for the cluster,
// and every node gets the same files.
func renderEnv(meta *metadata.Metadata, env map[string]string) map[string]string {
	out := map[string]string{}
	if meta != nil {
		for k, v := range meta.Env {
			out[k] = v
		}
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// renderRootfs renders the templates of the tree at rootfs, folder by
// folder, each in the order of its paths.
func renderRootfs(rootfs string, env map[string]string) ([]renderedFile, error) {
	var files []renderedFile
	for _, dir := range renderDirs {
		// A folder that is a symlink is not the tree's: the node's copy
		// would write through it.
		if info, err := os.Lstat(filepath.Join(rootfs, dir)); err != nil || !info.IsDir() {
			continue
		}
		err := filepath.WalkDir(filepath.Join(rootfs, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), ".tmpl") {
				return err
			}
			rel, _ := filepath.Rel(rootfs, p)
			rel = filepath.ToSlash(rel)
			f, err := renderFile(rootfs, rel, d, env)
			if err != nil {
				return err
			}
			files = append(files, f)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// renderFile renders the template at rel; its errors name it.
func renderFile(rootfs, rel string, d fs.DirEntry, env map[string]string) (renderedFile, error) {
	fail := func(err error) (renderedFile, error) { return renderedFile{}, fmt.Errorf("%s: %w", rel, err) }
	// A symlink could name any file of this machine, which would then go
	// to every node.
	if !d.Type().IsRegular() {
		return fail(errors.New("a template must be a regular file, not a symlink or a device"))
	}
	out := strings.TrimSuffix(rel, ".tmpl")
	if strings.HasSuffix(out, "/") {
		return fail(errors.New("a template needs a name before .tmpl"))
	}
	// The node's tree is this one: what is there replaces a regular file
	// or nothing, never a folder or a symlink (mv would move into it).
	if info, err := os.Lstat(filepath.Join(rootfs, filepath.FromSlash(out))); err == nil && !info.Mode().IsRegular() {
		return fail(fmt.Errorf("%s is there and is not a regular file: the rendered template cannot replace it", out))
	}
	info, err := d.Info()
	if err != nil {
		return fail(err)
	}
	text, err := os.ReadFile(filepath.Join(rootfs, filepath.FromSlash(rel)))
	if err != nil {
		return fail(err)
	}
	// Its errors name the template (rel) and the line.
	data, err := envtemplate.Render(rel, text, env)
	if err != nil {
		return renderedFile{}, err
	}
	return renderedFile{Path: out, Mode: info.Mode().Perm(), Data: data}, nil
}

// renderKey is what the rendered templates add to the key of the rootfs
// step: nothing for an image without templates, so that its nodes' keys
// stay as they were; else their hash, so that a change of the env that
// changes what they render writes them again.
func renderKey(files []renderedFile) string {
	if len(files) == 0 {
		return ""
	}
	return " rendered " + step.Hash(files)
}

// writeRendered puts the rendered templates in the node's tree at rootfs,
// each whole or not at all (written beside, then renamed over the file
// the image has, which a rename replaces rather than writes through).
func writeRendered(ctx context.Context, e ssh.Executor, rootfs string, files []renderedFile) error {
	q := ssh.Quote
	for _, f := range files {
		file := path.Join(rootfs, f.Path)
		tmp := path.Join(path.Dir(file), ".hoist-rendered-"+path.Base(file))
		// umask first: a rendered file may hold secrets of the env.
		cmd := fmt.Sprintf("umask 077 && rm -f %[1]s && cat > %[1]s && chmod %[2]o %[1]s && mv -f %[1]s %[3]s", q(tmp), f.Mode, q(file))
		if err := e.Run(ctx, cmd, bytes.NewReader(f.Data), nil); err != nil {
			return fmt.Errorf("writing %s in the rootfs: %w", f.Path, err)
		}
	}
	return nil
}

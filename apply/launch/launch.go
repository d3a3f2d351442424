// Package launch launches the apps of a cluster image into a Kubernetes
// cluster: Helm charts through the Helm SDK (install or upgrade), manifests
// through server-side apply, shell apps and commands through a Shell (the
// first master over SSH, or this machine). Nothing runs helm or kubectl.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/envtemplate"
	"github.com/hoistdev/hoist/apply/yamlmerge"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// Shell runs a script in dir (relative to the image's rootfs) with env
// exported, where the image's shell apps run.
type Shell interface {
	Run(ctx context.Context, dir string, env map[string]string, script string) error
	// WriteFile puts a rendered template where the script will find it.
	WriteFile(ctx context.Context, path string, data []byte) error
}

// Launcher launches the apps of one image into one cluster.
type Launcher struct {
	Kubeconfig string
	Rootfs     string // the image's tree, read-only
	Meta       *metadata.Metadata
	Env        map[string]string // the cluster's env
	// ValueFiles and Set are Helm values, as at build: FILE and K=V for
	// every chart, APP=FILE and APP:K=V for one app's (chartvalues.Flags).
	ValueFiles []string
	Set        []string
	Shell      Shell
	// Files are the Clusterfile's files of an app, by app name (sealer's
	// Application configs[].files), written over the app's own.
	Files map[string][]clusterfile.AppFile
	// TmpDir holds rendered copies of apps with templates or Files.
	TmpDir string
	// Rewrite, when set, points the workloads' images at their pushed
	// copies.
	Rewrite Rewriter

	config *rest.Config
}

// RESTConfig is the cluster's client configuration, read once.
func (l *Launcher) RESTConfig() (*rest.Config, error) {
	if l.config != nil {
		return l.config, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", l.Kubeconfig, err)
	}
	l.config = cfg
	return cfg, nil
}

// CheckKubeVersion refuses a cluster whose version the image's
// KUBEVERSION range excludes.
func (l *Launcher) CheckKubeVersion(ctx context.Context) (string, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return "", err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return "", fmt.Errorf("asking the cluster its version: %w", err)
	}
	if err := CheckVersion(l.Meta.KubeVersion, info.GitVersion); err != nil {
		return "", fmt.Errorf("the cluster: %w", err)
	}
	return info.GitVersion, nil
}

// CheckVersion refuses a Kubernetes version (v1.37.2) outside a KUBEVERSION
// range (>=1.28 <1.38); an empty range allows every version.
func CheckVersion(kubeVersion, version string) error {
	if kubeVersion == "" {
		return nil
	}
	ok, err := metadata.KubeVersionAllows(kubeVersion, version)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("Kubernetes %s is outside the image's KUBEVERSION %s", version, kubeVersion)
	}
	return nil
}

// App returns the image's app of that name.
func (l *Launcher) App(name string) (metadata.App, error) {
	if a := l.Meta.App(name); a != nil {
		return *a, nil
	}
	return metadata.App{}, fmt.Errorf("LAUNCH names app %q, which the image does not have", name)
}

// appDir is where the app's files are, relative to the rootfs.
func appDir(name string) string { return filepath.Join("apps", name) }

// env is what an app's templates and scripts see: the image's env, the
// cluster's, then the app's.
func (l *Launcher) env(app metadata.App) map[string]string {
	env := map[string]string{}
	for _, m := range []map[string]string{l.Meta.Env, l.Env, app.Env} {
		for k, v := range m {
			env[k] = v
		}
	}
	return env
}

// Launch installs one app.
func (l *Launcher) Launch(ctx context.Context, app metadata.App) error {
	if len(app.Cmds) > 0 {
		return l.runShell(ctx, app, app.Cmds)
	}
	switch app.Type {
	case metadata.AppHelm:
		dir, err := l.rendered(app)
		if err != nil {
			return err
		}
		return l.helm(ctx, app, dir)
	case metadata.AppManifests:
		dir, err := l.rendered(app)
		if err != nil {
			return err
		}
		return l.manifests(ctx, dir)
	case metadata.AppShell:
		scripts, err := filepath.Glob(filepath.Join(l.Rootfs, appDir(app.Name), "*.sh*"))
		if err != nil {
			return err
		}
		sort.Strings(scripts)
		var cmds []string
		for _, s := range scripts {
			cmds = append(cmds, "sh ./"+strings.TrimSuffix(filepath.Base(s), ".tmpl"))
		}
		return l.runShell(ctx, app, cmds)
	}
	return fmt.Errorf("app %s: type %q has no default launch; give it APPCMDS", app.Name, app.Type)
}

// RunCmds runs the image's CMDS in the rootfs.
func (l *Launcher) RunCmds(ctx context.Context) error {
	if len(l.Meta.Launch.Cmds) == 0 {
		return nil
	}
	return l.Shell.Run(ctx, ".", l.env(metadata.App{}), strings.Join(l.Meta.Launch.Cmds, "\n"))
}

func (l *Launcher) runShell(ctx context.Context, app metadata.App, cmds []string) error {
	if l.Shell == nil {
		return fmt.Errorf("app %s runs commands, and there is no host to run them on", app.Name)
	}
	// Rendered templates and the Clusterfile's files are written where
	// the scripts will find them.
	files, err := l.appFiles(app)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := l.Shell.WriteFile(ctx, filepath.Join(appDir(app.Name), f.rel), f.data); err != nil {
			return fmt.Errorf("app %s: %w", app.Name, err)
		}
	}
	script := "set -e\n" + strings.Join(cmds, "\n")
	if err := l.Shell.Run(ctx, appDir(app.Name), l.env(app), script); err != nil {
		return fmt.Errorf("app %s: %w", app.Name, err)
	}
	return nil
}

// rendered returns the app's directory, or a copy of it with its
// templates rendered and the Clusterfile's files written when it has any.
func (l *Launcher) rendered(app metadata.App) (string, error) {
	files, err := l.appFiles(app)
	if err != nil || len(files) == 0 {
		return filepath.Join(l.Rootfs, appDir(app.Name)), err
	}
	src := filepath.Join(l.Rootfs, appDir(app.Name))
	dst, err := os.MkdirTemp(l.TmpDir, "app-"+app.Name+"-")
	if err != nil {
		return "", err
	}
	if err := copyTree(src, dst); err != nil {
		return "", fmt.Errorf("app %s: %w", app.Name, err)
	}
	for _, f := range files {
		target := filepath.Join(dst, f.rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		// Replaced, not written through: the copy may be a link.
		os.Remove(target)
		if err := os.WriteFile(target, f.data, 0o644); err != nil {
			return "", fmt.Errorf("app %s: %w", app.Name, err)
		}
	}
	return dst, nil
}

// appFile is a file of an app that is not the image's as it is.
type appFile struct {
	rel  string // in the app's folder, slash-separated
	data []byte
}

// appFiles are the app's files as they are launched, in sealer's order:
// its *.tmpl rendered with the app's env (each without the suffix), then
// the Clusterfile's files for it (its Application's configs[].files), in
// their order, each over what came before.
func (l *Launcher) appFiles(app metadata.App) ([]appFile, error) {
	dir := filepath.Join(l.Rootfs, appDir(app.Name))
	if _, err := os.Stat(dir); err != nil {
		if len(l.Files[app.Name]) == 0 && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	defer root.Close()
	var files []appFile
	at := map[string]int{}
	put := func(rel string, data []byte) {
		if i, ok := at[rel]; ok {
			files[i].data = data
			return
		}
		at[rel] = len(files)
		files = append(files, appFile{rel: rel, data: data})
	}
	env := l.env(app)
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".tmpl") {
			return err
		}
		name := path.Join(appDir(app.Name), p)
		// A symlink could name any file of this machine.
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: a template must be a regular file, not a symlink or a device", name)
		}
		text, err := root.ReadFile(p)
		if err != nil {
			return err
		}
		data, err := envtemplate.Render(name, text, env)
		if err != nil {
			return err
		}
		put(strings.TrimSuffix(p, ".tmpl"), data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	for i, f := range l.Files[app.Name] {
		data := []byte(f.Data)
		if f.Strategy == clusterfile.ConfigMerge {
			var current []byte
			if j, ok := at[f.Path]; ok {
				current = files[j].data
			} else if current, err = readRegular(root, f.Path); err != nil {
				return nil, fmt.Errorf("app %s: the Application's file %d (%s): merge: %w", app.Name, i+1, f.Path, err)
			}
			if data, err = yamlmerge.Overlay(current, data, yamlmerge.AddMissing); err != nil {
				return nil, fmt.Errorf("app %s: the Application's file %d (%s): merge: %w", app.Name, i+1, f.Path, err)
			}
		}
		put(f.Path, data)
	}
	return files, nil
}

// readRegular reads a regular file of the app, never through a symlink.
func readRegular(root *os.Root, rel string) ([]byte, error) {
	info, err := root.Lstat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("the app has no such file to merge into")
		}
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, errors.New("the app's file is not a regular file")
	}
	return root.ReadFile(rel)
}

// copyTree copies the folders and regular files of src into dst, and its
// symlinks as symlinks: the copy reads as the image's folder does.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
		return nil
	})
}

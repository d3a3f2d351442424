// Package launch launches the apps of a cluster image into a Kubernetes
// cluster: Helm charts through the Helm SDK (install or upgrade), manifests
// through server-side apply, shell apps and commands through a Shell (the
// first master over SSH, or this machine). Nothing runs helm or kubectl.
package launch

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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
	// TmpDir holds rendered copies of apps with templates.
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
	env := l.env(app)
	// Templates are rendered here and written beside the scripts.
	err := filepath.WalkDir(filepath.Join(l.Rootfs, appDir(app.Name)), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".tmpl") {
			return err
		}
		data, err := render(p, env)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.Rootfs, strings.TrimSuffix(p, ".tmpl"))
		return l.Shell.WriteFile(ctx, rel, data)
	})
	if err != nil {
		return fmt.Errorf("app %s: %w", app.Name, err)
	}
	script := "set -e\n" + strings.Join(cmds, "\n")
	if err := l.Shell.Run(ctx, appDir(app.Name), env, script); err != nil {
		return fmt.Errorf("app %s: %w", app.Name, err)
	}
	return nil
}

// rendered returns the app's directory, or a copy with its *.tmpl files
// rendered (without the suffix) when it has any.
func (l *Launcher) rendered(app metadata.App) (string, error) {
	src := filepath.Join(l.Rootfs, appDir(app.Name))
	hasTmpl := false
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tmpl") {
			hasTmpl = true
		}
		return err
	})
	if !hasTmpl {
		return src, nil
	}
	dst, err := os.MkdirTemp(l.TmpDir, "app-"+app.Name+"-")
	if err != nil {
		return "", err
	}
	env := l.env(app)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		var data []byte
		if strings.HasSuffix(p, ".tmpl") {
			target = strings.TrimSuffix(target, ".tmpl")
			data, err = render(p, env)
		} else {
			data, err = os.ReadFile(p)
		}
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("app %s: %w", app.Name, err)
	}
	return dst, nil
}

// render executes a Go template with the env as its data ({{ .Key }}); a
// key the env lacks is an error, not an empty string.
func render(file string, env map[string]string) ([]byte, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	t, err := template.New(filepath.Base(file)).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", filepath.Base(file), err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, env); err != nil {
		return nil, fmt.Errorf("template %s: %w", filepath.Base(file), err)
	}
	return out.Bytes(), nil
}

package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/hoistdev/hoist/chartvalues"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// HelmTimeout bounds one install or upgrade.
const HelmTimeout = 5 * time.Minute

// Namespace is where an app's release and objects go: the app's name.
func Namespace(app metadata.App) string { return app.Name }

// chartPath finds the chart of a helm app: the directory holding
// Chart.yaml, or the one .tgz.
func chartPath(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err == nil {
		return dir, nil
	}
	var found []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "Chart.yaml")); err == nil {
				found = append(found, p)
			}
		} else if filepath.Ext(e.Name()) == ".tgz" {
			found = append(found, p)
		}
	}
	sort.Strings(found)
	if len(found) != 1 {
		return "", fmt.Errorf("want one chart in %s, found %d", dir, len(found))
	}
	return found[0], nil
}

// values composes the app's chart values as the build did when it found
// the chart's images (package chartvalues): APPENV, then --values (every
// chart's, then the app's APP=FILE), then --set (every chart's, then the
// app's APP:K=V).
func (l *Launcher) values(app metadata.App) (map[string]any, error) {
	return chartvalues.Flags{Files: l.ValueFiles, Set: l.Set}.Values(app.Name, app.Env)
}

// helm installs the app's chart as release <app> in namespace <app>, or
// upgrades it when it exists. A failed install is uninstalled and a failed
// upgrade rolled back, so a broken chart leaves the release as it was.
// Nothing waits for pods to be ready: the next apps, or CMDS, may wait.
func (l *Launcher) helm(ctx context.Context, app metadata.App, dir string) error {
	path, err := chartPath(dir)
	if err != nil {
		return fmt.Errorf("app %s: %w", app.Name, err)
	}
	chrt, err := loader.Load(path)
	if err != nil {
		return fmt.Errorf("app %s: chart %s: %w", app.Name, filepath.Base(path), err)
	}
	vals, err := l.values(app)
	if err != nil {
		return fmt.Errorf("app %s: %w", app.Name, err)
	}
	ns := Namespace(app)
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.GetConfig(l.Kubeconfig, "", ns), ns, "secret", func(string, ...any) {}); err != nil {
		return fmt.Errorf("app %s: %w", app.Name, err)
	}
	hist := action.NewHistory(cfg)
	hist.Max = 1
	_, err = hist.Run(app.Name)
	switch {
	case errors.Is(err, driver.ErrReleaseNotFound):
		install := action.NewInstall(cfg)
		install.ReleaseName, install.Namespace, install.CreateNamespace = app.Name, ns, true
		install.Timeout = HelmTimeout
		if l.Rewrite != nil {
			install.PostRenderer = l.Rewrite
		}
		if _, err := install.RunWithContext(ctx, chrt, vals); err != nil {
			// A release that got recorded (failed) goes; one that never
			// did leaves nothing.
			un := action.NewUninstall(cfg)
			un.Timeout = HelmTimeout
			un.Run(app.Name)
			return fmt.Errorf("app %s: helm install: %w", app.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("app %s: release history: %w", app.Name, err)
	}
	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace, upgrade.Timeout = ns, HelmTimeout
	if l.Rewrite != nil {
		upgrade.PostRenderer = l.Rewrite
	}
	if _, err := upgrade.RunWithContext(ctx, app.Name, chrt, vals); err != nil {
		// Only a release the upgrade recorded is rolled back.
		if h, herr := hist.Run(app.Name); herr == nil && len(h) > 0 && h[len(h)-1].Info.Status.String() == "failed" {
			rb := action.NewRollback(cfg)
			rb.Timeout = HelmTimeout
			rb.Run(app.Name)
		}
		return fmt.Errorf("app %s: helm upgrade: %w", app.Name, err)
	}
	return nil
}

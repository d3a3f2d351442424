package apply

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/launch"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
	"github.com/hoistdev/hoist/registry"
	"github.com/hoistdev/hoist/scratch"
	"github.com/hoistdev/hoist/tree"
)

// launchApps launches the planned apps, in order, into the cluster: the
// version check first, then each app not done. A failed app does not stop
// the next ones (they are independent); CMDS run only after every app.
func (r *runner) launchApps(ctx context.Context, steps []PlannedStep) error {
	start := time.Now()
	report := func(e progress.Event) {
		e.Node = AppsNode
		r.report(e)
	}
	fail := func(step string, err error) error {
		r.journal.SetFailed(AppsNode, step, err)
		report(progress.Event{State: progress.StateNodeFailed, Step: step, Error: err.Error(), Elapsed: time.Since(start).Seconds()})
		return err
	}
	todo := false
	for _, s := range steps {
		if !s.Done {
			todo = true
		} else {
			report(progress.Event{Step: "app:" + s.Name, State: progress.StateSkipped})
		}
	}
	if !todo {
		r.journal.SetFailed(AppsNode, "", nil)
		report(progress.Event{State: progress.StateNodeDone})
		return nil
	}
	shell, cleanup, err := r.appShell(ctx)
	if err != nil {
		return fail("apps", err)
	}
	defer cleanup()
	l, err := launcher(r.c, r.image, r.opts, r.tmpDir)
	if err != nil {
		return fail("apps", err)
	}
	l.Shell = shell
	report(progress.Event{Step: stepKubeVersion, State: progress.StateStart})
	version, err := l.CheckKubeVersion(ctx)
	if err != nil {
		return fail(stepKubeVersion, err)
	}
	report(progress.Event{Step: stepKubeVersion + " " + version, State: progress.StateDone})
	var failed []string
	var firstErr error
	for _, s := range steps {
		if s.Done {
			continue
		}
		step := "app:" + s.Name
		if s.Name == stepCmds {
			step = stepCmds
			if len(failed) > 0 {
				break
			}
		}
		report(progress.Event{Step: step, State: progress.StateStart})
		t := time.Now()
		if s.Name == stepCmds {
			err = l.RunCmds(ctx)
		} else {
			app := r.image.Meta.App(s.Name)
			err = l.Launch(ctx, *app)
		}
		if err != nil {
			report(progress.Event{Step: step, State: progress.StateFailed, Error: err.Error(), Elapsed: time.Since(t).Seconds()})
			failed = append(failed, s.Name)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if err := r.journal.MarkAppDone(s.Name, s.Key); err != nil {
			return fail(step, err)
		}
		report(progress.Event{Step: step, State: progress.StateDone, Elapsed: time.Since(t).Seconds()})
	}
	if firstErr != nil {
		err := firstErr
		if len(failed) > 1 {
			err = fmt.Errorf("%d apps failed (%s); first: %w", len(failed), strings.Join(failed, ", "), firstErr)
		}
		return fail("app:"+failed[0], err)
	}
	r.journal.SetFailed(AppsNode, "", nil)
	report(progress.Event{State: progress.StateNodeDone, Elapsed: time.Since(start).Seconds()})
	return nil
}

// appShell is where shell apps and commands run: a master of the cluster
// (master), or this machine for a cluster without hosts. cleanup removes
// what it put on the master: the cluster's admin kubeconfig stays there
// only while the apps run.
func (r *runner) appShell(ctx context.Context) (shell launch.Shell, cleanup func(), err error) {
	masters := r.c.Masters()
	if len(masters) == 0 {
		return &localShell{rootfs: r.image.Rootfs, work: filepath.Join(r.tmpDir, "rootfs"), kubeconfig: r.c.Kubeconfig}, func() {}, nil
	}
	exec, _, err := r.master(ctx)
	if err != nil {
		return nil, nil, err
	}
	sh := &sshShell{exec: exec, rootfs: r.dir.Rootfs()}
	if r.c.Kubeconfig == "" {
		return sh, func() {}, nil
	}
	// Scripts on the master reach the cluster with its kubeconfig.
	data, err := os.ReadFile(r.c.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	sh.kubeconfig = r.dir.Kubeconfig()
	cleanup = func() {
		// Not the apps' context: a cancelled apply removes it too.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exec.Run(ctx, "rm -f "+ssh.Quote(sh.kubeconfig)+" "+ssh.Quote(sh.kubeconfig+".tmp"), nil, nil)
	}
	if err := ssh.WriteFile(ctx, exec, sh.kubeconfig, data); err != nil {
		cleanup()
		return nil, nil, err
	}
	return sh, cleanup, nil
}

type sshShell struct {
	exec       ssh.Executor
	rootfs     string
	kubeconfig string
}

func (s *sshShell) Run(ctx context.Context, dir string, env map[string]string, script string) error {
	if s.kubeconfig != "" {
		env = withKubeconfig(env, s.kubeconfig)
	}
	// The script's stdout joins its stderr, which the error carries.
	return s.exec.Run(ctx, "cd "+ssh.Quote(path.Join(s.rootfs, dir))+"\n"+step.Exports(env)+"exec 1>&2\n"+script, nil, nil)
}

func (s *sshShell) WriteFile(ctx context.Context, rel string, data []byte) error {
	return ssh.WriteFile(ctx, s.exec, path.Join(s.rootfs, rel), data)
}

func withKubeconfig(env map[string]string, file string) map[string]string {
	out := map[string]string{"KUBECONFIG": file}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// localShell runs scripts on this machine, in a writable copy of the
// directories they use (the image is mounted read-only).
type localShell struct {
	rootfs, work, kubeconfig string
}

func (s *localShell) copyOf(dir string) (string, error) {
	dst := filepath.Join(s.work, dir)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	return dst, tree.Link(filepath.Join(s.rootfs, dir), dst)
}

func (s *localShell) Run(ctx context.Context, dir string, env map[string]string, script string) error {
	wd, err := s.copyOf(dir)
	if err != nil {
		return err
	}
	if s.kubeconfig != "" {
		abs, _ := filepath.Abs(s.kubeconfig)
		env = withKubeconfig(env, abs)
	}
	// The script's stdout joins its stderr, which the error carries; the
	// script and its env go on stdin, never on a command line.
	return ssh.Local().Run(ctx, "cd "+ssh.Quote(wd)+"\n"+step.Exports(env)+"exec 1>&2\n"+script, nil, nil)
}

func (s *localShell) WriteFile(_ context.Context, rel string, data []byte) error {
	if _, err := s.copyOf(filepath.Dir(rel)); err != nil {
		return err
	}
	target := filepath.Join(s.work, rel)
	os.Remove(target) // a hard link to the image's file: replace, never write through
	return os.WriteFile(target, data, 0o644)
}

// checkKubeVersion refuses, before anything is pushed or changed on a
// node, a cluster whose Kubernetes version the image's KUBEVERSION
// excludes: the version the image installs (its runtime's configuration
// with the Clusterfile's laid over) when it brings Kubernetes up, else the
// version the cluster of spec.kubeconfig reports. An image without a range,
// or a cluster with nothing to launch into, passes.
func (r *runner) checkKubeVersion(ctx context.Context) error {
	meta := r.image.Meta
	if meta == nil || meta.KubeVersion == "" {
		return nil
	}
	if r.rt != nil {
		// Without a version in its configuration, the runtime installs
		// its tool's own: the apps' check asks the cluster once it is up.
		version := r.rt.Version()
		if version == "" {
			return nil
		}
		if err := launch.CheckVersion(meta.KubeVersion, version); err != nil {
			return fmt.Errorf("the cluster %s brings up: %w", r.c.Image, err)
		}
		return nil
	}
	if r.c.Kubeconfig == "" {
		return nil
	}
	l, err := launcher(r.c, r.image, r.opts, "")
	if err != nil {
		return err
	}
	_, err = l.CheckKubeVersion(ctx)
	return err
}

// previewApps fills the plan's apps to launch with what they would create
// or change, asking the cluster (read only). A cluster that cannot be asked
// leaves the plan as it is and returns why.
func previewApps(ctx context.Context, c clusterfile.Cluster, image Image, opts Options, plan *Plan) error {
	if c.Kubeconfig == "" {
		return nil
	}
	tmp, err := scratch.Dir(layout.Local{Root: opts.Root}.Tmp(), "preview-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	l, err := launcher(c, image, opts, tmp)
	if err != nil {
		return err
	}
	if _, err := l.CheckKubeVersion(ctx); err != nil {
		return err
	}
	for i, a := range plan.Apps {
		if a.Done || a.Name == stepCmds {
			continue
		}
		app := image.Meta.App(a.Name)
		changes, err := l.Preview(ctx, *app)
		if err != nil {
			return fmt.Errorf("app %s: %w", a.Name, err)
		}
		plan.Apps[i].Changes = changes
	}
	return nil
}

func launcher(c clusterfile.Cluster, image Image, opts Options, tmp string) (*launch.Launcher, error) {
	l := &launch.Launcher{Kubeconfig: c.Kubeconfig, Rootfs: image.Rootfs, Meta: image.Meta, Env: c.Env,
		ValueFiles: opts.ValueFiles, Set: opts.Set, Files: c.Launch.AppFiles, TmpDir: tmp}
	if opts.RewriteImages != "" {
		copies, err := registry.Copies(image.Meta, opts.RewriteImages)
		if err != nil {
			return nil, err
		}
		l.Rewrite = launch.Rewriter{}
		for _, c := range copies {
			if err := l.Rewrite.Add(c.Ref, c.To, c.Digest); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

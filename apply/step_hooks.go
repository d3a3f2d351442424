package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/apply/step"
	"github.com/hoistdev/hoist/layout"
)

// hookName is the name of the step that runs a phase's hooks, in the plan,
// the journal and the progress of apply and delete alike.
func hookName(phase clusterfile.Phase) string { return "hook:" + string(phase) }

// hookStep runs the hooks (sealer's plugins) of a phase that apply to the
// node, in the rootfs; a node without any does not get the step.
func (r *runner) hookStep(phase clusterfile.Phase, stage step.Stage) step.Step {
	return step.Step{
		Name:  hookName(phase),
		Stage: stage,
		Key: func(in *step.Input, n clusterfile.Node) (string, bool) {
			hooks := hooksOf(in.Plugins, phase, n.Roles)
			if len(hooks) == 0 {
				return "", false
			}
			return step.Hash(struct {
				Image string
				Hooks []clusterfile.Plugin
			}{in.ImageDigest, hooks}), true
		},
		Run: func(ctx context.Context, t *step.Target) error {
			return r.runHooks(ctx, t.Exec, t.Node, phase, t.Dir.Rootfs())
		},
	}
}

// upgradeHostStep runs sealer's upgrade-host hooks in an upgrade of
// Kubernetes (step.Input.Upgrade), on each node of their scope in its turn
// (the stage of its role's upgrade, before the runtime's upgrade step),
// once per version.
func (r *runner) upgradeHostStep(stage step.Stage) step.Step {
	s := r.hookStep(clusterfile.PhaseUpgradeHost, stage)
	key := s.Key
	s.Key = func(in *step.Input, n clusterfile.Node) (string, bool) {
		if in.Upgrade == nil || n.IsMaster() != (stage == step.UpgradeMasters) {
			return "", false
		}
		k, ok := key(in, n)
		return step.Hash([]string{k, in.Upgrade.To}), ok
	}
	return s
}

// hooksOf returns the plugins of a phase that apply to a node with these
// roles, in the order they run (by name).
func hooksOf(plugins []clusterfile.Plugin, phase clusterfile.Phase, roles []clusterfile.Role) []clusterfile.Plugin {
	var hooks []clusterfile.Plugin
	for _, p := range plugins {
		if p.Phase != phase {
			continue
		}
		if len(p.Scope) > 0 && !slices.ContainsFunc(p.Scope, func(r clusterfile.Role) bool { return slices.Contains(roles, r) }) {
			continue
		}
		hooks = append(hooks, p)
	}
	slices.SortFunc(hooks, func(a, b clusterfile.Plugin) int { return strings.Compare(a.Name, b.Name) })
	return hooks
}

// runHooks runs the phase's hooks on the node in dir (or / when dir is
// gone), the cluster's and the host's env exported, each hook's output
// kept for its error.
func (r *runner) runHooks(ctx context.Context, exec ssh.Executor, n clusterfile.Node, phase clusterfile.Phase, dir string) error {
	env := r.nodeEnv(n)
	env["HOIST_PHASE"] = string(phase)
	prelude := fmt.Sprintf("cd %s 2>/dev/null || cd /\n", ssh.Quote(dir)) + step.Exports(env)
	for _, h := range hooksOf(r.plugins, phase, n.Roles) {
		// The hook's stdout joins its stderr, which the error carries.
		script := prelude + "exec 1>&2\n" + h.Data
		if err := exec.Run(ctx, script, nil, nil); err != nil {
			return fmt.Errorf("hook %s: %w", h.Name, err)
		}
	}
	return nil
}

// mergePlugins merges the image's plugins with the Clusterfile's: one of
// the Clusterfile with the same name replaces the image's.
func mergePlugins(image, fromClusterfile []clusterfile.Plugin) []clusterfile.Plugin {
	out := slices.Clone(fromClusterfile)
	for _, p := range image {
		if !slices.ContainsFunc(fromClusterfile, func(q clusterfile.Plugin) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	return out
}

// imagePlugins reads the Plugin documents of an image's plugins/.
func imagePlugins(rootfs string) ([]clusterfile.Plugin, error) {
	files, _ := filepath.Glob(filepath.Join(rootfs, layout.ImagePlugins, "*.y*ml"))
	sort.Strings(files)
	var out []clusterfile.Plugin
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ps, err := clusterfile.ParsePlugins(layout.ImagePlugins+"/"+filepath.Base(f), data)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		out = append(out, ps...)
	}
	return out, nil
}

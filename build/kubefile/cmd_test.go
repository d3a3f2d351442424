package kubefile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// hoistParent is a hoist image whose CMD is one command, and whose CMDS
// add one more: children inherit the first only.
func hoistParent() *metadata.Metadata {
	m := metadata.New(metadata.TypeCluster)
	m.Launch.Cmd = []string{"kubectl apply -f etc/cni.yaml"}
	m.Launch.Cmds = []string{"kubectl apply -f etc/cni.yaml", "kubectl get nodes"}
	return m
}

// TestCmd: CMD is sealer's cluster command for every base, recorded in
// launch.cmds (what runs) and launch.cmd (what a child inherits), and kept
// in the Dockerfile, so that the image config has docker's CMD too.
func TestCmd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kf       string
		ctx      map[string]string
		opts     Options
		cmd      []string // launch.cmd
		cmds     []string // launch.cmds
		apps     []string // launch.apps
		warnings []string
	}{
		{
			name: "FROM scratch with only COPY, shell form",
			kf:   "FROM scratch\nCOPY manifests/ manifests/\nCMD kubectl apply -f manifests/\n",
			ctx:  map[string]string{"manifests/a.yaml": "kind: Namespace\n"},
			cmd:  []string{"kubectl apply -f manifests/"},
			cmds: []string{"kubectl apply -f manifests/"},
		},
		{
			name: "JSON form: each element a command",
			kf:   "FROM scratch\nCMD [\"kubectl apply -f a.yaml\", \"kubectl get pods\"]\n",
			cmd:  []string{"kubectl apply -f a.yaml", "kubectl get pods"},
			cmds: []string{"kubectl apply -f a.yaml", "kubectl get pods"},
		},
		{
			name: "several CMD lines all run, in order",
			kf:   "FROM scratch\nCMD a\nRUN true\nCMD [\"b\"]\n",
			cmd:  []string{"a", "b"},
			cmds: []string{"a", "b"},
		},
		{
			name: "a shell form that starts with [ is one command",
			kf:   "FROM scratch\nCMD [ -f x ] && kubectl apply -f x\n",
			cmd:  []string{"[ -f x ] && kubectl apply -f x"},
			cmds: []string{"[ -f x ] && kubectl apply -f x"},
		},
		{
			name: "with cluster instructions",
			kf:   "FROM scratch\nAPP web web.yaml\nCMD kubectl -n web get pods\n",
			ctx:  map[string]string{"web.yaml": "kind: Namespace\n"},
			cmd:  []string{"kubectl -n web get pods"},
			cmds: []string{"kubectl -n web get pods"},
		},
		{
			name: "CMD with LAUNCH: the apps, then the commands",
			kf:   "FROM scratch\nAPP web web.yaml\nCMD kubectl -n web get pods\nLAUNCH [\"web\"]\n",
			ctx:  map[string]string{"web.yaml": "kind: Namespace\n"},
			cmd:  []string{"kubectl -n web get pods"},
			cmds: []string{"kubectl -n web get pods"},
			apps: []string{"web"},
		},
		{
			name: "CMD with CMDS: CMD first, only CMD inherited",
			kf:   "FROM scratch\nCMDS [\"kubectl get nodes\"]\nCMD kubectl get ns\n",
			cmd:  []string{"kubectl get ns"},
			cmds: []string{"kubectl get ns", "kubectl get nodes"},
		},
		{
			name: "FROM a hoist image with a CMD, child without: inherited",
			kf:   "FROM acme/base:v1\nCOPY a.yaml manifests/\n",
			ctx:  map[string]string{"a.yaml": "kind: Namespace\n"},
			opts: Options{Parent: hoistParent()},
			cmd:  []string{"kubectl apply -f etc/cni.yaml"},
			cmds: []string{"kubectl apply -f etc/cni.yaml"},
		},
		{
			name: "FROM a hoist image with a CMD, child with one: the base's first, as sealer",
			kf:   "FROM acme/base:v1\nCMD kubectl apply -f manifests/\n",
			opts: Options{Parent: hoistParent()},
			cmd:  []string{"kubectl apply -f etc/cni.yaml", "kubectl apply -f manifests/"},
			cmds: []string{"kubectl apply -f etc/cni.yaml", "kubectl apply -f manifests/"},
		},
		{
			name: "CMD [] drops the base's CMD: the child overrides it",
			kf:   "FROM acme/base:v1\nCMD []\nCMD [\"kubectl apply -f manifests/\"]\n",
			opts: Options{Parent: hoistParent()},
			cmd:  []string{"kubectl apply -f manifests/"},
			cmds: []string{"kubectl apply -f manifests/"},
		},
		{
			name: "an app image runs its own CMD only, as sealer",
			kf:   "FROM acme/base:v1\nCMD kubectl apply -f manifests/\n",
			opts: Options{Parent: hoistParent(), Type: metadata.TypeApp},
			cmd:  []string{"kubectl apply -f manifests/"},
			cmds: []string{"kubectl apply -f manifests/"},
		},
		{
			name: "an app image without CMD runs none of the base's",
			kf:   "FROM acme/base:v1\nCOPY a.yaml manifests/\n",
			ctx:  map[string]string{"a.yaml": "kind: Namespace\n"},
			opts: Options{Parent: hoistParent(), Type: metadata.TypeApp},
			cmd:  []string{},
			cmds: []string{},
		},
		{
			name:     "the base's command again runs once, as sealer",
			kf:       "FROM acme/base:v1\nCMD kubectl apply -f etc/cni.yaml\nCMD x\nCMD x\n",
			opts:     Options{Parent: hoistParent()},
			cmd:      []string{"kubectl apply -f etc/cni.yaml", "x"},
			cmds:     []string{"kubectl apply -f etc/cni.yaml", "x"},
			warnings: []string{"Kubefile:2: warning: CMD kubectl apply -f etc/cni.yaml: already run by the base image's CMD; it runs once, as in sealer", "Kubefile:4: warning: CMD x: already run by line 3; it runs once, as in sealer"},
		},
		{
			name: "stages: a stage built FROM another inherits its CMD; other stages' CMD do not count",
			kf:   "FROM scratch AS base\nCMD a\nFROM scratch AS other\nCMD not-this\nFROM base\nCMD b\n",
			cmd:  []string{"a", "b"},
			cmds: []string{"a", "b"},
		},
		{
			name: "a plain Dockerfile with an ENTRYPOINT: CMD is still the cluster command",
			kf:   "FROM scratch\nENTRYPOINT [\"/bin/app\"]\nCMD [\"--serve\"]\n",
			cmd:  []string{"--serve"},
			cmds: []string{"--serve"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustParse(t, tc.kf, tc.ctx, tc.opts)
			l := plan.Metadata.Launch
			if !reflect.DeepEqual(l.Cmd, tc.cmd) || !reflect.DeepEqual(l.Cmds, tc.cmds) {
				t.Errorf("launch.cmd %q, launch.cmds %q; want %q, %q", l.Cmd, l.Cmds, tc.cmd, tc.cmds)
			}
			if tc.apps == nil {
				tc.apps = []string{}
			}
			if !reflect.DeepEqual(l.Apps, tc.apps) {
				t.Errorf("launch.apps = %q, want %q", l.Apps, tc.apps)
			}
			if !reflect.DeepEqual(plan.Warnings, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", plan.Warnings, tc.warnings)
			}
			// Docker's CMD stays for buildah: the line is not rewritten.
			for _, line := range strings.Split(tc.kf, "\n") {
				if strings.HasPrefix(line, "CMD ") && !strings.Contains(plan.Dockerfile, "\n"+line+"\n") {
					t.Errorf("%s is not in the Dockerfile:\n%s", line, plan.Dockerfile)
				}
			}
			if err := plan.Metadata.Validate(); err != nil {
				t.Error(err)
			}
			assertBuildahAccepts(t, plan.Dockerfile)
		})
	}
}

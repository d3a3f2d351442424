package kubefile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// TestSealerLayout: what COPY and ADD put in sealer's application/apps/
// goes to /apps/, and the folders there are apps.
func TestSealerLayout(t *testing.T) {
	web := map[string]string{"web/deploy.yaml": "kind: Deployment\n", "web/svc.yaml": "kind: Service\n"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for _, x := range []map[string]string{web, extra} {
			for k, v := range x {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name       string
		kf         string
		ctx        map[string]string
		opts       Options
		dockerfile string // a part of the Dockerfile
		apps       []metadata.App
		files      map[string][]string
		warnings   []string
	}{
		{
			name:       "destination in an app's folder",
			kf:         "FROM scratch\nCOPY web application/apps/web/\n",
			ctx:        web,
			dockerfile: "# hoist: COPY web application/apps/web/\nCOPY web /apps/web/\n",
			apps:       []metadata.App{{Name: "web", Type: "manifests", Files: []string{"apps/web/"}, Cmds: []string{}, Env: map[string]string{}}},
			files:      map[string][]string{"web": {"apps/web/deploy.yaml", "apps/web/svc.yaml"}},
		},
		{
			name:       "relative to WORKDIR, JSON form, no trailing slash",
			kf:         "FROM scratch\nWORKDIR /application\nCOPY [\"web\", \"apps/web\"]\n",
			ctx:        web,
			dockerfile: "COPY [\"web\", \"/apps/web\"]\n",
			apps:       []metadata.App{{Name: "web", Type: "manifests", Files: []string{"apps/web/"}, Cmds: []string{}, Env: map[string]string{}}},
		},
		{
			name:       "files of an app, APPCMDS and LAUNCH naming it",
			kf:         "FROM scratch\nCOPY install.sh tools.tar /application/apps/tools/\nAPPCMDS tools [\"sh install.sh\"]\nLAUNCH [\"tools\"]\n",
			ctx:        map[string]string{"install.sh": "#!/bin/sh\n", "tools.tar": "x"},
			dockerfile: "COPY install.sh tools.tar /apps/tools/\n",
			apps:       []metadata.App{{Name: "tools", Type: "shell", Files: []string{"apps/tools/install.sh", "apps/tools/tools.tar"}, Cmds: []string{"sh install.sh"}, Env: map[string]string{}}},
		},
		{
			name:       "the folder of every app: each folder in it is an app",
			kf:         "FROM scratch\nCOPY apps/ application/apps/\n",
			ctx:        map[string]string{"apps/web/a.yaml": "kind: Namespace\n", "apps/setup/run.sh": "#!/bin/sh\n", "apps/README": "x"},
			dockerfile: "COPY apps/ /apps/\n",
			apps: []metadata.App{
				{Name: "setup", Type: "shell", Files: []string{"apps/setup/"}, Cmds: []string{}, Env: map[string]string{}},
				{Name: "web", Type: "manifests", Files: []string{"apps/web/"}, Cmds: []string{}, Env: map[string]string{}},
			},
		},
		{
			name:       "the build context holds sealer's layout: COPY . .",
			kf:         "FROM scratch\nCOPY . .\n",
			ctx:        map[string]string{"application/apps/web/a.yaml": "kind: Namespace\n", "etc/x.conf": "x"},
			dockerfile: "# hoist: COPY . .\nCOPY --exclude=application/apps . .\nCOPY [\"application/apps\", \"/apps/\"]\n",
			apps:       []metadata.App{{Name: "web", Type: "manifests", Files: []string{"apps/web/"}, Cmds: []string{}, Env: map[string]string{}}},
			files:      map[string][]string{"web": {"apps/web/a.yaml"}},
		},
		{
			name:       "the context's application folder, flags kept",
			kf:         "FROM scratch\nCOPY --chown=0:0 application /application\n",
			ctx:        map[string]string{"application/apps/web/a.yaml": "kind: Namespace\n"},
			dockerfile: "COPY --exclude=application/apps --chown=0:0 application /application\nCOPY --chown=0:0 [\"application/apps\", \"/apps/\"]\n",
			apps:       []metadata.App{{Name: "web", Type: "manifests", Files: []string{"apps/web/"}, Cmds: []string{}, Env: map[string]string{}}},
		},
		{
			name:       "files added to an app APP declares: its type stays",
			kf:         "FROM scratch\nAPP web local://web\nCOPY values.txt application/apps/web/extra/\n",
			ctx:        with(map[string]string{"values.txt": "x"}),
			dockerfile: "COPY values.txt /apps/web/extra/\n",
			apps:       []metadata.App{{Name: "web", Type: "manifests", Files: []string{"apps/web/"}, Cmds: []string{}, Env: map[string]string{}}},
			files:      map[string][]string{"web": {"apps/web/deploy.yaml", "apps/web/extra/values.txt", "apps/web/svc.yaml"}},
		},
		{
			name:       "an app of the base image gets files, not a new app",
			kf:         "FROM acme/base:v1\nCOPY values.txt application/apps/base-app/\n",
			ctx:        map[string]string{"values.txt": "x"},
			opts:       Options{Parent: &metadata.Metadata{SchemaVersion: metadata.SchemaVersion, Type: "cluster", Apps: []metadata.App{{Name: "base-app", Type: "helm", Files: []string{"apps/base-app/"}}}}},
			dockerfile: "COPY values.txt /apps/base-app/\n",
			apps:       []metadata.App{{Name: "base-app", Type: "helm", Files: []string{"apps/base-app/"}}},
		},
		{
			name:       "${ARCH} in a moved COPY",
			kf:         "FROM scratch\nCOPY bin/${ARCH}/ application/apps/tools/\nAPPCMDS tools [\"./tool\"]\n",
			ctx:        map[string]string{"bin/amd64/tool": "x"},
			dockerfile: "COPY bin/amd64/ /apps/tools/\n",
			apps:       []metadata.App{{Name: "tools", Type: "shell", Files: []string{"apps/tools/"}, Cmds: []string{"./tool"}, Env: map[string]string{}}},
		},
		{
			name:       "sources from a stage: moved, not an app",
			kf:         "FROM scratch AS build\nCOPY web /out/\nFROM scratch\nCOPY --from=build /out/ application/apps/web/\n",
			ctx:        web,
			dockerfile: "COPY --from=build /out/ /apps/web/\n",
			warnings:   []string{"Kubefile:4: warning: COPY puts application/apps/web/ in /apps/web/, where hoist keeps apps, but hoist cannot record web as an app: its sources come from build, not from the build context; declare it with APP web to launch it"},
		},
		{
			name:       "a folder that is no app name",
			kf:         "FROM scratch\nCOPY web application/apps/Web_1/\n",
			ctx:        web,
			dockerfile: "COPY web /apps/Web_1/\n",
			warnings:   []string{"Kubefile:2: warning: COPY puts application/apps/Web_1/ in /apps/Web_1/, where hoist keeps apps, but hoist cannot record Web_1 as an app: \"Web_1\" is not an app name (lower-case letters, digits and '-', at most 53 characters); declare it with APP Web_1 to launch it"},
		},
		{
			name:       "a folder hoist cannot launch is a warning, as sealer built it",
			kf:         "FROM scratch\nCOPY mixed application/apps/mixed/\n",
			ctx:        map[string]string{"mixed/a.yaml": "x: 1\n", "mixed/run.sh": "#!/bin/sh\n"},
			dockerfile: "COPY mixed /apps/mixed/\n",
			warnings:   []string{"Kubefile:2: warning: COPY puts application/apps/mixed/ in /apps/mixed/, but it is not an app hoist can launch: app mixed is not a Helm chart, nor only YAML manifests, nor only shell scripts (a.yaml, run.sh): say how to launch it with APPCMDS mixed [\"cmd\", ...]"},
		},
		{
			name:       "only a file below an app's folder",
			kf:         "FROM scratch\nCOPY values.txt application/apps/web/conf/\n",
			ctx:        map[string]string{"values.txt": "x"},
			dockerfile: "COPY values.txt /apps/web/conf/\n",
			warnings:   []string{"Kubefile:2: warning: COPY puts application/apps/web/ in /apps/web/, where hoist keeps apps, but hoist cannot record web as an app: only files below its folder are given; declare it with APP web to launch it"},
		},
		{
			name:       "a heredoc is left where it is",
			kf:         "FROM scratch\nCOPY <<EOF application/apps/web/a.yaml\nkind: Namespace\nEOF\n",
			dockerfile: "FROM scratch\nCOPY <<EOF application/apps/web/a.yaml\nkind: Namespace\nEOF\n",
			warnings:   []string{"Kubefile:2: warning: COPY writes to /application/apps/web/a.yaml, sealer's place for apps; hoist keeps apps in /apps/ and cannot move this one: write its destination as /apps/web/a.yaml"},
		},
		{
			name:       "another application folder is not sealer's",
			kf:         "FROM scratch\nWORKDIR /opt\nCOPY web application/apps/web/\n",
			ctx:        web,
			dockerfile: "FROM scratch\nWORKDIR /opt\nCOPY web application/apps/web/\n",
		},
		{
			name:       "after a WORKDIR hoist cannot read, relative destinations are left as they are",
			kf:         "FROM scratch\nWORKDIR ${DIR:?no DIR}\nCOPY web application/apps/web/\nWORKDIR /\nCOPY web application/apps/web2/\n",
			ctx:        web,
			dockerfile: "WORKDIR ${DIR:?no DIR}\nCOPY web application/apps/web/\nWORKDIR /\n# hoist: COPY web application/apps/web2/\nCOPY web /apps/web2/\n",
			apps:       []metadata.App{{Name: "web2", Type: "manifests", Files: []string{"apps/web2/"}, Cmds: []string{}, Env: map[string]string{}}},
		},
		{
			name:       "a builder stage keeps its paths",
			kf:         "FROM scratch AS build\nCOPY web application/apps/web/\nFROM scratch\nCOPY --from=build /application/apps/web/ /srv/\n",
			ctx:        web,
			dockerfile: "FROM scratch AS build\nCOPY web application/apps/web/\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustParse(t, tc.kf, tc.ctx, tc.opts)
			if !strings.Contains(plan.Dockerfile, tc.dockerfile) {
				t.Errorf("Dockerfile lacks %q:\n%s", tc.dockerfile, plan.Dockerfile)
			}
			if tc.apps == nil {
				tc.apps = []metadata.App{}
			}
			if !reflect.DeepEqual(plan.Metadata.Apps, tc.apps) {
				t.Errorf("apps:\n got %+v\nwant %+v", plan.Metadata.Apps, tc.apps)
			}
			for name, want := range tc.files {
				if !reflect.DeepEqual(plan.AppFiles[name], want) {
					t.Errorf("files of %s = %q, want %q", name, plan.AppFiles[name], want)
				}
			}
			if !reflect.DeepEqual(plan.Warnings, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", plan.Warnings, tc.warnings)
			}
			assertBuildahAccepts(t, plan.Dockerfile)
		})
	}
}

// TestSourcesGiveTheSameFile: as in sealer, an app's sources are copied in
// order and a later one replaces what an earlier one gave (sealer's e2e
// fixture build_with_appcmds has an install.sh both beside the Kubefile
// and in a folder given after it).
func TestSourcesGiveTheSameFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kf      string
		ctx     map[string]string
		files   []string
		warning string
	}{
		{
			name:    "the same file",
			kf:      "FROM scratch\nAPP mixed local://setup.sh local://more\nAPPCMDS mixed [\"sh setup.sh\"]\n",
			ctx:     map[string]string{"setup.sh": "echo first\n", "more/setup.sh": "echo second\n"},
			files:   []string{"apps/mixed/setup.sh"},
			warning: "Kubefile:2: warning: app mixed: local://more replaces apps/mixed/setup.sh from local://setup.sh (the later source wins, as with COPY and in sealer)",
		},
		{
			name:    "a folder where a file was",
			kf:      "FROM scratch\nAPP conf local://conf local://dir\n",
			ctx:     map[string]string{"conf": "a: 1\n", "dir/conf/b.yaml": "b: 1\n"},
			files:   []string{"apps/conf/conf/b.yaml"},
			warning: "Kubefile:2: warning: app conf: local://dir replaces apps/conf/conf from local://conf (the later source wins, as with COPY and in sealer)",
		},
		{
			name:    "a file where a folder was",
			kf:      "FROM scratch\nAPP conf local://dir local://other\n",
			ctx:     map[string]string{"dir/conf.yaml/a.yaml": "a: 1\n", "dir/conf.yaml/b.yaml": "b: 1\n", "dir/c.yaml": "c: 1\n", "other/conf.yaml": "x: 1\n", "other/d.yaml": "d: 1\n"},
			files:   []string{"apps/conf/c.yaml", "apps/conf/conf.yaml", "apps/conf/d.yaml"},
			warning: "Kubefile:2: warning: app conf: local://other replaces apps/conf/conf.yaml/a.yaml, apps/conf/conf.yaml/b.yaml from local://dir (the later source wins, as with COPY and in sealer)",
		},
		{
			name:    "two files of one name",
			kf:      "FROM scratch\nAPP web a/x.yaml b/x.yaml\n",
			ctx:     map[string]string{"a/x.yaml": "x: 1\n", "b/x.yaml": "x: 2\n"},
			files:   []string{"apps/web/x.yaml"},
			warning: "Kubefile:2: warning: app web: b/x.yaml replaces apps/web/x.yaml from a/x.yaml (the later source wins, as with COPY and in sealer)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustParse(t, tc.kf, tc.ctx, Options{})
			name := plan.Metadata.Apps[0].Name
			if !reflect.DeepEqual(plan.AppFiles[name], tc.files) {
				t.Errorf("files = %q, want %q", plan.AppFiles[name], tc.files)
			}
			if len(plan.Warnings) != 1 || plan.Warnings[0] != tc.warning {
				t.Errorf("warnings:\n got %q\nwant %q", plan.Warnings, tc.warning)
			}
		})
	}
}

// TestSealerLayoutSources: a dry run finds the images of an app from its
// sources, so those of a COPY into the app's folder count too.
func TestSealerLayoutSources(t *testing.T) {
	plan := mustParse(t, "FROM scratch\nAPP web local://web\nCOPY more.yaml application/apps/web/\nCOPY . .\n", map[string]string{
		"web/a.yaml": "kind: Namespace\n", "more.yaml": "kind: Deployment\n", "application/apps/db/db.yaml": "kind: StatefulSet\n",
	}, Options{})
	for name, want := range map[string][]string{"web": {"web", "more.yaml"}, "db": {"application/apps/db"}} {
		var got []string
		for _, abs := range plan.AppSources[name] {
			got = append(got, strings.TrimPrefix(abs, plan.ContextDir+"/"))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sources of %s = %q, want %q", name, got, want)
		}
	}
}

package kubefile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// files makes a build context from a map of path to content. A content
// starting with "->" makes a symlink to the rest.
func files(t *testing.T, m map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range m {
		full := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const chartYAML = "apiVersion: v2\nname: web\nversion: 0.1.0\n"

// chartTgz is a chart archive as `helm package` writes it.
func chartTgz(t *testing.T, top string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range map[string]string{
		top + "/Chart.yaml":  chartYAML,
		top + "/values.yaml": "a: 1\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	gz.Close()
	return buf.String()
}

func parseCtx(t *testing.T, kubefile string, ctx map[string]string, opts Options) (*Plan, error) {
	t.Helper()
	if ctx == nil {
		ctx = map[string]string{}
	}
	opts.ContextDir = files(t, ctx)
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	if opts.Platform == (Platform{}) {
		opts.Platform = Platform{OS: "linux", Arch: "amd64"}
	}
	return Parse("Kubefile", []byte(kubefile), opts)
}

func mustParse(t *testing.T, kubefile string, ctx map[string]string, opts Options) *Plan {
	t.Helper()
	plan, err := parseCtx(t, kubefile, ctx, opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return plan
}

func TestDockerfilePassesThroughUnchanged(t *testing.T) {
	for _, dir := range []string{"testdata/passthrough", "testdata/flask"} {
		t.Run(dir, func(t *testing.T) {
			name := filepath.Join(dir, "Kubefile")
			if _, err := os.Stat(name); err != nil {
				name = filepath.Join(dir, "Dockerfile")
			}
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := ParseFile(name, Options{ContextDir: dir, Platform: Platform{OS: "linux", Arch: "amd64"}})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Dockerfile != string(data) {
				t.Errorf("Dockerfile changed:\n--- got\n%s\n--- want\n%s", plan.Dockerfile, data)
			}
			if len(plan.Metadata.Apps) != 0 {
				t.Errorf("a plain Dockerfile got apps: %+v", plan.Metadata)
			}
			// CMD is the cluster command whatever the base: the final
			// stage's CMD runs at install, each JSON element a command.
			want := map[string][]string{"testdata/passthrough": {"--help"}, "testdata/flask": {"python", "app.py"}}[dir]
			if !reflect.DeepEqual(plan.Metadata.Launch.Cmds, want) || !reflect.DeepEqual(plan.Metadata.Launch.Cmd, want) {
				t.Errorf("launch = %+v, want cmds and cmd %q", plan.Metadata.Launch, want)
			}
			// buildah warns about the comment inside a continuation in
			// the passthrough file, and so must the plan.
			if dir == "testdata/passthrough" {
				if len(plan.Warnings) != 1 || !strings.HasPrefix(plan.Warnings[0], "testdata/passthrough/Kubefile:11: warning: empty or comment-only line") {
					t.Errorf("warnings: %v", plan.Warnings)
				}
			} else if len(plan.Warnings) != 0 {
				t.Errorf("warnings: %v", plan.Warnings)
			}
		})
	}
}

func TestFlaskEnvRecorded(t *testing.T) {
	plan, err := ParseFile("testdata/flask/Dockerfile", Options{ContextDir: "testdata/flask"})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Metadata.Env; !reflect.DeepEqual(got, map[string]string{"NAME": "World"}) {
		t.Errorf("env = %v", got)
	}
}

func TestPassthroughOnlyFinalStageEnv(t *testing.T) {
	plan, err := ParseFile("testdata/passthrough/Kubefile", Options{ContextDir: "testdata/passthrough"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Metadata.Env) != 0 {
		t.Errorf("the builder stage's ENV leaked into the image env: %v", plan.Metadata.Env)
	}
}

func TestSealerKubefile(t *testing.T) {
	plan, err := ParseFile("testdata/sealer/Kubefile", Options{ContextDir: "testdata/sealer"})
	if err != nil {
		t.Fatal(err)
	}
	m := plan.Metadata
	want := []metadata.App{
		{Name: "dashboard", Type: "manifests", Files: []string{"apps/dashboard/dashboard.yaml"}, Cmds: []string{}, Env: map[string]string{}},
		{Name: "tools", Type: "shell", Files: []string{"apps/tools/tools.tar"}, Cmds: []string{"tar xf tools.tar -C /usr/local/bin"}, Env: map[string]string{}},
		{Name: "calico", Type: "shell", Files: []string{"apps/calico/install.sh"}, Cmds: []string{}, Env: map[string]string{}},
	}
	if !reflect.DeepEqual(m.Apps, want) {
		t.Errorf("apps:\n got %+v\nwant %+v", m.Apps, want)
	}
	if !reflect.DeepEqual(m.CNI, []string{"calico"}) {
		t.Errorf("cni = %v", m.CNI)
	}
	if !reflect.DeepEqual(m.Launch, metadata.Launch{Apps: []string{"calico", "dashboard", "tools"}, Cmds: []string{"kubectl get nodes", "kubectl get pods -A"}, Cmd: []string{}}) {
		t.Errorf("launch = %+v", m.Launch)
	}
	if !strings.Contains(plan.Dockerfile, "# hoist: CNI calico local://calico/install.sh\nCOPY [\"calico/install.sh\", \"/apps/calico/\"]\n") {
		t.Errorf("no COPY for the CNI app:\n%s", plan.Dockerfile)
	}
}

func TestInstructions(t *testing.T) {
	chart := map[string]string{
		"charts/web/Chart.yaml":            chartYAML,
		"charts/web/values.yaml":           "replicas: 1\n",
		"charts/web/templates/deploy.yaml": "kind: Deployment\n",
	}
	tests := []struct {
		name  string
		kf    string
		ctx   map[string]string
		opts  Options
		check func(t *testing.T, p *Plan)
	}{
		{
			name: "APP helm chart directory",
			kf:   "FROM scratch\nAPP web local://charts/web\n",
			ctx:  chart,
			check: func(t *testing.T, p *Plan) {
				a := p.Metadata.App("web")
				if a == nil || a.Type != "helm" || !reflect.DeepEqual(a.Files, []string{"apps/web/"}) {
					t.Errorf("app = %+v", a)
				}
				want := []string{"apps/web/Chart.yaml", "apps/web/templates/deploy.yaml", "apps/web/values.yaml"}
				if !reflect.DeepEqual(p.AppFiles["web"], want) {
					t.Errorf("files = %v", p.AppFiles["web"])
				}
				if !strings.Contains(p.Dockerfile, "# hoist: APP web local://charts/web\nCOPY [\"charts/web\", \"/apps/web/\"]\n") {
					t.Errorf("Dockerfile:\n%s", p.Dockerfile)
				}
			},
		},
		{
			name: "APP bare path, lower case instruction",
			kf:   "FROM scratch\napp web charts/web\n",
			ctx:  chart,
			check: func(t *testing.T, p *Plan) {
				if a := p.Metadata.App("web"); a == nil || a.Type != "helm" {
					t.Errorf("app = %+v", a)
				}
			},
		},
		{
			name: "APP chart archive",
			kf:   "FROM scratch\nAPP web web-0.1.0.tgz\n",
			ctx:  map[string]string{"web-0.1.0.tgz": chartTgz(t, "web")},
			check: func(t *testing.T, p *Plan) {
				a := p.Metadata.App("web")
				if a == nil || a.Type != "helm" || !reflect.DeepEqual(a.Files, []string{"apps/web/web-0.1.0.tgz"}) {
					t.Errorf("app = %+v", a)
				}
			},
		},
		{
			name: "APP manifests from files and a directory",
			kf:   "FROM scratch\nAPP mon a.yaml local://more\n",
			ctx:  map[string]string{"a.yaml": "kind: Namespace\n", "more/b.yml": "kind: ConfigMap\n", "more/c.yaml.tmpl": "kind: Secret\n"},
			check: func(t *testing.T, p *Plan) {
				a := p.Metadata.App("mon")
				if a == nil || a.Type != "manifests" || !reflect.DeepEqual(a.Files, []string{"apps/mon/a.yaml", "apps/mon/"}) {
					t.Errorf("app = %+v", a)
				}
				want := []string{"apps/mon/a.yaml", "apps/mon/b.yml", "apps/mon/c.yaml.tmpl"}
				if !reflect.DeepEqual(p.AppFiles["mon"], want) {
					t.Errorf("files = %v", p.AppFiles["mon"])
				}
				if !strings.Contains(p.Dockerfile, "COPY [\"a.yaml\", \"more\", \"/apps/mon/\"]\n") {
					t.Errorf("Dockerfile:\n%s", p.Dockerfile)
				}
			},
		},
		{
			name: "APP shell scripts",
			kf:   "FROM scratch\nAPP setup install.sh\n",
			ctx:  map[string]string{"install.sh": "#!/bin/sh\n"},
			check: func(t *testing.T, p *Plan) {
				if a := p.Metadata.App("setup"); a == nil || a.Type != "shell" {
					t.Errorf("app = %+v", a)
				}
			},
		},
		{
			name: "APP other files with APPCMDS before it",
			kf:   "FROM scratch\nAPPCMDS tools [\"tar xf tools.tar\", \"./setup\"]\nAPP tools tools.tar\n",
			ctx:  map[string]string{"tools.tar": "x"},
			check: func(t *testing.T, p *Plan) {
				a := p.Metadata.App("tools")
				if a == nil || a.Type != "shell" || !reflect.DeepEqual(a.Cmds, []string{"tar xf tools.tar", "./setup"}) {
					t.Errorf("app = %+v", a)
				}
			},
		},
		{
			name: "APPCMDS plain command",
			kf:   "FROM scratch\nAPP web web.yaml\nAPPCMDS web kubectl apply -f web.yaml\n",
			ctx:  map[string]string{"web.yaml": "x: 1\n"},
			check: func(t *testing.T, p *Plan) {
				if a := p.Metadata.App("web"); !reflect.DeepEqual(a.Cmds, []string{"kubectl apply -f web.yaml"}) {
					t.Errorf("cmds = %v", a.Cmds)
				}
			},
		},
		{
			name: "APPENV quoted, expanded, merged",
			kf:   "FROM scratch\nARG TAG=1.2\nAPP web web.yaml\nAPPENV web image.tag=$TAG name=\"my web\"\nAPPENV web replicas=3\n",
			ctx:  map[string]string{"web.yaml": "x: 1\n"},
			check: func(t *testing.T, p *Plan) {
				want := map[string]string{"image.tag": "1.2", "name": "my web", "replicas": "3"}
				if a := p.Metadata.App("web"); !reflect.DeepEqual(a.Env, want) {
					t.Errorf("env = %v", a.Env)
				}
			},
		},
		{
			name: "LAUNCH word list",
			kf:   "FROM scratch\nAPP a a.yaml\nAPP b b.yaml\nLAUNCH b a\n",
			ctx:  map[string]string{"a.yaml": "x: 1\n", "b.yaml": "x: 1\n"},
			check: func(t *testing.T, p *Plan) {
				if !reflect.DeepEqual(p.Metadata.Launch.Apps, []string{"b", "a"}) {
					t.Errorf("launch = %v", p.Metadata.Launch.Apps)
				}
			},
		},
		{
			name: "LAUNCH JSON with continuation lines",
			kf:   "FROM scratch\nAPP a a.yaml\nAPP b b.yaml\nLAUNCH [\"a\", \\\n  \"b\"]\nRUN true\n",
			ctx:  map[string]string{"a.yaml": "x: 1\n", "b.yaml": "x: 1\n"},
			check: func(t *testing.T, p *Plan) {
				if !reflect.DeepEqual(p.Metadata.Launch.Apps, []string{"a", "b"}) {
					t.Errorf("launch = %v", p.Metadata.Launch.Apps)
				}
				if !strings.Contains(p.Dockerfile, "# hoist: LAUNCH [\"a\", \\\n# hoist:   \"b\"]\nRUN true\n") {
					t.Errorf("Dockerfile:\n%s", p.Dockerfile)
				}
			},
		},
		{
			name: "LAUNCH an app of the base image",
			kf:   "FROM acme/base:v1\nLAUNCH base-app\n",
			opts: Options{Parent: &metadata.Metadata{SchemaVersion: "v1alpha1", Type: "cluster",
				Apps: []metadata.App{{Name: "base-app", Type: "helm", Files: []string{"apps/base-app/"}}},
				Env:  map[string]string{"FromParent": "yes"}, CNI: []string{"base-app"},
				Launch: metadata.Launch{Apps: []string{"base-app"}, Cmds: []string{"not inherited"}}}},
			check: func(t *testing.T, p *Plan) {
				m := p.Metadata
				if m.App("base-app") == nil || !reflect.DeepEqual(m.CNI, []string{"base-app"}) || m.Env["FromParent"] != "yes" {
					t.Errorf("not inherited: %+v", m)
				}
				if !reflect.DeepEqual(m.Launch.Apps, []string{"base-app"}) || len(m.Launch.Cmds) != 0 {
					t.Errorf("launch = %+v", m.Launch)
				}
			},
		},
		{
			name: "CMDS accumulate",
			kf:   "FROM scratch\nCMDS [\"a\", \"b\"]\nCMDS c --flag\n",
			check: func(t *testing.T, p *Plan) {
				if !reflect.DeepEqual(p.Metadata.Launch.Cmds, []string{"a", "b", "c --flag"}) {
					t.Errorf("cmds = %v", p.Metadata.Launch.Cmds)
				}
			},
		},
		{
			name: "CNI and CSI",
			kf:   "FROM scratch\nCNI calico calico.yaml\nCSI local-path local-path.yaml\n",
			ctx:  map[string]string{"calico.yaml": "x: 1\n", "local-path.yaml": "x: 1\n"},
			check: func(t *testing.T, p *Plan) {
				m := p.Metadata
				if !reflect.DeepEqual(m.CNI, []string{"calico"}) || !reflect.DeepEqual(m.CSI, []string{"local-path"}) {
					t.Errorf("cni %v csi %v", m.CNI, m.CSI)
				}
				if m.App("calico") == nil || m.App("local-path") == nil {
					t.Errorf("CNI/CSI are not apps: %+v", m.Apps)
				}
			},
		},
		{
			name: "KUBEVERSION range",
			kf:   "FROM scratch\nKUBEVERSION \">=1.28 <1.38\"\n",
			check: func(t *testing.T, p *Plan) {
				if p.Metadata.KubeVersion != ">=1.28 <1.38" {
					t.Errorf("kubeVersion = %q", p.Metadata.KubeVersion)
				}
			},
		},
		{
			name: "IMAGE normalised",
			kf:   "FROM scratch\nIMAGE nginx quay.io/x/y:1 registry.corp:5000/a/b@sha256:" + strings.Repeat("a", 64) + "\n",
			check: func(t *testing.T, p *Plan) {
				var got []string
				for _, i := range p.Images {
					got = append(got, i.Ref)
					if i.Line != 2 {
						t.Errorf("line = %d", i.Line)
					}
				}
				want := []string{"docker.io/library/nginx:latest", "quay.io/x/y:1", "registry.corp:5000/a/b@sha256:" + strings.Repeat("a", 64)}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("images = %v", got)
				}
				if len(p.Metadata.Images) != 0 {
					t.Errorf("metadata images filled before discovery: %v", p.Metadata.Images)
				}
			},
		},
		{
			name: "ENV recorded from the final stage and the stage it derives from",
			kf:   "FROM scratch AS base\nENV A=1 B=x\nFROM scratch AS other\nENV OTHER=1\nFROM base\nARG V=2\nENV B=$A$V C=\"with space\"\n",
			check: func(t *testing.T, p *Plan) {
				want := map[string]string{"A": "1", "B": "12", "C": "with space"}
				if !reflect.DeepEqual(p.Metadata.Env, want) {
					t.Errorf("env = %v", p.Metadata.Env)
				}
				if p.Base != "" || p.HasRun {
					t.Errorf("base %q, run %v", p.Base, p.HasRun)
				}
			},
		},
		{
			name: "ARCH in APP and COPY sources per platform",
			kf:   "FROM scratch\nCOPY bin/${ARCH}/ bin/\nAPP tools local://tools/$ARCH\nAPPCMDS tools install\n",
			ctx:  map[string]string{"bin/arm64/kubectl": "x", "tools/arm64/tool": "x"},
			opts: Options{Platform: Platform{OS: "linux", Arch: "arm64"}},
			check: func(t *testing.T, p *Plan) {
				if !strings.Contains(p.Dockerfile, "COPY bin/arm64/ bin/\n") || !strings.Contains(p.Dockerfile, "COPY [\"tools/arm64\", \"/apps/tools/\"]") {
					t.Errorf("Dockerfile:\n%s", p.Dockerfile)
				}
			},
		},
		{
			name: "ARCH declared by the user is theirs",
			kf:   "FROM scratch\nARG ARCH=x86\nCOPY bin/${ARCH}/ bin/\nAPP tools local://tools/$ARCH\nAPPCMDS tools install\n",
			ctx:  map[string]string{"tools/x86/tool": "x"},
			check: func(t *testing.T, p *Plan) {
				if !strings.Contains(p.Dockerfile, "COPY bin/${ARCH}/ bin/\n") || !strings.Contains(p.Dockerfile, "COPY [\"tools/x86\", \"/apps/tools/\"]") {
					t.Errorf("Dockerfile:\n%s", p.Dockerfile)
				}
			},
		},
		{
			name: "TARGETARCH when declared",
			kf:   "FROM scratch\nARG TARGETARCH\nAPP tools local://tools/${TARGETARCH}\nAPPCMDS tools install\n",
			ctx:  map[string]string{"tools/amd64/tool": "x"},
			check: func(t *testing.T, p *Plan) {
				if !strings.Contains(p.Dockerfile, "COPY [\"tools/amd64\", \"/apps/tools/\"]") {
					t.Errorf("Dockerfile:\n%s", p.Dockerfile)
				}
			},
		},
		{
			name: "build args consumed and not",
			kf:   "ARG BASE=scratch\nFROM $BASE\nARG VERSION=1\nENV V=$VERSION\n",
			opts: Options{BuildArgs: map[string]string{"VERSION": "2", "UNUSED": "x"}},
			check: func(t *testing.T, p *Plan) {
				if !reflect.DeepEqual(p.BuildArgs, map[string]string{"VERSION": "2"}) {
					t.Errorf("build args = %v", p.BuildArgs)
				}
				if p.Base != "" {
					t.Errorf("base = %q", p.Base)
				}
				if p.Metadata.Env["V"] != "2" {
					t.Errorf("env = %v", p.Metadata.Env)
				}
				if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "not consumed: UNUSED") {
					t.Errorf("warnings = %v", p.Warnings)
				}
			},
		},
		{
			name: "ignore file applies to app files",
			kf:   "FROM scratch\nAPP web web\n",
			ctx:  map[string]string{".dockerignore": "**/*.md\n", "web/a.yaml": "x: 1\n", "web/README.md": "x"},
			check: func(t *testing.T, p *Plan) {
				if !reflect.DeepEqual(p.AppFiles["web"], []string{"apps/web/a.yaml"}) {
					t.Errorf("files = %v", p.AppFiles["web"])
				}
				if a := p.Metadata.App("web"); a.Type != "manifests" {
					t.Errorf("type = %s", a.Type)
				}
			},
		},
		{
			name: "symlink inside the context is fine",
			kf:   "FROM scratch\nAPP web web\n",
			ctx:  map[string]string{"shared/a.yaml": "x: 1\n", "web/a.yaml": "->../shared/a.yaml"},
			check: func(t *testing.T, p *Plan) {
				if !reflect.DeepEqual(p.AppFiles["web"], []string{"apps/web/a.yaml"}) {
					t.Errorf("files = %v", p.AppFiles["web"])
				}
			},
		},
		{
			name: "base through stages and build args",
			kf:   "ARG REG=quay.io\nFROM $REG/acme/base:v1 AS base\nRUN true\nFROM base\n",
			check: func(t *testing.T, p *Plan) {
				if p.Base != "quay.io/acme/base:v1" || !p.HasRun {
					t.Errorf("base %q, run %v", p.Base, p.HasRun)
				}
			},
		},
		{
			name: "type app",
			kf:   "FROM scratch\n",
			opts: Options{Type: "app"},
			check: func(t *testing.T, p *Plan) {
				if p.Metadata.Type != "app" {
					t.Errorf("type = %s", p.Metadata.Type)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustParse(t, tc.kf, tc.ctx, tc.opts)
			tc.check(t, plan)
			assertBuildahAccepts(t, plan.Dockerfile)
		})
	}
}

func TestErrors(t *testing.T) {
	ok := map[string]string{"web.yaml": "x: 1\n", "b.yaml": "x: 1\n", "empty/": ""}
	tests := []struct {
		name string
		kf   string
		ctx  map[string]string
		opts Options
		line int
		want string
	}{
		{"typo", "FORM debian\n", nil, Options{}, 1, "unknown instruction FORM (did you mean FROM?)"},
		{"typo of a cluster instruction", "FROM scratch\nLAUNHC a\n", nil, Options{}, 2, "did you mean LAUNCH?"},
		{"unknown, no suggestion", "FROM scratch\n\nXYZZYQ a\n", nil, Options{}, 3, "unknown instruction XYZZYQ\n"},
		{"empty", "", nil, Options{}, 1, "empty"},
		{"only comments", "# nothing\n\n   \n# here\n", nil, Options{}, 1, "empty"},
		{"binary", "FROM scratch\nRUN a\x00b\n", nil, Options{}, 2, "binary content"},
		{"not UTF-8", "FROM scratch\n\nRUN \xff\xfe\n", nil, Options{}, 3, "binary content"},
		{"no FROM", "\nRUN true\n", nil, Options{}, 2, "no FROM"},
		{"LAUNCH of an unknown app", "FROM scratch\nAPP web web.yaml\nLAUNCH [\"wbe\"]\n", ok, Options{}, 3, "LAUNCH names app wbe, which is not defined (no APP, CNI or CSI wbe) (did you mean web?)"},
		{"APPCMDS of an unknown app", "FROM scratch\nAPPCMDS nope [\"x\"]\n", nil, Options{}, 2, "APPCMDS names app nope"},
		{"APPENV of an unknown app", "FROM scratch\nAPPENV nope a=b\n", nil, Options{}, 2, "APPENV names app nope"},
		{"APPENV not K=V", "FROM scratch\nAPP web web.yaml\nAPPENV web novalue\n", ok, Options{}, 3, "\"novalue\" is not KEY=VALUE"},
		{"APPCMDS twice", "FROM scratch\nAPP web web.yaml\nAPPCMDS web a\nAPPCMDS web b\n", ok, Options{}, 4, "given twice"},
		{"APPCMDS changes a base app", "FROM base\nAPPCMDS base-app x\n", nil, Options{Parent: &metadata.Metadata{Apps: []metadata.App{{Name: "base-app"}}}}, 2, "comes from the base image"},
		{"source outside with ..", "FROM scratch\nAPP web ../web.yaml\n", ok, Options{}, 2, "outside the build context"},
		{"source outside, cleaned", "FROM scratch\nAPP web local://a/../../x\n", ok, Options{}, 2, "outside the build context"},
		{"absolute source", "FROM scratch\nAPP web /etc/passwd\n", ok, Options{}, 2, "outside the build context"},
		{"symlink out", "FROM scratch\nAPP web link\n", map[string]string{"link": "->/etc"}, Options{}, 2, "symlink that leads outside"},
		{"relative symlink out", "FROM scratch\nAPP web link.yaml\n", map[string]string{"link.yaml": "->../../../../../../../etc/hostname"}, Options{}, 2, "symlink that leads outside"},
		{"symlink out inside a dir", "FROM scratch\nAPP web dir\n", map[string]string{"dir/a.yaml": "x: 1\n", "dir/b.yaml": "->../../b.yaml"}, Options{}, 2, "symlink that leads outside"},
		{"absolute symlink inside a dir", "FROM scratch\nAPP web dir\n", map[string]string{"dir/a.yaml": "x: 1\n", "dir/b.yaml": "->/etc/hostname"}, Options{}, 2, "absolute path"},
		{"missing source", "FROM scratch\nAPP web nope.yaml\n", ok, Options{}, 2, "nope.yaml: no such file or directory"},
		{"ignored source", "FROM scratch\nAPP web web.yaml\n", map[string]string{"web.yaml": "x", ".containerignore": "web.yaml\n"}, Options{}, 2, "excluded by the context's ignore file"},
		{"duplicate app", "FROM scratch\nAPP web web.yaml\n\nAPP web b.yaml\n", ok, Options{}, 4, "app web is defined twice (first at line 2)"},
		{"duplicate of a base app", "FROM base\nAPP base-app web.yaml\n", ok, Options{Parent: &metadata.Metadata{Apps: []metadata.App{{Name: "base-app"}}}}, 2, "already exists in the base image"},
		{"LAUNCH twice", "FROM scratch\nAPP web web.yaml\nLAUNCH web\nLAUNCH web\n", ok, Options{}, 4, "LAUNCH given twice (first at line 3)"},
		{"LAUNCH nothing", "FROM scratch\nLAUNCH []\n", nil, Options{}, 2, "LAUNCH names no app"},
		{"LAUNCH bad JSON", "FROM scratch\nLAUNCH [\"a\",\n", nil, Options{}, 2, "not a JSON array"},
		{"LAUNCH same app twice", "FROM scratch\nAPP web web.yaml\nLAUNCH web web\n", ok, Options{}, 3, "names app web twice"},
		{"LAUNCH with a flag", "FROM scratch\nLAUNCH --x web\n", nil, Options{}, 2, "LAUNCH takes no flags"},
		{"KUBEVERSION not a range", "FROM scratch\nKUBEVERSION latest\n", nil, Options{}, 2, "KUBEVERSION \"latest\" is not a version range"},
		{"KUBEVERSION garbage", "FROM scratch\nKUBEVERSION >=1.28 <<1.30\n", nil, Options{}, 2, "is not a version range"},
		{"KUBEVERSION empty", "FROM scratch\nKUBEVERSION\n", nil, Options{}, 2, "KUBEVERSION needs a version range"},
		{"KUBEVERSION twice", "FROM scratch\nKUBEVERSION >=1.28\nKUBEVERSION >=1.29\n", nil, Options{}, 3, "given twice"},
		{"APP without sources", "FROM scratch\nAPP web\n", nil, Options{}, 2, "needs a name and at least one source"},
		{"APP bad name", "FROM scratch\nAPP Web_1 web.yaml\n", ok, Options{}, 2, "name \"Web_1\""},
		{"APP http", "FROM scratch\nAPP web http://example.invalid/a.yaml\n", nil, Options{}, 2, "only local paths"},
		{"APP other scheme", "FROM scratch\nAPP web oci://example.invalid/a\n", nil, Options{}, 2, "only local paths"},
		{"APP flag after name", "FROM scratch\nAPP web https://example.invalid/a.tgz --checksum=sha256:00\n", nil, Options{}, 2, "flags go before the app name"},
		{"APP unknown flag", "FROM scratch\nAPP --chmod=755 web web.yaml\n", ok, Options{}, 2, "unknown flag --chmod"},
		{"APP checksum without https", "FROM scratch\nAPP --checksum=sha256:" + strings.Repeat("0", 64) + " web web.yaml\n", ok, Options{}, 2, "--checksum needs exactly one https:// source"},
		{"APP bad checksum", "FROM scratch\nAPP --checksum=md5:00 web https://example.invalid/a.tgz\n", nil, Options{}, 2, "want sha256:"},
		{"APP unknown content", "FROM scratch\nAPP tools tools.tar web.yaml\n", map[string]string{"tools.tar": "x", "web.yaml": "x: 1\n"}, Options{}, 2, "say how to launch it with APPCMDS tools"},
		{"APP mixed yaml and scripts", "FROM scratch\nAPP mix web.yaml run.sh\n", map[string]string{"run.sh": "x", "web.yaml": "x: 1\n"}, Options{}, 2, "not a Helm chart, nor only YAML"},
		{"APP empty directory", "FROM scratch\nAPP web empty\n", ok, Options{}, 2, "holds no files"},
		{"helm plus more", "FROM scratch\nAPP web chart web.yaml\n", map[string]string{"chart/Chart.yaml": chartYAML, "web.yaml": "x: 1\n"}, Options{}, 2, "a Helm app is one chart"},
		{"bad Chart.yaml", "FROM scratch\nAPP web chart\n", map[string]string{"chart/Chart.yaml": "apiVersion: v9\nname: x\nversion: 1\n"}, Options{}, 2, "chart/Chart.yaml: apiVersion \"v9\""},
		{"cluster instruction in a builder stage", "FROM scratch AS build\nAPP web web.yaml\nFROM scratch\n", ok, Options{}, 2, "must come after the last FROM"},
		{"cluster instruction before FROM", "ARG X=1\nCMDS [\"x\"]\nFROM scratch\n", nil, Options{}, 2, "must come after the last FROM"},
		{"CMDS empty", "FROM scratch\nCMDS\n", nil, Options{}, 2, "needs at least one command"},
		{"CMDS bad JSON", "FROM scratch\nCMDS [\"a\", 1]\n", nil, Options{}, 2, "not a JSON array of strings"},
		{"CMDS empty command", "FROM scratch\nCMDS [\"a\", \" \"]\n", nil, Options{}, 2, "an empty command"},
		{"IMAGE invalid", "FROM scratch\nIMAGE Nginx:latest\n", nil, Options{}, 2, "IMAGE \"Nginx:latest\" is not a valid image reference"},
		{"IMAGE empty", "FROM scratch\nIMAGE\n", nil, Options{}, 2, "IMAGE needs at least one"},
		{"unterminated heredoc", "FROM scratch\nRUN true\nRUN <<EOF\necho hi\n", nil, Options{}, 3, "unterminated heredoc"},
		{"FROM without image", "FROM\n", nil, Options{}, 1, "FROM needs a base image"},
		{"RUN before FROM", "ARG A=1\nRUN true\nFROM scratch\n", nil, Options{}, 2, "RUN before FROM: only ARG may come before the first FROM"},
		{"CMD before FROM", "CMD kubectl get pods\nFROM scratch\n", nil, Options{}, 1, "CMD before FROM: only ARG may come before the first FROM"},
		{"CMD without a command", "FROM scratch\nCMD\n", nil, Options{}, 2, "CMD needs a command, run on the first master at install"},
		{"CMD with a flag", "FROM scratch\nCMD --wait kubectl get pods\n", nil, Options{}, 2, "CMD takes no flags (got --wait): a command that starts with -- is written in JSON form, CMD [\"--wait ...\"]"},
		{"CMD with an empty command", "FROM scratch\nCMD [\"kubectl get pods\", \" \"]\n", nil, Options{}, 2, "CMD: an empty command (each element of CMD [...] is a command)"},
		{"CMD of a number", "FROM scratch\nRUN true\nCMD [\"a\", 1]\n", nil, Options{}, 3, "arrays must be comprised of strings only"},
		{"sealer base image", "FROM scratch AS files\nFROM docker.io/sealerio/kubernetes:v1.22.15\n", nil, Options{}, 2, "a sealer image (its name is in sealer's namespace)"},
		{"sealer base image by its labels", "FROM acme/old:v1\n", nil, Options{SealerBase: "its label io.sealer.version=v0.9.3 says sealer built it"}, 1, "Write FROM hoist.dev/kubernetes:<version>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := parseCtx(t, tc.kf, tc.ctx, tc.opts)
			if err == nil {
				t.Fatalf("no error; Dockerfile:\n%s", plan.Dockerfile)
			}
			var kerr *Error
			if !errors.As(err, &kerr) {
				t.Fatalf("error without a line: %v", err)
			}
			if kerr.Line != tc.line || kerr.File != "Kubefile" {
				t.Errorf("error at %s:%d, want line %d: %v", kerr.File, kerr.Line, tc.line, err)
			}
			msg := err.Error() + "\n"
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if !strings.HasPrefix(msg, "Kubefile:") {
				t.Errorf("error does not start with the file name: %q", msg)
			}
		})
	}
}

func TestHugeFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "Kubefile")
	data := bytes.Repeat([]byte("# padding padding padding padding padding padding padding padding\n"), MaxSize/60)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(name, Options{ContextDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "a Kubefile may be at most 4.0 MiB") || !strings.HasPrefix(err.Error(), name+":1:") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ParseFile(t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Parse("Kubefile", []byte("FROM scratch\n"), Options{ContextDir: filepath.Join(t.TempDir(), "none")}); err == nil || !strings.Contains(err.Error(), "build context") {
		t.Errorf("missing context: %v", err)
	}
	if _, err := Parse("Kubefile", []byte("FROM scratch\n"), Options{ContextDir: t.TempDir(), Type: "vm"}); err == nil || !strings.Contains(err.Error(), "image type \"vm\"") {
		t.Errorf("bad type: %v", err)
	}
}

func TestHTTPSSource(t *testing.T) {
	tgz := chartTgz(t, "web")
	sum := sha256.Sum256([]byte(tgz))
	checksum := "sha256:" + hex.EncodeToString(sum[:])
	var hits int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path != "/charts/web-0.1.0.tgz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(tgz))
	}))
	defer srv.Close()
	cache := t.TempDir()
	opts := Options{CacheDir: cache, HTTPClient: srv.Client()}
	kf := "FROM scratch\nAPP --checksum=" + checksum + " web " + srv.URL + "/charts/web-0.1.0.tgz\n"

	plan := mustParse(t, kf, nil, opts)
	a := plan.Metadata.App("web")
	if a == nil || a.Type != "helm" || !reflect.DeepEqual(a.Files, []string{"apps/web/web-0.1.0.tgz"}) {
		t.Fatalf("app = %+v", a)
	}
	if len(plan.BuildContexts) != 1 {
		t.Fatalf("build contexts = %v", plan.BuildContexts)
	}
	for name, dir := range plan.BuildContexts {
		if !strings.Contains(plan.Dockerfile, "COPY --from="+name+" [\"web-0.1.0.tgz\", \"/apps/web/\"]\n") {
			t.Errorf("Dockerfile:\n%s", plan.Dockerfile)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "web-0.1.0.tgz")); err != nil || string(got) != tgz {
			t.Errorf("cached file: %v", err)
		}
	}
	assertBuildahAccepts(t, plan.Dockerfile)

	// Downloaded once: a second plan uses the cache.
	mustParse(t, kf, nil, opts)
	if hits != 1 {
		t.Errorf("server hit %d times, want 1", hits)
	}

	// A wrong checksum fails and leaves nothing cached under that name.
	bad := "sha256:" + strings.Repeat("0", 64)
	kf2 := "FROM scratch\nAPP --checksum=" + bad + " web " + srv.URL + "/charts/web-0.1.0.tgz?v=2\n"
	_, err := parseCtx(t, kf2, nil, opts)
	if err == nil || !strings.Contains(err.Error(), "Kubefile:2:") || !strings.Contains(err.Error(), "has checksum "+checksum+", but the Kubefile says "+bad) {
		t.Errorf("checksum mismatch: %v", err)
	}

	// A missing file names the URL and the status.
	_, err = parseCtx(t, "FROM scratch\nAPP web "+srv.URL+"/nope.tgz\n", nil, opts)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/nope.tgz") {
		t.Errorf("404: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	for word, want := range map[string]string{"FORM": "FROM", "form": "FROM", "RUNN": "RUN", "COPPY": "COPY", "APPCMD": "APPCMDS", "KUBEVERISON": "KUBEVERSION", "ZZZZZZ": ""} {
		if got := suggest(word); got != want {
			t.Errorf("suggest(%s) = %q, want %q", word, got, want)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	if p, err := ParsePlatform("linux/arm64/v8"); err != nil || p != (Platform{"linux", "arm64", "v8"}) || p.String() != "linux/arm64/v8" {
		t.Errorf("got %v %v", p, err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d", "linux/ amd64"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/apply/ssh"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// writeTree makes a tree of files (path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		file := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A sealer base image's templates, and what sealer does not render.
var sealerTree = map[string]string{
	"etc/kubeadm.yml.tmpl":        "networking:\n  podSubnet: {{ .PodCIDR }}\n  serviceSubnet: {{ .SvcCIDR }}\nimageRepository: {{or .RegistryURL \"sea.hub:5000\"}}\n",
	"etc/kubeadm.yml":             "the image's own, replaced\n",
	"etc/sub/token.tmpl":          "{{ b64enc .Token }} {{ b64dec \"aG9pc3Q=\" }}{{ if .Missing }} never{{ end }}\n",
	"charts/web/values.yaml.tmpl": "{{ range $k, $v := . }}{{ $k }}={{ $v }}\n{{ end }}",
	"manifests/cni.yaml.tmpl":     "cidr: {{ index . \"PodCIDR\" }}\n",
	"apps/web/x.yaml.tmpl":        "{{ .NotRendered }}",
	"scripts/init.sh.tmpl":        "{{ .NotRendered }}",
	"etc/plain.yaml":              "{{ .NotATemplate }}",
}

// renderedWant is a renderedFile as a test writes it.
type renderedWant struct {
	path string
	mode os.FileMode
	data string
}

func TestRenderRootfs(t *testing.T) {
	rootfs := t.TempDir()
	writeTree(t, rootfs, sealerTree)
	os.Chmod(filepath.Join(rootfs, "etc", "sub", "token.tmpl"), 0o700)
	meta := &metadata.Metadata{Env: map[string]string{"PodCIDR": "10.0.0.0/8", "SvcCIDR": "10.96.0.0/12"}}
	env := renderEnv(meta, map[string]string{"PodCIDR": "100.64.0.0/10", "Token": "hoist"})
	files, err := renderRootfs(rootfs, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []renderedWant{
		{"etc/kubeadm.yml", 0o644, "networking:\n  podSubnet: 100.64.0.0/10\n  serviceSubnet: 10.96.0.0/12\nimageRepository: sea.hub:5000\n"},
		{"etc/sub/token", 0o700, "aG9pc3Q= hoist\n"},
		{"charts/web/values.yaml", 0o644, "PodCIDR=100.64.0.0/10\nSvcCIDR=10.96.0.0/12\nToken=hoist\n"},
		{"manifests/cni.yaml", 0o644, "cidr: 100.64.0.0/10\n"},
	}
	if len(files) != len(want) {
		t.Fatalf("rendered %d files, want %d: %+v", len(files), len(want), files)
	}
	for i, w := range want {
		if f := files[i]; f.Path != w.path || f.Mode != w.mode || string(f.Data) != w.data {
			t.Errorf("rendered %s %o %q\nwant     %s %o %q", f.Path, f.Mode, f.Data, w.path, w.mode, w.data)
		}
	}
}

func TestRenderRootfsRefuses(t *testing.T) {
	env := map[string]string{"PodCIDR": "100.64.0.0/10"}
	for _, c := range []struct {
		files map[string]string
		link  [2]string // a symlink: name, target
		err   string
	}{
		{files: map[string]string{"etc/kubeadm.yaml.tmpl": "podSubnet: {{ .PodCIDR }}\nserviceSubnet: {{ .SvcCIDR }}\n"},
			err: "etc/kubeadm.yaml.tmpl: prints a key the env does not have (it names SvcCIDR): set it in the Clusterfile's spec.env"},
		{files: map[string]string{"manifests/a.yaml.tmpl": "a: {{ .PodCIDR \n"},
			err: "template: manifests/a.yaml.tmpl:2: unclosed action started at manifests/a.yaml.tmpl:1"},
		{files: map[string]string{"charts/c/v.yaml.tmpl": "{{ toYaml . }}"},
			err: `template: charts/c/v.yaml.tmpl:1: function "toYaml" not defined`},
		{files: map[string]string{"etc/s.tmpl": "{{ b64dec .PodCIDR }}"},
			err: "template: etc/s.tmpl:1:3: executing \"etc/s.tmpl\" at <b64dec .PodCIDR>: error calling b64dec: illegal base64 data"},
		{files: map[string]string{"etc/r.tmpl": "a\n{{ range 100000000000 }}{{ end }}"},
			err: "etc/r.tmpl:2:9: {{range 100000000000}}: templates range over the env only"},
		{files: map[string]string{"etc/r.tmpl": "{{ range $k, $v := . }}{{ with $ }}{{ range . }}{{ end }}{{ end }}{{ end }}"},
			err: "etc/r.tmpl:1:44: a range in a range"},
		{files: map[string]string{"etc/t.tmpl": "{{ define \"a\" }}x{{ end }}{{ template \"a\" }}"},
			err: `etc/t.tmpl:1:38: {{template "a"}}: templates do not call templates`},
		{files: map[string]string{"etc/.tmpl": "x"}, err: "etc/.tmpl: a template needs a name before .tmpl"},
		{files: map[string]string{"etc/x.tmpl": "x", "etc/x/y": "a folder where the output goes"},
			err: "etc/x.tmpl: etc/x is there and is not a regular file"},
		{files: map[string]string{"etc/y.tmpl": "x"}, link: [2]string{"etc/y", "/etc"},
			err: "etc/y.tmpl: etc/y is there and is not a regular file"},
		{files: map[string]string{"etc/a": "x"}, link: [2]string{"etc/z.tmpl", "/etc/hostname"},
			err: "etc/z.tmpl: a template must be a regular file"},
	} {
		rootfs := t.TempDir()
		writeTree(t, rootfs, c.files)
		if c.link[0] != "" {
			if err := os.Symlink(c.link[1], filepath.Join(rootfs, c.link[0])); err != nil {
				t.Fatal(err)
			}
		}
		_, err := renderRootfs(rootfs, env)
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("%v:\n got %v\nwant %q", c.files, err, c.err)
		}
	}
}

// TestRenderRootfsSkipsSymlinkedFolders: a folder of the image that is a
// symlink would lead the node's writes out of its tree.
func TestRenderRootfsSkipsSymlinkedFolders(t *testing.T) {
	rootfs, elsewhere := t.TempDir(), t.TempDir()
	writeTree(t, elsewhere, map[string]string{"x.tmpl": "{{ .Missing }}"})
	os.Symlink(elsewhere, filepath.Join(rootfs, "etc"))
	files, err := renderRootfs(rootfs, nil)
	if err != nil || len(files) != 0 {
		t.Errorf("rendered %v, %v through a symlinked etc/", files, err)
	}
}

// TestWriteRendered writes on a node with the node's own shell (this
// machine's): each file replaced whole, with the template's mode, never
// written through: a file of the image hard-linked elsewhere (an earlier
// tree's) keeps its content.
func TestWriteRendered(t *testing.T) {
	node := t.TempDir()
	writeTree(t, node, map[string]string{"etc/kubeadm.yml": "old\n", "etc/sub/keep": "kept\n"})
	other := filepath.Join(t.TempDir(), "linked")
	if err := os.Link(filepath.Join(node, "etc", "kubeadm.yml"), other); err != nil {
		t.Fatal(err)
	}
	files := []renderedFile{
		{Path: "etc/kubeadm.yml", Mode: 0o640, Data: []byte("new\n")},
		{Path: "etc/sub/token", Mode: 0o700, Data: []byte("secret 'quoted' $x\n")},
	}
	if err := writeRendered(context.Background(), ssh.Local(), node, files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		file := filepath.Join(node, filepath.FromSlash(f.Path))
		data, err := os.ReadFile(file)
		info, _ := os.Stat(file)
		if err != nil || string(data) != string(f.Data) || info.Mode().Perm() != f.Mode {
			t.Errorf("%s: %q %v %v", f.Path, data, info.Mode(), err)
		}
	}
	if data, _ := os.ReadFile(other); string(data) != "old\n" {
		t.Errorf("the other link to the image's file became %q", data)
	}
	entries, _ := os.ReadDir(filepath.Join(node, "etc"))
	if len(entries) != 2 {
		t.Errorf("etc/ holds %d entries, want kubeadm.yml and sub: a temporary file is left", len(entries))
	}
}

// TestRenderedTemplatesKeyTheRootfs: the rootfs step's key holds what the
// templates render to: a change of the env that changes it renders
// again on every node (the step runs again, sending nothing when the tree
// is there); one that does not, and an image without templates, keep the
// key they had.
func TestRenderedTemplatesKeyTheRootfs(t *testing.T) {
	rootfs := t.TempDir()
	writeTree(t, rootfs, map[string]string{"etc/kubeadm.yml.tmpl": "podSubnet: {{ .PodCIDR }}\n"})
	plain := t.TempDir()
	writeTree(t, plain, map[string]string{"etc/kubeadm.yml": "podSubnet: 10.0.0.0/8\n"})
	key := func(tree string, env string) (string, error) {
		cf, err := clusterfile.ParseClusterfile("Clusterfile", []byte("apiVersion: hoist.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  image: acme/platform:v1\n  env: {"+env+"}\n  hosts:\n"+twoHosts))
		if err != nil {
			t.Fatal(err)
		}
		binary := filepath.Join(t.TempDir(), "hoist")
		os.WriteFile(binary, []byte("a binary"), 0o755)
		a := &Apply{Cluster: cf.Cluster, Image: Image{Rootfs: tree, Digest: "sha256:img"},
			Options: Options{Root: t.TempDir(), Binary: binary, Jobs: 2, DryRun: true}}
		p, err := a.Plan(context.Background())
		if err != nil {
			return "", err
		}
		defer a.Close()
		for _, s := range p.Nodes[1].Steps {
			if s.Name == stepRootfs {
				return s.Key, nil
			}
		}
		t.Fatal("no rootfs step")
		return "", nil
	}
	a, err := key(rootfs, "PodCIDR: 10.1.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := key(rootfs, "PodCIDR: 10.2.0.0/16")
	same, _ := key(rootfs, "PodCIDR: 10.1.0.0/16, Unused: x")
	none, _ := key(plain, "PodCIDR: 10.2.0.0/16")
	if a == b || a != same || !strings.HasPrefix(a, "sha256:img rendered sha256:") {
		t.Errorf("keys of the rootfs: %q, %q (another PodCIDR), %q (an unused key)", a, b, same)
	}
	if none != "sha256:img" {
		t.Errorf("an image without templates: key %q, want the digest alone", none)
	}
	if _, err := key(rootfs, "SvcCIDR: 10.96.0.0/12"); err == nil || err.Error() != "acme/platform:v1: etc/kubeadm.yml.tmpl: prints a key the env does not have (it names PodCIDR): set it in the Clusterfile's spec.env" {
		t.Errorf("a template the env does not render: %v", err)
	}
}

package apply

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/clusterfile"
)

// TestConfigFiles: sealer's Config documents as files of the rootfs: data
// processed (value, toJson, toBase64), written whole or merged into the
// image's YAML (a key the document lacks is not added, as in sealer), the
// image file's mode kept; what would write out of the rootfs, or merge
// into nothing, is refused by the document's name.
func TestConfigFiles(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/app.yaml"), []byte("db:\n  host: a\n  port: 1\nname: x\n---\ndb:\n  host: c\n"), 0o600)
	os.Symlink("/etc", filepath.Join(rootfs, "host-etc"))
	os.Mkdir(filepath.Join(rootfs, "dir"), 0o755)

	files, err := configFiles(rootfs, []clusterfile.Config{
		{Name: "merge", Path: "etc/app.yaml", Strategy: clusterfile.ConfigMerge, Data: "db: {host: b}\nextra: y\n"},
		{Name: "new", Path: "etc/new.conf", Strategy: clusterfile.ConfigOverwrite, Data: "plain text\n"},
		{Name: "json", Path: "etc/all.json", Strategy: clusterfile.ConfigOverwrite, Data: "a: 1\nb: [x]\n", Process: []string{"toJson"}},
		{Name: "values", Path: "etc/values.yaml", Strategy: clusterfile.ConfigOverwrite, Data: "a: {k: v}\nb: [1, 2]\n", Process: []string{"value", "toJson"}},
		{Name: "b64", Path: "etc/b64", Strategy: clusterfile.ConfigOverwrite, Data: "secret", Process: []string{"toBase64"}},
		{Name: "b64values", Path: "etc/b64.yaml", Strategy: clusterfile.ConfigOverwrite, Data: "user: root\npass: pw\n", Process: []string{"value", "toBase64"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"etc/app.yaml":    "db:\n  host: b\n  port: 1\nname: x\n---\ndb:\n  host: b\n",
		"etc/new.conf":    "plain text\n",
		"etc/all.json":    `{"a":1,"b":["x"]}`,
		"etc/values.yaml": "a: '{\"k\":\"v\"}'\nb: '[1,2]'\n",
		"etc/b64":         "c2VjcmV0",
		"etc/b64.yaml":    "pass: cHc=\nuser: cm9vdA==\n",
	}
	for _, f := range files {
		if string(f.Data) != want[f.Path] {
			t.Errorf("%s:\n%s\nwant:\n%s", f.Path, f.Data, want[f.Path])
		}
	}
	if files[0].Mode != 0o600 || files[1].Mode != 0o644 {
		t.Errorf("modes %v %v: the image file's, else 0644", files[0].Mode, files[1].Mode)
	}

	for _, tc := range []struct {
		c    clusterfile.Config
		want string
	}{
		{clusterfile.Config{Name: "out", Path: "host-etc/passwd", Strategy: clusterfile.ConfigOverwrite}, `Config "out" (host-etc/passwd): host-etc is a symlink in the image, not a folder`},
		{clusterfile.Config{Name: "link", Path: "host-etc", Strategy: clusterfile.ConfigOverwrite}, "the image's host-etc is a symlink, not a file"},
		{clusterfile.Config{Name: "dir", Path: "dir", Strategy: clusterfile.ConfigOverwrite}, "the image's dir is a folder, not a file"},
		{clusterfile.Config{Name: "nothing", Path: "etc/none.yaml", Strategy: clusterfile.ConfigMerge, Data: "a: 1\n"}, "merge: the image has no such file to merge into"},
		{clusterfile.Config{Name: "list", Path: "etc/app.yaml", Strategy: clusterfile.ConfigMerge, Data: "- a\n"}, "merge: the data is not a YAML map"},
		{clusterfile.Config{Name: "json", Path: "etc/x", Strategy: clusterfile.ConfigOverwrite, Data: "a: [", Process: []string{"toJson"}}, "toJson: the data is not YAML"},
		{clusterfile.Config{Name: "b64", Path: "etc/x", Strategy: clusterfile.ConfigOverwrite, Data: "a: {b: c}", Process: []string{"value", "toBase64"}}, "value|toBase64: the data is not a YAML map of strings"},
	} {
		if _, err := configFiles(rootfs, []clusterfile.Config{tc.c}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %s", tc.c.Name, err, tc.want)
		}
	}
}

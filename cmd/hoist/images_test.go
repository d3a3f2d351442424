package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/hoistdev/hoist/test/fixture"
)

// hoistAt runs the command line in process on the store under root.
func hoistAt(t *testing.T, root string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"--root", root}, args...))
	err := cmd.Execute()
	return stdout.String(), stderr.String(), err
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: buildah builds run as root (CI runs as root)")
	}
}

func TestImageCommands(t *testing.T) {
	needRoot(t)
	root := fixture.Root(t)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := hoistAt(t, root, "", args...)
		if err != nil {
			t.Fatalf("hoist %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	// Public registries are out of reach: serve stand-ins as mirrors.
	fixture.StandIns(t, root, "docker.io/library/nginx:1.27.3", "quay.io/prometheus/node-exporter:v1.8.2", "registry.k8s.io/pause:3.10")
	run("build", "-q", "-t", "acme/platform:v1", "-f", "../../Kubefile.example", "../../examples/platform")
	images := run("inspect", "--images", "acme/platform:v1")
	for _, want := range []string{"docker.io/library/nginx:1.27.3", "quay.io/prometheus/node-exporter:v1.8.2", "registry.k8s.io/pause:3.10", "sha256:", "apps/web/templates/deployment.yaml"} {
		if !strings.Contains(images, want) {
			t.Errorf("inspect --images lacks %q:\n%s", want, images)
		}
	}

	table := run("images")
	if !strings.HasPrefix(table, "REPOSITORY") || !strings.Contains(table, "localhost/acme/platform   v1") || !strings.Contains(table, "cluster") {
		t.Errorf("images:\n%s", table)
	}
	if strings.Contains(table, "<none>") {
		t.Errorf("images lists the build cache:\n%s", table)
	}
	if all := run("images", "-a"); !strings.Contains(all, "<none>") {
		t.Errorf("images -a does not list the build cache:\n%s", all)
	}
	ids := strings.Fields(run("images", "-q"))
	var list []map[string]any
	if err := json.Unmarshal([]byte(run("images", "--format", "json")), &list); err != nil || len(list) == 0 {
		t.Fatalf("images --format json: %v", err)
	}
	if len(ids) != len(list) {
		t.Errorf("images -q lists %d, json %d", len(ids), len(list))
	}

	var details []map[string]any
	if err := json.Unmarshal([]byte(run("inspect", "acme/platform:v1")), &details); err != nil || len(details) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	for _, key := range []string{"id", "digest", "names", "platforms", "size", "created", "labels", "metadata"} {
		if _, ok := details[0][key]; !ok {
			t.Errorf("inspect lacks %q", key)
		}
	}
	if got := run("inspect", "--format", "{{.Metadata.Type}} {{len .Metadata.Apps}} {{.Metadata.KubeVersion}}", "acme/platform:v1"); got != "cluster 2 >=1.28 <1.38\n" {
		t.Errorf("inspect --format: %q", got)
	}
	id := strings.TrimSpace(run("inspect", "--format", "{{.ID}}", "acme/platform:v1"))

	run("tag", "acme/platform:v1", "acme/platform:stable")
	if out := run("rmi", "acme/platform:v1"); out != "Untagged: localhost/acme/platform:v1\n" {
		t.Errorf("rmi of one name: %q", out)
	}
	archive := filepath.Join(t.TempDir(), "platform.tar")
	run("save", "-o", archive, "acme/platform:stable")
	if out := run("rmi", "acme/platform:stable"); !strings.Contains(out, "Deleted: ") {
		t.Errorf("rmi of the last name: %q", out)
	}
	if _, _, err := hoistAt(t, root, "", "inspect", "acme/platform:stable"); err == nil || err.Error() != "acme/platform:stable: image not known" {
		t.Errorf("inspect after rmi: %v", err)
	}
	if out := run("load", "-i", archive); out != "Loaded image: localhost/acme/platform:stable\n" {
		t.Errorf("load: %q", out)
	}
	// zstd layers (the default) make another manifest of the same image:
	// same ID (config), same metadata (TestSaveLoadCommands: the others).
	if got := run("inspect", "--format", "{{.ID}} {{.Metadata.Type}} {{len .Metadata.Apps}}", "acme/platform:stable"); got != id+" cluster 2\n" {
		t.Errorf("after save and load: %q, want %q", got, id+" cluster 2\n")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"save", "acme/platform:stable"}, "name the archive with -o FILE"},
		{[]string{"save", "-o", filepath.Join(t.TempDir(), "x.tar"), "--format", "zip", "acme/platform:stable"}, "--format \"zip\""},
		{[]string{"load"}, "name the archive with -i FILE"},
		{[]string{"tag", "acme/platform:stable", "Bad Name"}, "not a valid image name"},
		{[]string{"rmi"}, "name at least one image, or use --all"},
		{[]string{"rmi", "--all", "x"}, "--all and image names cannot be given together"},
		{[]string{"inspect", "nope:v1"}, "nope:v1: image not known"},
		{[]string{"push", "acme/platform:stable", "127.0.0.1:1/acme/platform:v1", "--tls-verify=false"}, "127.0.0.1:1"},
	} {
		_, _, err := hoistAt(t, root, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// No secret and no stray file: a failed save leaves nothing.
	entries, _ := os.ReadDir(filepath.Dir(archive))
	if len(entries) != 1 {
		t.Errorf("files next to the archive: %v", entries)
	}
}

// basicAuth guards a handler with one user, as a registry with accounts.
func basicAuth(user, password string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestLoginLogoutPush(t *testing.T) {
	needRoot(t)
	srv := httptest.NewServer(basicAuth("ci", "s3cret", registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	root := fixture.Root(t)

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Kubefile"), []byte("FROM scratch\nCOPY Kubefile /Kubefile\n"), 0o644)
	if _, stderr, err := hoistAt(t, root, "", "build", "-q", "-t", host+"/acme/app:v1", dir); err != nil {
		t.Fatalf("build: %v %s", err, stderr)
	}
	if _, _, err := hoistAt(t, root, "", "push", "--tls-verify=false", host+"/acme/app:v1"); err == nil {
		t.Fatalf("push without credentials succeeded")
	}
	if _, _, err := hoistAt(t, root, "wrong\n", "login", "--tls-verify=false", "-u", "ci", "--password-stdin", host); err == nil {
		t.Fatalf("login with a wrong password succeeded")
	}
	out, stderr, err := hoistAt(t, root, "s3cret\n", "login", "--tls-verify=false", "-u", "ci", "--password-stdin", host)
	if err != nil {
		t.Fatalf("login: %v %s", err, stderr)
	}
	if strings.Contains(out+stderr, "s3cret") {
		t.Errorf("login printed the password: %q %q", out, stderr)
	}
	authFile := filepath.Join(root, "config", "auth.json")
	info, err := os.Stat(authFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("auth file: %v %v", info, err)
	}
	var auth struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	data, _ := os.ReadFile(authFile)
	if err := json.Unmarshal(data, &auth); err != nil || auth.Auths[host].Auth != base64.StdEncoding.EncodeToString([]byte("ci:s3cret")) {
		t.Errorf("auth file content: %s", data)
	}
	if _, stderr, err := hoistAt(t, root, "", "push", "--tls-verify=false", host+"/acme/app:v1"); err != nil {
		t.Fatalf("push after login: %v %s", err, stderr)
	}
	if _, _, err := hoistAt(t, root, "", "logout", host); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(authFile)
	if strings.Contains(string(data), host) {
		t.Errorf("logout left the credentials: %s", data)
	}
	if _, _, err := hoistAt(t, root, "", "pull", "--tls-verify=false", host+"/acme/app:v1"); err == nil {
		t.Errorf("pull after logout succeeded")
	}
}

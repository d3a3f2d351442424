package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoistdev/hoist/test/fixture"
)

// hoist runs the command line in process.
func hoist(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(append([]string{"--root", fixture.Root(t)}, args...))
	err := cmd.Execute()
	return stdout.String(), stderr.String(), err
}

func TestVersion(t *testing.T) {
	out, _, err := hoist(t, "version", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v["version"] != version || !strings.HasPrefix(v["goVersion"], "go") || v["os"] == "" || v["arch"] == "" {
		t.Errorf("version = %v", v)
	}
	out, _, err = hoist(t, "version", "--format", "{{.Version}} {{.OS}}")
	if err != nil || out != version+" linux\n" {
		t.Errorf("template: %q %v", out, err)
	}
	out, _, err = hoist(t, "version")
	if err != nil || !strings.Contains(out, "Version:      "+version+"\n") || !strings.Contains(out, "OS/Arch:") {
		t.Errorf("plain: %q %v", out, err)
	}
	if _, _, err := hoist(t, "version", "--format", "yaml"); err == nil || !strings.Contains(err.Error(), "want json or a Go template") {
		t.Errorf("bad format: %v", err)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := hoist(t, "completion", shell)
		if err != nil || !strings.Contains(out, "hoist") || len(out) < 1000 {
			t.Errorf("%s: %v (%d bytes)", shell, err, len(out))
		}
	}
}

func TestBuildDryRunJSON(t *testing.T) {
	out, _, err := hoist(t, "build", "--dry-run", "--format", "json", "-f", "../../Kubefile.example", "../../examples/platform")
	if err != nil {
		t.Fatal(err)
	}
	var plan map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var dockerfile string
	if err := json.Unmarshal(plan["dockerfile"], &dockerfile); err != nil || !strings.Contains(dockerfile, "FROM scratch\n") || !strings.Contains(dockerfile, `COPY ["charts/web", "/apps/web/"]`) {
		t.Errorf("dockerfile = %q (%v)", dockerfile, err)
	}
	var meta map[string]any
	if err := json.Unmarshal(plan["metadata"], &meta); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"apps", "cni", "csi", "env", "images", "kubeVersion", "launch", "renderKubeVersion", "schemaVersion", "type"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("metadata keys = %v, want the schema's %v", keys, want)
	}
	// The highest version KUBEVERSION allows that hoist knows.
	if meta["schemaVersion"] != "v1alpha1" || meta["type"] != "cluster" || meta["kubeVersion"] != ">=1.28 <1.38" || meta["renderKubeVersion"] != "v1.37.2" {
		t.Errorf("metadata = %v", meta)
	}
	// The dry run finds the apps' images from their sources, without
	// digests (nothing is collected).
	images, _ := json.Marshal(meta["images"])
	if want := `[{"digest":"","foundIn":"charts/web/templates/deployment.yaml (Deployment/hoist)","platform":"","ref":"docker.io/library/nginx:1.27.3"},` +
		`{"digest":"","foundIn":"manifests/monitoring/node-exporter.yaml (DaemonSet/node-exporter)","platform":"","ref":"quay.io/prometheus/node-exporter:v1.8.2"}]`; string(images) != want {
		t.Errorf("images = %s\nwant     %s", images, want)
	}
	app := meta["apps"].([]any)[0].(map[string]any)
	var appKeys []string
	for k := range app {
		appKeys = append(appKeys, k)
	}
	sort.Strings(appKeys)
	if !reflect.DeepEqual(appKeys, []string{"cmds", "env", "files", "name", "type"}) {
		t.Errorf("app keys = %v", appKeys)
	}
}

func TestBuildDryRunText(t *testing.T) {
	out, _, err := hoist(t, "build", "--dry-run", "-f", "../../Kubefile.example", "../../examples/platform")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Dockerfile (", "COPY [\"charts/web\", \"/apps/web/\"]", "# Metadata (io.hoist.image.metadata)", "\"kubeVersion\": \">=1.28 <1.38\"", "web\tapps/web/Chart.yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBuildDryRunPlatforms(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin/amd64"), 0o755)
	os.MkdirAll(filepath.Join(dir, "bin/arm64"), 0o755)
	os.WriteFile(filepath.Join(dir, "Kubefile"), []byte("FROM scratch\nCOPY bin/${ARCH}/ bin/\n"), 0o644)
	out, _, err := hoist(t, "build", "--dry-run", "--format", "json", "--platform", "linux/amd64,linux/arm64", dir)
	if err != nil {
		t.Fatal(err)
	}
	var plans []struct{ Platform, Dockerfile string }
	if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 2 {
		t.Fatalf("plans: %v\n%s", err, out)
	}
	if plans[1].Platform != "linux/arm64" || !strings.Contains(plans[1].Dockerfile, "COPY bin/arm64/ bin/") || !strings.Contains(plans[0].Dockerfile, "COPY bin/amd64/ bin/") {
		t.Errorf("plans = %+v", plans)
	}
}

func TestBuildDryRunFlaskUnchanged(t *testing.T) {
	dir := "../../build/kubefile/testdata/flask"
	data, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := hoist(t, "build", "--dry-run", "--format", "{{.Dockerfile}}", "-f", filepath.Join(dir, "Dockerfile"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(data)+"\n" || stderr != "" {
		t.Errorf("Dockerfile changed or warned:\n%s\nstderr: %s", out, stderr)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	form := filepath.Join(dir, "Kubefile")
	os.WriteFile(form, []byte("FORM debian\nRUN true\n"), 0o644)
	good := filepath.Join(dir, "Good")
	os.WriteFile(good, []byte("FROM scratch\nARG X\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "--dry-run", dir}, form + ":1: unknown instruction FORM (did you mean FROM?)"},
		{[]string{"build", "--dry-run", t.TempDir()}, "no Kubefile in"},
		{[]string{"build", "--pull", "sometimes", "-f", good, dir}, "--pull \"sometimes\": use missing, always or never"},
		{[]string{"build", "--platform", "linux/amd64,linux/arm64", "-f", good, dir}, "needs a name: add -t NAME"},
		{[]string{"build", "--label", "novalue", "-f", good, dir}, "label or annotation \"novalue\": want KEY=VALUE"},
		{[]string{"build", "--dry-run", "-t", "Bad:Tag", "-f", good, dir}, "invalid tag \"Bad:Tag\""},
		{[]string{"build", "--dry-run", "--platform", "linux", "-f", good, dir}, "invalid platform \"linux\""},
		{[]string{"build", "--dry-run", "--type", "vm", "-f", good, dir}, "image type \"vm\""},
		{[]string{"build", "--dry-run", "--build-arg", "=x", "-f", good, dir}, "--build-arg \"=x\""},
		{[]string{"build", "--format", "json", "-f", good, dir}, "--format applies to --dry-run only"},
		{[]string{"build", "a", "b"}, "accepts at most 1 arg"},
	} {
		_, _, err := hoist(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestBuildArgs(t *testing.T) {
	t.Setenv("FROM_ENV", "env-value")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Kubefile"), []byte("FROM scratch\nARG A\nARG FROM_ENV\nENV A=$A B=$FROM_ENV\n"), 0o644)
	out, stderr, err := hoist(t, "build", "--dry-run", "--format", "{{json .Metadata.Env}}", "--build-arg", "A=1", "--build-arg", "FROM_ENV", "--build-arg", "NOT_SET", "--build-arg", "UNUSED=1", dir)
	if err != nil {
		t.Fatal(err)
	}
	if out != `{"A":"1","B":"env-value"}`+"\n" {
		t.Errorf("env = %s", out)
	}
	if !strings.Contains(stderr, "not consumed: UNUSED") {
		t.Errorf("stderr = %q", stderr)
	}
}

// TestBinary checks what a user sees from the real binary: exit status and
// one line on stderr.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := fixture.HoistBinary(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Kubefile"), []byte("FORM debian\n"), 0o644)
	cmd := exec.Command(bin, "build", "--dry-run", "--root", t.TempDir(), dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	want := "Error: " + filepath.Join(dir, "Kubefile") + ":1: unknown instruction FORM (did you mean FROM?)\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want stderr %q", stderr.String(), stdout.String(), want)
	}
}

func TestRegistryServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := fixture.HoistBinary(t)
	cmd := exec.Command(bin, "registry", "serve", "--root", t.TempDir(), "--addr", "127.0.0.1:0")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("no start line: %v", err)
	}
	fields := strings.Fields(line) // serving DIR on ADDR (read-only: true)
	if len(fields) < 4 || fields[0] != "serving" {
		t.Fatalf("start line %q", line)
	}
	resp, err := http.Get("http://" + fields[3] + "/v2/library/x/manifests/v1?ns=docker.io")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d", resp.StatusCode)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
	if !strings.Contains(stdout.String(), "GET /v2/library/x/manifests/v1?ns=docker.io 404") {
		t.Errorf("request log: %q", stdout.String())
	}
}

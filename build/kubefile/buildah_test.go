package kubefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift/imagebuilder"
	"github.com/openshift/imagebuilder/dockerfile/command"
)

// assertBuildahAccepts checks a generated Dockerfile the way buildah reads
// it before running anything: imagebuilder parses it, splits the stages and
// resolves every step; every instruction must be one buildah dispatches.
func assertBuildahAccepts(t *testing.T, dockerfile string) {
	t.Helper()
	node, err := imagebuilder.ParseDockerfile(strings.NewReader(dockerfile))
	if err != nil {
		t.Fatalf("imagebuilder does not parse the Dockerfile: %v\n%s", err, dockerfile)
	}
	for _, child := range node.Children {
		if _, ok := command.Commands[child.Value]; !ok {
			t.Fatalf("line %d: buildah does not know %q\n%s", child.StartLine, child.Value, dockerfile)
		}
	}
	stages, err := imagebuilder.NewStages(node, imagebuilder.NewBuilder(map[string]string{}))
	if err != nil {
		t.Fatalf("imagebuilder rejects the stages: %v\n%s", err, dockerfile)
	}
	for _, stage := range stages {
		for _, child := range stage.Node.Children {
			if err := stage.Builder.Step().Resolve(child); err != nil {
				t.Fatalf("line %d: imagebuilder cannot resolve %q: %v", child.StartLine, child.Original, err)
			}
		}
	}
}

func TestExamplesAreWhatBuildahAccepts(t *testing.T) {
	examples := map[string]string{
		"../../Kubefile.example":        "../../examples/platform",
		"testdata/sealer/Kubefile":      "testdata/sealer",
		"testdata/appcmds/Kubefile":     "testdata/appcmds",
		"testdata/passthrough/Kubefile": "testdata/passthrough",
		"testdata/flask/Dockerfile":     "testdata/flask",
	}
	for file, ctx := range examples {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			for _, arch := range []string{"amd64", "arm64"} {
				plan, err := ParseFile(file, Options{ContextDir: ctx, Platform: Platform{OS: "linux", Arch: arch}})
				if err != nil {
					t.Fatal(err)
				}
				assertBuildahAccepts(t, plan.Dockerfile)
			}
		})
	}
}

func TestKubefileExample(t *testing.T) {
	plan, err := ParseFile("../../Kubefile.example", Options{ContextDir: "../../examples/platform"})
	if err != nil {
		t.Fatal(err)
	}
	m := plan.Metadata
	if len(m.Apps) != 2 || m.App("web").Type != "helm" || m.App("monitoring").Type != "manifests" {
		t.Errorf("apps = %+v", m.Apps)
	}
	if m.KubeVersion == "" || len(m.Launch.Apps) != 2 || m.Env["PodCIDR"] == "" {
		t.Errorf("metadata = %+v", m)
	}
	if _, err := os.Stat("../../examples/platform/rootfs"); err != nil {
		t.Errorf("the example has no rootfs folder: %v", err)
	}
}

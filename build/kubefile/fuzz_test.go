package kubefile

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift/imagebuilder/dockerfile/parser"
)

// offline refuses every request, so fuzzed https:// sources never reach a network.
type offline struct{}

func (offline) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline")
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{
		"../../Kubefile.example",
		"testdata/sealer/Kubefile",
		"testdata/appcmds/Kubefile",
		"testdata/passthrough/Kubefile",
		"testdata/flask/Dockerfile",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"FORM debian\n",
		"FROM scratch\nAPP web web.yaml\nLAUNCH [\"web\"]\nCMD x\n",
		"FROM scratch\nAPP web chart\nAPPENV web a=\"b c\" d=$X\nKUBEVERSION >=1.28 <1.38\n",
		"# escape=`\nFROM scratch\nRUN a `\n  b\nCMDS [\"a\"]\n",
		"FROM scratch\nRUN <<EOF\nx\nEOF\nAPP --checksum=sha256:00 x https://h/x.tgz\n",
		"FROM scratch\nCOPY ${ARCH}/ .\nIMAGE nginx quay.io/a/b:1\n",
		// CMD, the cluster command, and its bad forms.
		"FROM scratch\nCMD kubectl get pods\nCMDS [\"a\"]\nLAUNCH []\n",
		"FROM scratch\nCMD\n",
		"FROM scratch\nCMD --wait x\n",
		"FROM scratch\nCMD []\nCMD [\"a\", \" \"]\n",
		"FROM scratch\nCMD [\"a\", 1]\n",
		"FROM scratch AS a\nCMD x\nFROM a\nCMD x\n",
		// sealer's layout and sealer base images.
		"FROM scratch\nWORKDIR /application\nCOPY application/apps/web apps/web/\nCOPY . .\nCOPY [\"dir\", \"/application/apps\"]\n",
		"FROM scratch\nCOPY <<EOF application/apps/x/a.yaml\nx\nEOF\nCOPY --from=base /x application/apps/\n",
		"FROM scratch\nCOPY application /application\nAPPCMDS web [\"x\"]\nLAUNCH web\n",
		"FROM docker.io/sealerio/kubernetes:v1.22.15\n",
		"ARG B=sealerio/kubernetes\nFROM $B AS x\nFROM x\n",
		"FROM base AS b\nFROM b\nCMD a\n",
		// Two sources that give the same file.
		"FROM scratch\nAPP m local://dir/run.sh local://dir\nAPPCMDS m [\"sh run.sh\"]\n",
	} {
		f.Add([]byte(s))
	}
	ctx := f.TempDir()
	for name, content := range map[string]string{
		"web.yaml":                         "kind: Namespace\n",
		"chart/Chart.yaml":                 chartYAML,
		"chart/values.yaml":                "a: 1\n",
		"run.sh":                           "#!/bin/sh\n",
		"amd64/bin/x":                      "x",
		"dir/run.sh":                       "#!/bin/sh\n",
		"application/apps/web/a.yaml":      "kind: Namespace\n",
		"application/apps/Bad_Name/x.yaml": "x: 1\n",
	} {
		full := filepath.Join(ctx, name)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(content), 0o644)
	}
	opts := Options{
		ContextDir: ctx,
		CacheDir:   filepath.Join(f.TempDir(), "cache"),
		HTTPClient: &http.Client{Transport: offline{}},
		Platform:   Platform{OS: "linux", Arch: "amd64"},
		BuildArgs:  map[string]string{"X": "1"},
		// A build context, for FROM base to be replaced.
		BuildContexts: map[string]string{"base": "hoist.dev/kubernetes:v1.37.2"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		plan, err := Parse("Kubefile", data, opts)
		if err != nil {
			// Every problem in the Kubefile itself names its line.
			var kerr *Error
			if !errors.As(err, &kerr) || kerr.Line < 1 {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		// What we accept, buildah's parser accepts, and every instruction
		// we pass on is one buildah knows.
		result, err := parser.Parse(strings.NewReader(plan.Dockerfile))
		if err != nil {
			t.Fatalf("generated Dockerfile does not parse: %v\n%s", err, plan.Dockerfile)
		}
		for _, n := range result.AST.Children {
			if !isDockerInstruction(n.Value) {
				t.Fatalf("generated Dockerfile holds %q:\n%s", n.Value, plan.Dockerfile)
			}
		}
		if err := plan.Metadata.Validate(); err != nil {
			t.Fatalf("invalid metadata: %v", err)
		}
	})
}

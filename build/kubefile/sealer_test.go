package kubefile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestSealerBase: a final stage FROM a sealer image fails at its FROM
// line, saying what to write instead.
func TestSealerBase(t *testing.T) {
	for _, tc := range []struct {
		name string
		kf   string
		opts Options
		line int
		want string
	}{
		{
			name: "sealer's Kubernetes image on Docker Hub",
			kf:   "FROM docker.io/sealerio/kubernetes:v1.22.15\nAPP web web.yaml\n",
			line: 1,
			want: "Kubefile:1: FROM docker.io/sealerio/kubernetes:v1.22.15: a sealer image (its name is in sealer's namespace), which hoist cannot build on: its Kubernetes and apps are installed by sealer's own scripts and layout. Write FROM hoist.dev/kubernetes:v1.22.15 (hoist's Kubernetes base image, see docs/kubernetes.md) or an image hoist built, or keep this line and build with --build-context docker.io/sealerio/kubernetes:v1.22.15=docker-image://hoist.dev/kubernetes:v1.22.15",
		},
		{
			name: "the registry sealer's docs use",
			kf:   "# sealer's getting started\nFROM registry.cn-qingdao.aliyuncs.com/sealer-io/kubernetes:v1.19.8\nCMD kubectl apply -f recommended.yaml\n",
			line: 2,
			want: "Write FROM hoist.dev/kubernetes:v1.19.8",
		},
		{
			name: "a short name and no tag",
			kf:   "FROM sealerio/kubernetes-arm64\n",
			line: 1,
			want: "Write FROM hoist.dev/kubernetes:<version>",
		},
		{
			name: "through a build argument and a stage",
			kf:   "ARG BASE=sealerio/kubernetes:v1.22.15\nFROM $BASE AS base\nFROM base\n",
			line: 2,
			want: "FROM sealerio/kubernetes:v1.22.15: a sealer image",
		},
		{
			name: "known by its labels once pulled",
			kf:   "FROM acme/old:v1\n",
			opts: Options{SealerBase: "its label io.sealer.version=v0.11.0 says sealer built it"},
			line: 1,
			want: "FROM acme/old:v1: a sealer image (its label io.sealer.version=v0.11.0 says sealer built it), which hoist cannot build on: its Kubernetes and apps are installed by sealer's own scripts and layout. Write FROM hoist.dev/kubernetes:<version> (hoist's Kubernetes base image, see docs/kubernetes.md) or an image hoist built, or keep this line and build with --build-context acme/old:v1=docker-image://hoist.dev/kubernetes:<version>",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCtx(t, tc.kf, map[string]string{"web.yaml": "kind: Namespace\n"}, tc.opts)
			var kerr *Error
			if !errors.As(err, &kerr) || kerr.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want line %d and %q", err, tc.line, tc.want)
			}
			// The build looks the base up from Base: it must fail there,
			// before pulling anything.
			f, err := NewFile("Kubefile", []byte(tc.kf))
			if err != nil {
				t.Fatal(err)
			}
			tc.opts.ContextDir = t.TempDir()
			if _, err := f.Base(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Base: %v", err)
			}
		})
	}
}

// TestSealerImageOnlyInTheFinalStage: a builder stage may start from a
// sealer image, to copy files out of it.
func TestSealerImageOnlyInTheFinalStage(t *testing.T) {
	plan := mustParse(t, "FROM sealerio/kubernetes:v1.22.15 AS old\nFROM scratch\nCOPY --from=old /etc/x /etc/x\n", nil, Options{})
	if want := []string{"sealerio/kubernetes:v1.22.15"}; !reflect.DeepEqual(plan.Bases, want) {
		t.Errorf("bases = %q", plan.Bases)
	}
}

func TestSealerImage(t *testing.T) {
	for _, tc := range []struct {
		labels, annotations map[string]string
		want                string
	}{
		{nil, map[string]string{"sealer.image.extension": "{}"}, "its annotation sealer.image.extension is sealer's image spec"},
		{map[string]string{"io.sealer.version": "v0.9.3"}, nil, "its label io.sealer.version=v0.9.3 says sealer built it"},
		{map[string]string{"io.hoist.image.type": "cluster"}, map[string]string{"org.opencontainers.image.title": "x"}, ""},
	} {
		if got := SealerImage(tc.labels, tc.annotations); got != tc.want {
			t.Errorf("SealerImage(%v, %v) = %q, want %q", tc.labels, tc.annotations, got, tc.want)
		}
	}
}

// TestBuildContext: --build-context NAME=docker-image://REF makes FROM NAME
// build on REF, in the plan and in the Dockerfile buildah runs, so that
// sealer Kubefiles build on hoist's base unchanged.
func TestBuildContext(t *testing.T) {
	contexts := map[string]string{"docker.io/sealerio/kubernetes:v1.22.15": "hoist.dev/kubernetes:v1.37.2"}
	for _, tc := range []struct {
		name, kf, dockerfile string
	}{
		{"as written", "FROM docker.io/sealerio/kubernetes:v1.22.15\nCOPY a.yaml manifests/\n", "# hoist: FROM docker.io/sealerio/kubernetes:v1.22.15\nFROM hoist.dev/kubernetes:v1.37.2\nCOPY a.yaml manifests/\n"},
		{"the same image written short, flags and stage name kept", "FROM --platform=linux/amd64 sealerio/kubernetes:v1.22.15 as base\nFROM base\n", "# hoist: FROM --platform=linux/amd64 sealerio/kubernetes:v1.22.15 as base\nFROM --platform=linux/amd64 hoist.dev/kubernetes:v1.37.2 as base\nFROM base\n"},
		{"through a build argument", "ARG K=docker.io/sealerio/kubernetes:v1.22.15\nFROM ${K}\n", "# hoist: FROM ${K}\nFROM hoist.dev/kubernetes:v1.37.2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustParse(t, tc.kf, map[string]string{"a.yaml": "kind: Namespace\n"}, Options{BuildContexts: contexts})
			if plan.Base != "hoist.dev/kubernetes:v1.37.2" || !reflect.DeepEqual(plan.Bases, []string{"hoist.dev/kubernetes:v1.37.2"}) {
				t.Errorf("base %q, bases %q", plan.Base, plan.Bases)
			}
			if !strings.HasSuffix(plan.Dockerfile, tc.dockerfile) {
				t.Errorf("Dockerfile:\n%s\nwant it to end with:\n%s", plan.Dockerfile, tc.dockerfile)
			}
			assertBuildahAccepts(t, plan.Dockerfile)
		})
	}
	// Another tag is another image: no substitution, and the sealer check.
	_, err := parseCtx(t, "FROM docker.io/sealerio/kubernetes:v1.24.0\n", nil, Options{BuildContexts: contexts})
	if err == nil || !strings.Contains(err.Error(), "Kubefile:1: FROM docker.io/sealerio/kubernetes:v1.24.0: a sealer image") {
		t.Errorf("err = %v", err)
	}
}

func TestParseBuildContexts(t *testing.T) {
	got, err := ParseBuildContexts([]string{"sealerio/kubernetes:v1.22.15=docker-image://hoist.dev/kubernetes:v1.37.2", "base=container-image://test/base:v1"})
	want := map[string]string{"sealerio/kubernetes:v1.22.15": "hoist.dev/kubernetes:v1.37.2", "base": "test/base:v1"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"nothing"}, `--build-context "nothing": want NAME=docker-image://REF`},
		{[]string{"=docker-image://a"}, `--build-context "=docker-image://a": want NAME=docker-image://REF`},
		{[]string{"a b=docker-image://a"}, `--build-context "a b=docker-image://a": want NAME=docker-image://REF`},
		{[]string{"base=./rootfs"}, `--build-context "base=./rootfs": only an image is supported, NAME=docker-image://REF (REF builds what FROM base would)`},
		{[]string{"base=https://example.com/x.tar"}, `--build-context "base=https://example.com/x.tar": only an image is supported`},
		{[]string{"base=docker-image://"}, `--build-context "base=docker-image://": "" is not an image reference`},
		{[]string{"base=docker-image://Bad:Tag"}, `--build-context "base=docker-image://Bad:Tag": "Bad:Tag" is not an image reference`},
		{[]string{"base=docker-image://a", "base=docker-image://b"}, `--build-context "base=docker-image://b": base is given twice`},
	} {
		if _, err := ParseBuildContexts(tc.values); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.values, err, tc.want)
		}
	}
}

package build_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hoistdev/hoist/test/fixture"
)

// BenchmarkTransport measures what moving images into an air gap costs
// with the real hoist binary, for 20 images of 10 MB served on loopback in
// two sets: random data in gzip layers (random-gzip) and compressible text
// in uncompressed layers (text-uncompressed). Each set reports, as ratios
// to figures measured in the same run:
//
//   - build-save-ratio: `hoist build` (FROM scratch, one IMAGE line naming
//     the 20) and `hoist save` (zstd, the default), against `skopeo copy`
//     of the 20 into one OCI layout then `tar | zstd -3`;
//   - size-ratio: the archive's size against that baseline's;
//   - cached-ratio: the same build again (nothing changed), mean of 5,
//     against `hoist version`, mean of 5;
//   - diff-ratio: `hoist save --since` the first image, after one of the
//     20 was pushed again changed under the same tag and the image rebuilt
//     with --pull always, against the changed image's size in the registry.
//
// The targets (not asserted): 1.0, 1.05, 5 and 1.2. Needs root
// (buildah), skopeo, tar and zstd.
//
//	go test -run '^$' -bench Transport -benchtime 1x ./build
func BenchmarkTransport(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: buildah builds run as root")
	}
	for _, tool := range []string{"skopeo", "tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is missing (make deps installs it): %v", tool, err)
		}
	}
	bin := fixture.HoistBinary(b)
	b.Run("random-gzip", func(b *testing.B) {
		transport(b, bin, func(b *testing.B, ref string, seed int64) int64 {
			return imageSize(b, fixture.PushRandom(b, ref, 10<<20, 1))
		})
	})
	b.Run("text-uncompressed", func(b *testing.B) {
		transport(b, bin, func(b *testing.B, ref string, seed int64) int64 {
			return imageSize(b, pushText(b, ref, 10<<20, seed))
		})
	})
}

// transport runs the measures of BenchmarkTransport on one set of images;
// push pushes one image of the set to ref (different for each seed) and
// returns its size in the registry.
func transport(b *testing.B, bin string, push func(b *testing.B, ref string, seed int64) int64) {
	const n, runs = 20, 5
	src := fixture.Registry(b, nil)
	var refs []string
	for i := range n {
		ref := fmt.Sprintf("%s/bench/img%02d:v1", src, i)
		push(b, ref, int64(i))
		refs = append(refs, ref)
	}
	dir := fixture.Context(b, map[string]string{"Kubefile": "FROM scratch\nIMAGE " + strings.Join(refs, " ") + "\n"})
	policy := filepath.Join(b.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		b.Fatal(err)
	}

	var baseline, build, save, version, cached time.Duration
	var baseSize, archiveSize, diffSize, changedSize int64
	b.ResetTimer()
	for iter := range b.N {
		// The baseline: skopeo into one OCI layout, then tar | zstd -3.
		out := b.TempDir()
		base := filepath.Join(out, "base")
		start := time.Now()
		for i, ref := range refs {
			run(b, "skopeo", "copy", "-q", "--policy", policy, "--src-tls-verify=false",
				"docker://"+ref, fmt.Sprintf("oci:%s:img%02d", base, i))
		}
		run(b, "sh", "-c", `tar -C "$1" -c . | zstd -q -3 -o "$2"`, "sh", base, filepath.Join(out, "base.tar.zst"))
		baseline += time.Since(start)
		baseSize += fileSize(b, filepath.Join(out, "base.tar.zst"))
		os.RemoveAll(base)

		// hoist build + save on an empty store.
		root := fixture.Root(b)
		hoist := func(args ...string) string { return run(b, bin, append([]string{"--root", root}, args...)...) }
		buildV1 := func() string {
			return strings.TrimSpace(hoist("build", "-q", "--tls-verify=false", "-t", "bench/transport:v1", dir))
		}
		start = time.Now()
		id := buildV1()
		build += time.Since(start)
		archive := filepath.Join(out, "x.tar")
		start = time.Now()
		hoist("save", "-q", "-o", archive, "bench/transport:v1")
		save += time.Since(start)
		archiveSize += fileSize(b, archive)
		os.Remove(archive)

		// The cached rebuild against the binary's start-up.
		for range runs {
			start = time.Now()
			run(b, bin, "version")
			version += time.Since(start)
			start = time.Now()
			if again := buildV1(); again != id {
				b.Fatalf("the rebuild made %s, not %s: not cached", again, id)
			}
			cached += time.Since(start)
		}

		// One image changed under the same tag, the image rebuilt, and
		// the difference saved.
		changedSize += push(b, refs[0], int64(1000+iter))
		id2 := strings.TrimSpace(hoist("build", "-q", "--tls-verify=false", "--pull", "always", "-t", "bench/transport:v2", dir))
		if id2 == id {
			b.Fatalf("the rebuild after %s changed made the same image %s", refs[0], id)
		}
		diff := filepath.Join(out, "diff.tar")
		hoist("save", "-q", "--since", "bench/transport:v1", "-o", diff, "bench/transport:v2")
		diffSize += fileSize(b, diff)
		os.RemoveAll(out)
	}
	N := float64(b.N)
	mb := func(n int64) float64 { return float64(n) / N / (1 << 20) }
	b.ReportMetric(baseline.Seconds()/N, "baseline-s")
	b.ReportMetric(build.Seconds()/N, "build-s")
	b.ReportMetric(save.Seconds()/N, "save-s")
	b.ReportMetric((build+save).Seconds()/baseline.Seconds(), "build-save-ratio")
	b.ReportMetric(mb(baseSize), "baseline-MB")
	b.ReportMetric(mb(archiveSize), "archive-MB")
	b.ReportMetric(float64(archiveSize)/float64(baseSize), "size-ratio")
	b.ReportMetric(float64(version.Milliseconds())/N/runs, "version-ms")
	b.ReportMetric(float64(cached.Milliseconds())/N/runs, "cached-ms")
	b.ReportMetric(cached.Seconds()/version.Seconds(), "cached-ratio")
	b.ReportMetric(mb(diffSize), "diff-MB")
	b.ReportMetric(mb(changedSize), "changed-image-MB")
	b.ReportMetric(float64(diffSize)/float64(changedSize), "diff-ratio")
}

// run runs a command and returns its standard output; it fails the
// benchmark with the command's error output.
func run(b *testing.B, cmd string, args ...string) string {
	b.Helper()
	var stdout, stderr bytes.Buffer
	c := exec.Command(cmd, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		b.Fatalf("%s %s: %v\n%s", cmd, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// imageSize is what an image takes in a registry: its manifest, config
// and layers as stored.
func imageSize(b *testing.B, img v1.Image) int64 {
	b.Helper()
	m, err := img.RawManifest()
	if err != nil {
		b.Fatal(err)
	}
	c, err := img.RawConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	size := int64(len(m) + len(c))
	layers, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			b.Fatal(err)
		}
		size += s
	}
	return size
}

// pushText pushes an OCI image of one uncompressed layer (a tar of about
// size bytes): a log file of text that compresses as logs do, different
// for each seed.
func pushText(b *testing.B, ref string, size int, seed int64) v1.Image {
	b.Helper()
	r := rand.New(rand.NewSource(seed))
	words := make([]string, 400)
	for i := range words {
		w := make([]byte, 3+r.Intn(8))
		for j := range w {
			w[j] = byte('a' + r.Intn(26))
		}
		words[i] = string(w)
	}
	levels := []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	var text bytes.Buffer
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for text.Len() < size-4096 {
		ts = ts.Add(time.Duration(r.Intn(2000)) * time.Millisecond)
		fmt.Fprintf(&text, "%s %s component=%s request=%08x latency=%dms msg=\"%s %s %s %s\"\n",
			ts.Format(time.RFC3339Nano), levels[r.Intn(len(levels))], words[r.Intn(20)], r.Uint32(),
			r.Intn(900), words[r.Intn(len(words))], words[r.Intn(len(words))], words[r.Intn(len(words))], words[r.Intn(len(words))])
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "var/log/app.log", Mode: 0o644, Size: int64(text.Len()), ModTime: ts, Typeflag: tar.TypeReg}); err != nil {
		b.Fatal(err)
	}
	tw.Write(text.Bytes())
	tw.Close()

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, static.NewLayer(layer.Bytes(), types.OCIUncompressedLayer))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		b.Fatal(err)
	}
	rf, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(rf, img); err != nil {
		b.Fatalf("pushing %s: %v", ref, err)
	}
	return img
}

package build_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/test/fixture"
)

// BenchmarkBundle builds an image bundling N generated images of about
// 10 MB from a loopback registry, on an empty store each time, and reports
// its time as a ratio to copying the same images into an OCI layout with
// go-containerregistry, measured in the same run.
//
//	go test -run '^$' -bench Bundle -benchtime 3x ./build
func BenchmarkBundle(b *testing.B) {
	const n, size = 20, 10 << 20
	src := fixture.Registry(b, nil)
	var refs []string
	for i := range n {
		ref := fmt.Sprintf("%s/bench/img%02d:v1", src, i)
		fixture.PushRandom(b, ref, size, 1)
		refs = append(refs, ref)
	}
	kubefile := "FROM scratch\nIMAGE " + strings.Join(refs, " ") + "\n"
	var hoist, ggcr time.Duration
	var hoistCPU, ggcrCPU float64
	b.ResetTimer()
	for range b.N {
		cpu := selfCPU()
		start := time.Now()
		p, err := layout.Write(filepath.Join(b.TempDir(), "layout"), empty.Index)
		if err != nil {
			b.Fatal(err)
		}
		for _, ref := range refs {
			r, _ := name.ParseReference(ref, name.Insecure)
			img, err := remote.Image(r)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.AppendImage(img); err != nil {
				b.Fatal(err)
			}
		}
		ggcr += time.Since(start)
		ggcrCPU += selfCPU() - cpu

		store := fixture.Store(b)
		ctx := fixture.Context(b, map[string]string{"Kubefile": kubefile})
		cpu = selfCPU()
		start = time.Now()
		if _, err := Build(context.Background(), store, Options{ContextDir: ctx, Tags: []string{"bench/bundle:v1"}, TLSNoVerify: true}); err != nil {
			b.Fatal(err)
		}
		hoist += time.Since(start)
		hoistCPU += selfCPU() - cpu
	}
	b.ReportMetric(hoist.Seconds()/float64(b.N), "hoist-s/op")
	b.ReportMetric(ggcr.Seconds()/float64(b.N), "ggcr-layout-s/op")
	b.ReportMetric(hoist.Seconds()/ggcr.Seconds(), "ratio")
	// CPU seconds of this process (the source registry's included) tell a
	// run bound by the 2 cores from one waiting on the disk.
	b.ReportMetric(hoistCPU/float64(b.N), "hoist-cpu-s/op")
	b.ReportMetric(ggcrCPU/float64(b.N), "ggcr-cpu-s/op")
}

// selfCPU is the CPU time of this process, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

package build_test

import (
	"context"
	"testing"
	"time"

	. "github.com/hoistdev/hoist/build"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/test/fixture"
)

// BenchmarkCachedRebuild rebuilds, with nothing changed, a small Kubefile
// like Kubefile.example (a COPY, a Helm chart app, a manifests app, two
// bundled images from a loopback registry), opening the store each time
// as `hoist build` does, and reports it as a ratio to opening and closing
// the store alone, measured in the same run: the start-up every command
// of the store pays. bench/rebuild.sh measures the binary against
// `hoist version`.
//
//	go test -run '^$' -bench CachedRebuild ./build
func BenchmarkCachedRebuild(b *testing.B) {
	src := fixture.Registry(b, nil)
	fixture.PushRandom(b, src+"/bench/one:v1", 1<<20, 1)
	fixture.PushRandom(b, src+"/bench/two:v1", 1<<20, 1)
	root := fixture.Root(b)
	dir := fixture.Context(b, map[string]string{
		"Kubefile": "FROM scratch\nARG VERSION=1\nLABEL version=${VERSION}\nCOPY rootfs/ .\n" +
			"APP web local://charts/web\nAPPENV web replicaCount=2\nAPP monitoring local://manifests/monitoring\n" +
			"IMAGE " + src + "/bench/one:v1 " + src + "/bench/two:v1\nLAUNCH [\"monitoring\", \"web\"]\n",
		"rootfs/etc/config.yaml":                  "key: value\n",
		"rootfs/scripts/check.sh":                 "#!/bin/sh\ntrue\n",
		"charts/web/Chart.yaml":                   "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":                  "replicaCount: 1\n",
		"charts/web/templates/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  n: \"{{ .Values.replicaCount }}\"\n",
		"manifests/monitoring/namespace.yaml":     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: monitoring\n",
		"manifests/monitoring/node-exporter.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: exporter\n  namespace: monitoring\n",
	})
	opts := Options{ContextDir: dir, Tags: []string{"bench/cached:v1"}, TLSNoVerify: true, Quiet: true}
	rebuild := func() string {
		store, err := clusterimage.Open(root, clusterimage.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		res, err := Build(context.Background(), store, opts)
		if err != nil {
			b.Fatal(err)
		}
		return res.ID
	}
	first := rebuild()
	var cached, open time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		store, err := clusterimage.Open(root, clusterimage.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		store.Close()
		open += time.Since(start)

		start = time.Now()
		if id := rebuild(); id != first {
			b.Fatalf("the rebuild made %s, not %s: not cached", id, first)
		}
		cached += time.Since(start)
	}
	b.ReportMetric(float64(cached.Microseconds())/float64(b.N), "cached-us/op")
	b.ReportMetric(float64(open.Microseconds())/float64(b.N), "open-store-us/op")
	b.ReportMetric(cached.Seconds()/open.Seconds(), "ratio")
}

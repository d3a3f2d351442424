package lb

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLB: a large upload (the client sends, half-closes, and reads
// the count the backend received) through the balancer, against the same
// upload straight to the backend, in the same run. Reports both
// throughputs and lb/direct, the balancer's share of the direct
// throughput (1 is as fast).
func BenchmarkLB(b *testing.B) {
	const size = 256 << 20
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				binary.Write(c, binary.BigEndian, n)
			}()
		}
	}()
	file := filepath.Join(b.TempDir(), "backends")
	writeFile(b, file, sink.Addr().String()+"\n")
	// The sink is no API server: it fails its one check, which takes
	// it out no sooner than the next hour.
	lb, err := Start(Config{Listen: "127.0.0.1:0", Backends: file, Log: io.Discard, HealthInterval: time.Hour, HealthTimeout: time.Second, Failures: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer lb.Close()

	chunk := make([]byte, 1<<20)
	upload := func(addr string) time.Duration {
		start := time.Now()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		conn.(*net.TCPConn).CloseWrite()
		var got int64
		if err := binary.Read(conn, binary.BigEndian, &got); err != nil || got != size {
			b.Fatalf("the backend received %d bytes of %d (%v)", got, size, err)
		}
		return time.Since(start)
	}

	var direct, through time.Duration
	n := 0
	b.SetBytes(2 * size)
	for b.Loop() {
		direct += upload(sink.Addr().String())
		through += upload(lb.Addr().String())
		n++
	}
	mb := float64(n) * size / 1e6
	b.ReportMetric(mb/direct.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/through.Seconds(), "lb-MB/s")
	b.ReportMetric(direct.Seconds()/through.Seconds(), "lb/direct")
}

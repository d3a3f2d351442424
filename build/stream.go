package build

import (
	"os"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/registry"
	"github.com/hoistdev/hoist/tree"
)

// layerStreamer digests the registry layer's tar while the images are
// pulled: each blob goes into the tar as soon as it is in the cache, so
// that hashing overlaps the pulls instead of following them. Whatever was
// not streamed (the repositories' small files) is added at the end.
type layerStreamer struct {
	cache  string
	split  *os.File
	stream *tree.Stream

	mu     sync.Mutex
	wake   *sync.Cond
	queue  []digest.Digest
	seen   map[digest.Digest]bool
	closed bool
	err    error
	done   chan struct{}
}

func newLayerStreamer(cache, tmp string) (*layerStreamer, error) {
	split, err := os.CreateTemp(tmp, "tar-split-")
	if err != nil {
		return nil, err
	}
	l := &layerStreamer{cache: cache, split: split, stream: tree.NewStream("registry", split),
		seen: map[digest.Digest]bool{}, done: make(chan struct{})}
	l.wake = sync.NewCond(&l.mu)
	go l.run()
	return l, nil
}

// Stored queues a blob that is now in the cache; it never blocks a pull.
func (l *layerStreamer) Stored(d digest.Digest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[d] || l.closed {
		return
	}
	l.seen[d] = true
	l.queue = append(l.queue, d)
	l.wake.Signal()
}

func (l *layerStreamer) run() {
	defer close(l.done)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.wake.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		d := l.queue[0]
		l.queue = l.queue[1:]
		failed := l.err != nil
		l.mu.Unlock()
		if failed {
			continue // drain: the layer will be hashed the slow way
		}
		if err := l.stream.Add(registry.CachedBlob(l.cache, d), registry.BlobPath("", d), nil); err != nil {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
		}
	}
}

// stop ends the streaming of blobs and waits for the queue to drain.
func (l *layerStreamer) stop() error {
	l.mu.Lock()
	l.closed = true
	l.wake.Signal()
	l.mu.Unlock()
	<-l.done
	return l.err
}

// Finish adds the rest of the finished registry directory and returns the
// layer's digest, size and tar-split record.
func (l *layerStreamer) Finish(dir string) (*clusterimage.Streamed, error) {
	if err := l.stop(); err != nil {
		return nil, err
	}
	d, size, err := l.stream.Finish(dir)
	if err != nil {
		return nil, err
	}
	if err := l.split.Sync(); err != nil {
		return nil, err
	}
	return &clusterimage.Streamed{Digest: d, Size: size, TarSplit: l.split.Name()}, nil
}

// Close stops the streamer and removes its record.
func (l *layerStreamer) Close() {
	l.stop()
	l.split.Close()
	os.Remove(l.split.Name())
}

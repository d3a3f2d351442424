package clusterimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/hoistdev/hoist/clusterimage/archive"
)

// partWriter writes an archive to one file, or cut into parts of at most
// partSize bytes, under temporary names until finish gives them their own.
// Writes append; WriteAt rewrites bytes already written (a tar header whose
// size was not known before its data was), in whichever part they fell.
type partWriter struct {
	path     string
	partSize int64 // math.MaxInt64 for one file
	files    []*os.File
	size     int64
}

func newPartWriter(path string, partSize int64) *partWriter {
	if partSize <= 0 {
		partSize = math.MaxInt64
	}
	return &partWriter{path: path, partSize: partSize}
}

func (w *partWriter) part(i int) (*os.File, error) {
	for len(w.files) <= i {
		f, err := os.CreateTemp(filepath.Dir(w.path), "."+filepath.Base(w.path)+"-*")
		if err != nil {
			return nil, err
		}
		// Readable as the archives of podman save and of the libimage
		// writer (CreateTemp makes 0600): they are carried to other
		// machines, and hold nothing secret.
		if err := f.Chmod(0o644); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		w.files = append(w.files, f)
	}
	return w.files[i], nil
}

func (w *partWriter) Write(p []byte) (int, error) {
	n, err := w.WriteAt(p, w.size)
	return n, err
}

func (w *partWriter) WriteAt(p []byte, off int64) (int, error) {
	if off > w.size {
		return 0, errors.New("write past the end of the archive")
	}
	n := 0
	for len(p) > 0 {
		i := int(off / w.partSize)
		within := off % w.partSize
		f, err := w.part(i)
		if err != nil {
			return n, err
		}
		chunk := p
		if rest := w.partSize - within; int64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		m, err := f.WriteAt(chunk, within)
		n += m
		off += int64(m)
		p = p[m:]
		if off > w.size {
			w.size = off
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// abort removes what was written.
func (w *partWriter) abort() {
	for _, f := range w.files {
		f.Close()
		os.Remove(f.Name())
	}
	w.files = nil
}

// finish syncs the archive and gives it its name: path for one file; for
// parts, path.000, ... and the manifest path.json, written last, so that a
// split archive without its manifest is an unfinished one.
func (w *partWriter) finish() error {
	if len(w.files) == 0 {
		if _, err := w.part(0); err != nil {
			return err
		}
	}
	split := w.partSize != math.MaxInt64
	m := archive.SplitManifest{MediaType: archive.SplitMediaType, Size: w.size}
	for i, f := range w.files {
		if err := f.Sync(); err != nil {
			return err
		}
		if split {
			// The parts are read back once for their digests: a header
			// rewritten in place (see tarStream.blob) may fall in any
			// earlier part, so no part is final before the archive is.
			h := sha256.New()
			size, err := io.Copy(h, io.NewSectionReader(f, 0, math.MaxInt64))
			if err != nil {
				return err
			}
			m.Parts = append(m.Parts, archive.Part{Name: filepath.Base(archive.PartName(w.path, i, len(w.files))), Size: size, Digest: digest.NewDigest(digest.SHA256, h)})
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if !split {
		return os.Rename(w.files[0].Name(), w.path)
	}
	for i, f := range w.files {
		if err := os.Rename(f.Name(), archive.PartName(w.path, i, len(w.files))); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := w.path + ".json.tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, w.path+".json")
}

// tarStream writes a tar archive whose files' sizes may be known only once
// their data is written: a blob is compressed on its way into the archive,
// and its header, whose size and name (the digest) are then known, is
// written in the 512 bytes kept for it. Nothing is staged on disk.
type tarStream struct {
	w   *partWriter
	off int64
}

const tarBlock = 512

// header encodes a regular file's header in one block (USTAR, or GNU for
// sizes USTAR cannot hold: never a PAX header of variable length).
func header(name string, size int64) ([]byte, error) {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
	if size >= 1<<33 {
		h.Format = tar.FormatGNU
	}
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
		return nil, err
	}
	if buf.Len() != tarBlock {
		return nil, fmt.Errorf("tar header of %s: %d bytes, not one block", name, buf.Len())
	}
	return buf.Bytes(), nil
}

func (t *tarStream) write(p []byte) error {
	n, err := t.w.Write(p)
	t.off += int64(n)
	return err
}

func (t *tarStream) pad() error {
	if rem := t.off % tarBlock; rem != 0 {
		return t.write(make([]byte, tarBlock-rem))
	}
	return nil
}

// file writes a small file of known content.
func (t *tarStream) file(name string, data []byte) error {
	h, err := header(name, int64(len(data)))
	if err != nil {
		return err
	}
	if err := t.write(h); err != nil {
		return err
	}
	if err := t.write(data); err != nil {
		return err
	}
	return t.pad()
}

// blob writes data, whose digest is known, as a blob.
func (t *tarStream) blob(data []byte) (digest.Digest, error) {
	d := digest.FromBytes(data)
	return d, t.file(archive.BlobName(d), data)
}

// countingWriter hashes and counts what goes to the archive.
type countingWriter struct {
	t    *tarStream
	hash interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.t.write(p); err != nil {
		return 0, err
	}
	c.hash.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

// stream writes r as a blob, compressed as asked, and returns the digest
// and size of what the archive holds.
func (t *tarStream) stream(r io.Reader, compress string) (digest.Digest, int64, error) {
	at := t.off
	if err := t.write(make([]byte, tarBlock)); err != nil { // the header's place
		return "", 0, err
	}
	cw := &countingWriter{t: t, hash: sha256.New()}
	var err error
	switch compress {
	case CompressZstd:
		// Level 3, zstd's default and the command's: about gzip's ratio
		// at several times its speed. Data that does not compress (the
		// gzip blobs of a registry layer) is stored in raw blocks, not
		// compressed again.
		err = zstdFrames(cw, r)
	case CompressGzip:
		var enc *gzip.Writer
		if enc, err = gzip.NewWriterLevel(cw, gzip.DefaultCompression); err == nil {
			if _, err = io.Copy(enc, r); err == nil {
				err = enc.Close()
			}
		}
	default:
		_, err = io.Copy(cw, r)
	}
	if err != nil {
		return "", 0, err
	}
	d := digest.NewDigestFromBytes(digest.SHA256, cw.hash.Sum(nil))
	h, err := header(archive.BlobName(d), cw.n)
	if err != nil {
		return "", 0, err
	}
	if _, err := t.w.WriteAt(h, at); err != nil {
		return "", 0, err
	}
	return d, cw.n, t.pad()
}

// frameSize is how much of a layer goes into one zstd frame. Cutting costs
// ratio (0.2% on text in make bench); frames of 8 MiB, zstd's level-3
// window, made save of random data twice as slow (buffers that no cache
// holds).
const frameSize = 2 << 20

// zstdFrames compresses r as consecutive zstd frames of frameSize bytes
// each, compressed on every core at once and written in order, as zstd -T0
// and pzstd do: a stream encoder keeps to one core (1.6 times slower on
// text here), and save has nothing else to do meanwhile. Every zstd reader
// reads consecutive frames as one stream (the format says so).
func zstdFrames(w io.Writer, r io.Reader) error {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	defer enc.Close()
	// The frames in order; their buffers are reused (allocating them anew
	// costs as much as compressing data that does not compress). The
	// room for a frame is zstd's bound for such data.
	n := runtime.GOMAXPROCS(0) + 1
	type frame struct {
		in, out []byte
		done    chan struct{}
	}
	free := make(chan *frame, n)
	for range n {
		free <- &frame{in: make([]byte, frameSize), out: make([]byte, 0, frameSize+frameSize>>7+1024), done: make(chan struct{}, 1)}
	}
	frames := make(chan *frame, n)
	stop := make(chan struct{})
	var readErr error
	go func() {
		defer close(frames)
		for first := true; ; first = false {
			var f *frame
			select {
			case f = <-free:
			case <-stop:
				return
			}
			m, err := io.ReadFull(r, f.in)
			if m > 0 || first { // an empty layer still gets its (empty) frame
				frames <- f
				go func() {
					f.out = enc.EncodeAll(f.in[:m], f.out[:0])
					f.done <- struct{}{}
				}()
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()
	var writeErr error
	for f := range frames {
		<-f.done
		if writeErr == nil {
			if _, writeErr = w.Write(f.out); writeErr != nil {
				close(stop)
			}
		}
		free <- f
	}
	if writeErr != nil {
		return writeErr
	}
	return readErr
}

// close ends the archive with its two zero blocks.
func (t *tarStream) close() error {
	return t.write(make([]byte, 2*tarBlock))
}

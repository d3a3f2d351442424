package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// A delta layer stands for a layer of a differential archive whose files
// are mostly in the base image already: a new version of the registry
// layer, where only the blobs of the image that changed are new. It is the
// layer's uncompressed tar stream with the data of each regular file that
// a layer of the base holds with the same name and content replaced by a
// reference to that file. Applying it to the base gives the layer back
// byte for byte, so its diff ID, the image's config and ID do not change.
//
// The stream (before the archive's compression):
//
//	"hoist-delta-v1\n"
//	ops, each a byte and its operands (uvarint: unsigned LEB128):
//	  'L' n:uvarint bytes[n]              bytes of the layer as they are
//	  'R' layer:uvarint name-length:uvarint name size:uvarint sha256[32]
//	                                      the data of file name of the
//	                                      base's layer (bottom-up index)
//	  'E'                                 the end: nothing may follow

// deltaMagic starts a delta.
const deltaMagic = "hoist-delta-v1\n"

// Delta limits: a literal op is cut at maxLiteral bytes when written, and
// refused above it when read, so that no op makes the reader hold more.
const (
	maxLiteral = 1 << 20
	// minReference is the smallest file worth a reference (its op is
	// about 40 bytes plus the name).
	minReference = 1024
	maxDeltaName = 4096
)

// DeltaBase is the base image's layers, as a delta refers to them.
type DeltaBase interface {
	// Layers is the number of the base's layers.
	Layers() int
	// Open opens the regular file name of layer i (bottom-up) and says its
	// size; an error wrapping fs.ErrNotExist when the layer has no regular
	// file of that name. name is a clean, relative slash path.
	Open(i int, name string) (io.ReadCloser, int64, error)
}

// WriteDelta writes the delta of layer (an uncompressed layer tar stream)
// against base to w, and returns how many files it refers to. Every file
// referred to was compared with the layer's data byte for byte.
func WriteDelta(w io.Writer, layer io.Reader, base DeltaBase) (int, error) {
	dw := &deltaWriter{w: bufio.NewWriterSize(w, 64<<10), a: make([]byte, 256<<10), b: make([]byte, 256<<10)}
	if _, err := dw.w.WriteString(deltaMagic); err != nil {
		return 0, err
	}
	rec := &recorder{r: layer, to: dw, on: true}
	tr := tar.NewReader(rec)
	refs := 0
	for {
		rec.on = true
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return refs, fmt.Errorf("reading the layer: %w", err)
		}
		name, ok := referable(h)
		if !ok {
			continue // its data is read through rec on the next Next
		}
		i, f := findInBase(base, name, h.Size)
		if f == nil {
			continue
		}
		rec.on = false
		same, err := dw.compare(tr, f, base, i, name, h.Size)
		f.Close()
		if err != nil {
			return refs, err
		}
		if same {
			refs++
		}
	}
	// What follows the end blocks (tar pads to a record) is kept too.
	rec.on = true
	if _, err := io.Copy(io.Discard, rec); err != nil {
		return refs, fmt.Errorf("reading the layer: %w", err)
	}
	if rec.err != nil {
		return refs, rec.err
	}
	if err := dw.flush(); err != nil {
		return refs, err
	}
	if err := dw.w.WriteByte('E'); err != nil {
		return refs, err
	}
	return refs, dw.w.Flush()
}

// referable tells whether an entry's data may be a reference, and the
// name a base layer has it under.
func referable(h *tar.Header) (string, bool) {
	if h.Typeflag != tar.TypeReg || h.Size < minReference {
		return "", false
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", false // its data in the stream is not its content
		}
	}
	name, err := deltaName(h.Name)
	if err != nil {
		return "", false
	}
	return name, true
}

// deltaName is a layer entry's name as a base is asked for it.
func deltaName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "/"))
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || len(clean) > maxDeltaName || strings.ContainsRune(clean, 0) {
		return "", fmt.Errorf("file name %q: not a relative path within a layer", name)
	}
	return clean, nil
}

// findInBase opens the topmost base layer's file of that name and size.
func findInBase(base DeltaBase, name string, size int64) (int, io.ReadCloser) {
	for i := base.Layers() - 1; i >= 0; i-- {
		f, n, err := base.Open(i, name)
		if err != nil {
			continue
		}
		if n == size {
			return i, f
		}
		f.Close()
	}
	return 0, nil
}

// recorder passes what the tar reader reads on to the delta while on.
type recorder struct {
	r   io.Reader
	to  *deltaWriter
	on  bool
	err error
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if r.on && n > 0 && r.err == nil {
		r.err = r.to.literal(p[:n])
	}
	return n, err
}

// deltaWriter writes ops, gathering bytes into literal ops.
type deltaWriter struct {
	w   *bufio.Writer
	lit []byte
	// a and b hold the layer's and the base's data as compare reads them
	// (b again in equalPart): made once, not per file compared.
	a, b []byte
}

func (d *deltaWriter) literal(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), maxLiteral-len(d.lit))
		d.lit = append(d.lit, p[:n]...)
		p = p[n:]
		if len(d.lit) == maxLiteral {
			if err := d.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *deltaWriter) flush() error {
	if len(d.lit) == 0 {
		return nil
	}
	d.w.WriteByte('L')
	d.w.Write(binary.AppendUvarint(nil, uint64(len(d.lit))))
	_, err := d.w.Write(d.lit)
	d.lit = d.lit[:0]
	return err
}

// compare reads an entry's data from the layer alongside the base's file:
// equal, it becomes a reference; else the data, the part read so far
// taken from the base (where it was equal), goes literal.
func (d *deltaWriter) compare(layer io.Reader, f io.Reader, base DeltaBase, i int, name string, size int64) (bool, error) {
	h := sha256.New()
	a, b := d.a, d.b
	var done int64
	for done < size {
		n := int(min(int64(len(a)), size-done))
		if _, err := io.ReadFull(layer, a[:n]); err != nil {
			return false, fmt.Errorf("reading %s of the layer: %w", name, err)
		}
		if _, err := io.ReadFull(f, b[:n]); err != nil || !bytes.Equal(a[:n], b[:n]) {
			if err := d.equalPart(base, i, name, done); err != nil {
				return false, err
			}
			// The rest of the data is read through the recorder.
			return false, d.literal(a[:n])
		}
		h.Write(a[:n])
		done += int64(n)
	}
	if err := d.flush(); err != nil {
		return false, err
	}
	d.w.WriteByte('R')
	d.w.Write(binary.AppendUvarint(nil, uint64(i)))
	d.w.Write(binary.AppendUvarint(nil, uint64(len(name))))
	d.w.WriteString(name)
	d.w.Write(binary.AppendUvarint(nil, uint64(size)))
	_, err := d.w.Write(h.Sum(nil))
	return true, err
}

// equalPart writes the first n bytes of a base file, read again, as
// literal: they were equal to the layer's.
func (d *deltaWriter) equalPart(base DeltaBase, i int, name string, n int64) error {
	if n == 0 {
		return nil
	}
	f, _, err := base.Open(i, name)
	if err != nil {
		return err
	}
	defer f.Close()
	// b is free: compare has no more use for the base's bytes.
	buf := d.b
	for n > 0 {
		m := int(min(int64(len(buf)), n))
		if _, err := io.ReadFull(f, buf[:m]); err != nil {
			return fmt.Errorf("reading %s of the base again: %w", name, err)
		}
		if err := d.literal(buf[:m]); err != nil {
			return err
		}
		n -= int64(m)
	}
	return nil
}

// DeltaError is a delta that cannot be applied: malformed, or referring to
// a file the base lacks or holds with other content.
type DeltaError struct {
	// Offset is where in the (uncompressed) delta the op starts.
	Offset int64
	Reason string
}

func (e *DeltaError) Error() string {
	return fmt.Sprintf("delta layer at byte %d: %s", e.Offset, e.Reason)
}

// ReadDelta applies a delta to base and writes the layer it stands for to
// w. The caller checks what it wrote against the layer's diff ID; every
// file taken from the base is checked against the digest the delta gives.
func ReadDelta(w io.Writer, delta io.Reader, base DeltaBase) error {
	r := &offsetReader{r: bufio.NewReaderSize(delta, 64<<10)}
	magic := make([]byte, len(deltaMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != deltaMagic {
		return &DeltaError{0, "not a hoist delta layer (no " + strings.TrimSpace(deltaMagic) + " header)"}
	}
	buf := make([]byte, 256<<10)
	for {
		at := r.n
		op, err := r.ReadByte()
		if err != nil {
			return &DeltaError{at, "ends before its end op"}
		}
		switch op {
		case 'L':
			n, err := binary.ReadUvarint(r)
			if err != nil || n == 0 || n > maxLiteral {
				return &DeltaError{at, fmt.Sprintf("a literal of %d bytes: want 1 to %d", n, maxLiteral)}
			}
			if _, err := io.CopyBuffer(w, io.LimitReader(r, int64(n)), buf); err != nil {
				return err
			}
			if r.n != at+1+int64(uvarintLen(n))+int64(n) {
				return &DeltaError{at, "a literal cut short"}
			}
		case 'R':
			if err := readReference(w, r, base, at, buf); err != nil {
				return err
			}
		case 'E':
			if _, err := r.ReadByte(); err != io.EOF {
				return &DeltaError{at + 1, "data after the end op"}
			}
			return nil
		default:
			return &DeltaError{at, fmt.Sprintf("unknown op %q", op)}
		}
	}
}

func uvarintLen(n uint64) int { return len(binary.AppendUvarint(nil, n)) }

// readReference copies a base file a reference names, checking it.
func readReference(w io.Writer, r *offsetReader, base DeltaBase, at int64, buf []byte) error {
	layer, err := binary.ReadUvarint(r)
	if err != nil || layer >= uint64(base.Layers()) {
		return &DeltaError{at, fmt.Sprintf("a reference to layer %d: the base has %d", layer, base.Layers())}
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > maxDeltaName {
		return &DeltaError{at, "a reference's name is empty or too long"}
	}
	nameBytes := make([]byte, n)
	if _, err := io.ReadFull(r, nameBytes); err != nil {
		return &DeltaError{at, "a reference cut short"}
	}
	name, err := deltaName(string(nameBytes))
	if err != nil || name != string(nameBytes) {
		return &DeltaError{at, fmt.Sprintf("a reference to %q: not a clean relative path", nameBytes)}
	}
	size, err := binary.ReadUvarint(r)
	if err != nil || size > 1<<50 {
		return &DeltaError{at, "a reference's size is not a size"}
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, want); err != nil {
		return &DeltaError{at, "a reference cut short"}
	}
	f, got, err := base.Open(int(layer), name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &DeltaError{at, fmt.Sprintf("the base's layer %d has no file %s", layer, name)}
		}
		return err
	}
	defer f.Close()
	if got != int64(size) {
		return &DeltaError{at, fmt.Sprintf("the base's file %s of layer %d is %d bytes, the delta was made against %d", name, layer, got, size)}
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(f, int64(size)), buf); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return &DeltaError{at, fmt.Sprintf("the base's file %s of layer %d differs from the one the delta was made against", name, layer)}
	}
	return nil
}

// offsetReader counts what was read, for error messages.
type offsetReader struct {
	r *bufio.Reader
	n int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.n += int64(n)
	return n, err
}

func (o *offsetReader) ReadByte() (byte, error) {
	b, err := o.r.ReadByte()
	if err == nil {
		o.n++
	}
	return b, err
}

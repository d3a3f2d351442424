package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/agent"
)

// keepPacked is how many packed rootfs streams stay under --root, the
// most recently used: an image rolled out and the one before it, each with
// and without its registry/. Older ones are removed when a new one is made;
// packing again costs a second or so per 200 MB.
const keepPacked = 4

// packIndex is what is recorded beside a packed stream: its segments (with
// their CRCs) and, once a node needed it, the stream's sha256.
type packIndex struct {
	Digest   string          `json:"digest,omitempty"` // once a node needed it
	Size     int64           `json:"size"`
	Segments []agent.Segment `json:"segments"`
}

// packCached is the packed stream of the tree at dir, kept in file
// (layout.Local.PackedRootfs): made there once per image and used by every
// apply after, unless the file no longer has the size and CRCs its index
// records (cut short, damaged), when it is made again. A lock beside it keeps
// hoists that pack at once from making the same file twice.
func packCached(file, dir string, exclude ...string) (packedTree, error) {
	cacheDir := filepath.Dir(file)
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return packedTree{}, err
	}
	unlock, err := lockCache(cacheDir)
	if err != nil {
		return packedTree{}, err
	}
	defer unlock()
	index := file + ".json"
	if p, err := openPacked(file, index); err == nil {
		// The index's time is the stream's last use, for pruning; the
		// stream itself is not touched.
		now := time.Now()
		os.Chtimes(index, now, now)
		return p, nil
	}
	// Under the lock, no other hoist is packing: what is left of a
	// packing was killed.
	if stale, err := filepath.Glob(filepath.Join(cacheDir, ".packing-*")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	f, err := os.CreateTemp(cacheDir, ".packing-*")
	if err != nil {
		return packedTree{}, err
	}
	frames, done := earlierFrames(cacheDir)
	p, err := packInto(f, dir, frames, exclude...)
	// A frame found damaged while copied is left out the next time: each
	// time round, one fewer.
	for errors.Is(err, agent.ErrDamagedFrame) {
		if err = f.Truncate(0); err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err == nil {
			p, err = packInto(f, dir, frames, exclude...)
		}
	}
	done()
	if err == nil {
		p.whole.index = index
		err = writeIndex(index, packIndex{Size: p.Size, Segments: p.Segments})
	}
	if err == nil {
		// The open file is the one renamed: p stays valid.
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return packedTree{}, err
	}
	prunePacked(cacheDir, index)
	return p, nil
}

// lockCache takes the lock of the packed streams in cacheDir: one hoist
// at a time makes, prunes or records one.
func lockCache(cacheDir string) (func(), error) {
	lf, err := os.OpenFile(filepath.Join(cacheDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		lf.Close()
		return nil, fmt.Errorf("locking %s: %w", cacheDir, err)
	}
	return func() { lf.Close() }, nil
}

// recordDigest writes digest into the index of the stream p, unless the
// stream was made again meanwhile (another index).
func recordDigest(p packedTree, digest string) {
	unlock, err := lockCache(filepath.Dir(p.whole.index))
	if err != nil {
		return
	}
	defer unlock()
	data, err := os.ReadFile(p.whole.index)
	var idx packIndex
	if err != nil || json.Unmarshal(data, &idx) != nil || idx.Size != p.Size || !slices.Equal(idx.Segments, p.Segments) {
		return
	}
	idx.Digest = digest
	writeIndex(p.whole.index, idx)
}

// openPacked opens the stream at file, once its index is read and every
// segment's bytes have the CRC the index records: a tenth of the time a
// sha256 of the file takes (the stream's own sha256, what the nodes check,
// is computed once, when a node first needs it). The CRCs are there for a file cut
// short or damaged on disk; whoever can write under --root can change the
// images themselves.
func openPacked(file, index string) (packedTree, error) {
	data, err := os.ReadFile(index)
	if err != nil {
		return packedTree{}, err
	}
	var idx packIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return packedTree{}, err
	}
	if err := idx.check(); err != nil {
		return packedTree{}, fmt.Errorf("%s: %w", index, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return packedTree{}, err
	}
	p := packedTree{File: f, Size: idx.Size, Segments: idx.Segments, whole: &wholeDigest{digest: idx.Digest, index: index}}
	fi, err := f.Stat()
	if err == nil && fi.Size() != idx.Size {
		err = fmt.Errorf("%s is %d bytes, its index says %d", file, fi.Size(), idx.Size)
	}
	if err == nil {
		err = p.checkSegments(p.Segments)
	}
	if err != nil {
		f.Close()
		return packedTree{}, err
	}
	return p, nil
}

// checkSegments reads segs of the file, each against its CRC.
func (p packedTree) checkSegments(segs []agent.Segment) error {
	buf := make([]byte, 1<<20)
	for _, s := range segs {
		h := crc32.New(agent.CRCTable)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(p.File, s.Offset, s.Length), buf); err != nil {
			return err
		}
		if h.Sum32() != s.CRC {
			return fmt.Errorf("%s: the %d bytes at %d do not have the CRC recorded: damaged", p.File.Name(), s.Length, s.Offset)
		}
	}
	return nil
}

// earlierFrames are the blobs' frames of the streams kept in cacheDir, for
// a new stream to copy (agent.PackReusing), which checks each copy against
// its CRC: one that fails makes the packing fail with
// agent.ErrDamagedFrame, and is not offered again. done closes their
// files.
func earlierFrames(cacheDir string) (*keptFrames, func()) {
	kept := &keptFrames{byBlob: map[string]*agent.Frame{}}
	var files []*os.File
	indexes, _ := filepath.Glob(filepath.Join(cacheDir, "*.tar.zst.json"))
	for _, index := range indexes {
		data, err := os.ReadFile(index)
		if err != nil {
			continue
		}
		var idx packIndex
		if json.Unmarshal(data, &idx) != nil || idx.check() != nil {
			continue
		}
		f, err := os.Open(strings.TrimSuffix(index, ".json"))
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err != nil || fi.Size() != idx.Size {
			f.Close()
			continue
		}
		files = append(files, f)
		for _, s := range idx.Segments {
			if s.Blob != "" && s.Path == "" {
				kept.byBlob[s.Blob] = &agent.Frame{File: f, Segment: s}
			}
		}
	}
	return kept, func() {
		for _, f := range files {
			f.Close()
		}
	}
}

// keptFrames are the frames of the streams under --root, by blob.
type keptFrames struct {
	byBlob map[string]*agent.Frame
}

func (k *keptFrames) Frame(want agent.Segment) *agent.Frame {
	fr, ok := k.byBlob[want.Blob]
	if !ok || fr.Segment.Size != want.Size || fr.Segment.Mode != want.Mode {
		return nil
	}
	return fr
}

func (k *keptFrames) Damaged(fr *agent.Frame) { delete(k.byBlob, fr.Segment.Blob) }

// check refuses an index whose segments do not tile the stream.
func (idx packIndex) check() error {
	hexDigest, ok := strings.CutPrefix(idx.Digest, "sha256:")
	if idx.Digest != "" && (!ok || !agent.IsHexDigest(hexDigest)) {
		return fmt.Errorf("digest %q", idx.Digest)
	}
	var at int64
	for _, s := range idx.Segments {
		if s.Offset != at || s.Length <= 0 || (s.Blob != "" && !agent.IsHexDigest(s.Blob)) || (s.Path != "" && s.Blob == "") {
			return errors.New("segments do not tile the stream")
		}
		at += s.Length
	}
	if at != idx.Size || len(idx.Segments) == 0 || idx.Segments[len(idx.Segments)-1].Blob != "" {
		return errors.New("segments do not tile the stream")
	}
	return nil
}

func writeIndex(index string, idx packIndex) error {
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	tmp := index + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, index)
}

// prunePacked removes the streams beyond the keepPacked used last, never
// keep's. A hoist sending one of them holds it open: it reads on.
func prunePacked(cacheDir, keep string) {
	indexes, err := filepath.Glob(filepath.Join(cacheDir, "*.tar.zst.json"))
	if err != nil {
		return
	}
	used := map[string]time.Time{}
	var others []string
	for _, idx := range indexes {
		if fi, err := os.Stat(idx); err == nil && idx != keep {
			used[idx] = fi.ModTime()
			others = append(others, idx)
		}
	}
	slices.SortFunc(others, func(a, b string) int { return used[b].Compare(used[a]) })
	for _, idx := range others[min(keepPacked-1, len(others)):] {
		os.Remove(strings.TrimSuffix(idx, ".json"))
		os.Remove(idx)
	}
}

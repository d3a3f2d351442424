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
// and without its registry/. Older ones are removed when a new one is made
// (their files stay while a kept stream shares frames of them); packing
// again costs a second or so per 200 MB.
const keepPacked = 4

// packedSuffix ends the name of a packed stream's file in the cache.
const packedSuffix = ".tar.zst"

// packIndex is what is recorded beside a packed stream: its segments (with
// their CRCs), where each one's bytes are, and, once a node needed it, the
// stream's sha256.
type packIndex struct {
	Digest   string          `json:"digest,omitempty"` // once a node needed it
	Size     int64           `json:"size"`
	Segments []agent.Segment `json:"segments"`
	// Shared lists the segments whose bytes are in another stream's file
	// of the cache (a frame of a blob an earlier version had); the other
	// segments follow each other in the stream's own file.
	Shared []sharedFrame `json:"shared,omitempty"`
}

// sharedFrame is a segment of a stream held by another stream's file.
type sharedFrame struct {
	Segment int    `json:"segment"` // index in Segments
	File    string `json:"file"`    // a file of the cache, by name
	At      int64  `json:"at"`
}

// packCached is the packed stream of the tree at dir, kept in file
// (layout.Local.PackedRootfs): made there once per image and used by every
// apply after, unless its files no longer have the sizes and CRCs its index
// records (cut short, damaged, removed), when it is made again. A lock
// beside it keeps hoists that pack at once from making the same file twice.
// The frames of blobs an earlier stream of the cache holds are not
// written again: the new stream shares them (its index names their file).
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
	frames, err := earlierFrames(cacheDir, filepath.Base(file))
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return packedTree{}, err
	}
	p, err := packInto(f, dir, frames, exclude...)
	// A frame found damaged is not shared the next time: each time round,
	// one fewer.
	for errors.Is(err, agent.ErrDamagedFrame) {
		if err = f.Truncate(0); err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err == nil {
			p, err = packInto(f, dir, frames, exclude...)
		}
	}
	var idx packIndex
	if err == nil {
		p.whole.index = index
		idx, err = frames.index(p)
	}
	if err == nil {
		err = writeIndex(index, idx)
	}
	if err == nil {
		// The open file is the one renamed: p stays valid.
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		frames.close()
		f.Close()
		os.Remove(f.Name())
		return packedTree{}, err
	}
	// The tree keeps open the files of the frames it shares; the others
	// are closed.
	p.files = append(p.files, frames.used(p)...)
	frames.close()
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
// segment's bytes, in its own file or the one it shares, have the CRC the
// index records: a tenth of the time a sha256 of the stream takes (the
// stream's own sha256, what the nodes check, is computed once, when a node
// first needs it). The CRCs are there for a file cut short or damaged on
// disk; whoever can write under --root can change the images themselves.
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
	p, err := idx.open(filepath.Dir(file), filepath.Base(file))
	if err != nil {
		return packedTree{}, err
	}
	p.whole = &wholeDigest{digest: idx.Digest, index: index}
	if err := p.checkSegments(); err != nil {
		p.Close()
		return packedTree{}, err
	}
	return p, nil
}

// open opens the files of a checked index's stream, named name in dir,
// and places its segments: its own file must hold exactly its own
// segments, a shared file at least the frame it holds.
func (idx packIndex) open(dir, name string) (packedTree, error) {
	p := packedTree{Size: idx.Size, Segments: idx.Segments}
	byName := map[string]*os.File{}
	openFile := func(n string) (*os.File, error) {
		if f, ok := byName[n]; ok {
			return f, nil
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		byName[n] = f
		p.files = append(p.files, f)
		return f, nil
	}
	own, err := openFile(name)
	if err != nil {
		return packedTree{}, err
	}
	shared := map[int]sharedFrame{}
	for _, s := range idx.Shared {
		shared[s.Segment] = s
	}
	var at int64
	for i, s := range idx.Segments {
		if sh, ok := shared[i]; ok {
			f, err := openFile(sh.File)
			if err == nil {
				var fi os.FileInfo
				if fi, err = f.Stat(); err == nil && fi.Size() < sh.At+s.Length {
					err = fmt.Errorf("%s is %d bytes, shorter than the frame at %d it holds", f.Name(), fi.Size(), sh.At)
				}
			}
			if err != nil {
				p.Close()
				return packedTree{}, err
			}
			p.pieces = append(p.pieces, piece{f, sh.At, s.Length})
			continue
		}
		p.pieces = append(p.pieces, piece{own, at, s.Length})
		at += s.Length
	}
	if fi, err := own.Stat(); err != nil || fi.Size() != at {
		p.Close()
		if err == nil {
			err = fmt.Errorf("%s is %d bytes, its index says %d", own.Name(), fi.Size(), at)
		}
		return packedTree{}, err
	}
	return p, nil
}

// checkSegments reads every segment against its CRC.
func (p packedTree) checkSegments() error {
	buf := make([]byte, 1<<20)
	for i, s := range p.Segments {
		pc := p.pieces[i]
		h := crc32.New(agent.CRCTable)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(pc.f, pc.at, pc.n), buf); err != nil {
			return err
		}
		if h.Sum32() != s.CRC {
			return fmt.Errorf("%s: the %d bytes at %d do not have the CRC recorded: damaged", pc.f.Name(), pc.n, pc.at)
		}
	}
	return nil
}

// keptFrames are the frames of blobs the streams of the cache hold, for a
// new stream to share (agent.PackReusing), which checks each against its
// CRC: one that fails makes the packing fail with agent.ErrDamagedFrame,
// and is not offered again.
type keptFrames struct {
	byBlob map[string]*agent.Frame
	// names are the files open, by file, with the cache's name of each.
	names map[*os.File]string
}

// earlierFrames opens the streams of cacheDir (but the one named self,
// being made again) for their blobs' frames.
func earlierFrames(cacheDir, self string) (*keptFrames, error) {
	kept := &keptFrames{byBlob: map[string]*agent.Frame{}, names: map[*os.File]string{}}
	indexes, err := filepath.Glob(filepath.Join(cacheDir, "*"+packedSuffix+".json"))
	if err != nil {
		return nil, err
	}
	for _, index := range indexes {
		name := strings.TrimSuffix(filepath.Base(index), ".json")
		if name == self {
			continue
		}
		data, err := os.ReadFile(index)
		if err != nil {
			continue
		}
		var idx packIndex
		if json.Unmarshal(data, &idx) != nil || idx.check() != nil {
			continue
		}
		p, err := idx.open(cacheDir, name)
		if err != nil {
			continue // a stream cut short or gone: its frames are not offered
		}
		for _, f := range p.files {
			kept.names[f] = filepath.Base(f.Name())
		}
		for i, s := range p.Segments {
			if s.Blob != "" && s.Path == "" {
				kept.byBlob[s.Blob] = &agent.Frame{File: p.pieces[i].f, At: p.pieces[i].at, Segment: s}
			}
		}
	}
	return kept, nil
}

func (k *keptFrames) Frame(want agent.Segment) *agent.Frame {
	fr, ok := k.byBlob[want.Blob]
	if !ok || fr.Segment.Size != want.Size || fr.Segment.Mode != want.Mode {
		return nil
	}
	return fr
}

func (k *keptFrames) Damaged(fr *agent.Frame) { delete(k.byBlob, fr.Segment.Blob) }

// index is the index of p, packed sharing these frames.
func (k *keptFrames) index(p packedTree) (packIndex, error) {
	idx := packIndex{Size: p.Size, Segments: p.Segments}
	own := p.own()
	for i, pc := range p.pieces {
		if pc.f == own {
			continue
		}
		name, ok := k.names[pc.f]
		if !ok {
			return packIndex{}, fmt.Errorf("segment %d of the packed rootfs is in a file not of the cache", i)
		}
		idx.Shared = append(idx.Shared, sharedFrame{Segment: i, File: name, At: pc.at})
	}
	return idx, nil
}

// used hands over to p the files of the frames it shares: close then
// leaves them open.
func (k *keptFrames) used(p packedTree) []*os.File {
	var out []*os.File
	for _, pc := range p.pieces {
		if _, ok := k.names[pc.f]; ok && !slices.Contains(out, pc.f) && pc.f != p.own() {
			out = append(out, pc.f)
		}
	}
	for _, f := range out {
		delete(k.names, f)
	}
	return out
}

// close closes the files not handed over.
func (k *keptFrames) close() {
	for f := range k.names {
		f.Close()
	}
	k.names = nil
}

// check refuses an index whose segments do not tile the stream, or whose
// shared frames name anything but another file of the cache.
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
	last := -1
	for _, sh := range idx.Shared {
		if sh.Segment <= last || sh.Segment >= len(idx.Segments) || idx.Segments[sh.Segment].Blob == "" || sh.At < 0 ||
			sh.File != filepath.Base(sh.File) || !strings.HasSuffix(sh.File, packedSuffix) || strings.HasPrefix(sh.File, ".") {
			return fmt.Errorf("shared frame %+v: not a blob's frame in a file of the cache", sh)
		}
		last = sh.Segment
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

// prunePacked removes the indexes beyond the keepPacked used last, never
// keep's, then every stream file no index left names (as its own file or
// as one it shares frames of). A hoist sending one of them holds it open:
// it reads on.
func prunePacked(cacheDir, keep string) {
	indexes, err := filepath.Glob(filepath.Join(cacheDir, "*"+packedSuffix+".json"))
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
		os.Remove(idx)
	}
	needed := map[string]bool{}
	indexes, _ = filepath.Glob(filepath.Join(cacheDir, "*"+packedSuffix+".json"))
	for _, index := range indexes {
		name := strings.TrimSuffix(filepath.Base(index), ".json")
		needed[name] = true
		var idx packIndex
		if data, err := os.ReadFile(index); err == nil && json.Unmarshal(data, &idx) == nil {
			for _, sh := range idx.Shared {
				needed[sh.File] = true
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(cacheDir, "*"+packedSuffix))
	for _, f := range files {
		if !needed[filepath.Base(f)] {
			os.Remove(f)
		}
	}
}

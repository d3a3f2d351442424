package clusterimage

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/go-digest"
)

// layerFiles is an image's layers as a delta layer refers to them (see
// archive.DeltaBase): the files of each layer alone, read from the storage
// driver's directory of that layer, never from a mount of the image.
//
// Each directory is opened as an os.Root: a name a delta gives (read from
// an archive) cannot leave it, through ".." or a symlink of the layer.
type layerFiles struct {
	roots []*os.Root
}

// openLayerFiles opens the layers of a stored image, bottom up.
func (s *Store) openLayerFiles(imageID string) (*layerFiles, error) {
	img, err := s.Storage.Image(imageID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for id := img.TopLayer; id != ""; {
		l, err := s.Storage.Layer(id)
		if err != nil {
			return nil, err
		}
		ids = append([]string{l.ID}, ids...)
		id = l.Parent
	}
	out := &layerFiles{}
	for _, id := range ids {
		dir, err := s.layerDir(id)
		if err == nil {
			var r *os.Root
			if r, err = os.OpenRoot(dir); err == nil {
				out.roots = append(out.roots, r)
				continue
			}
		}
		out.Close()
		return nil, fmt.Errorf("layer %s of image %s: %w", id, shortDigest(digest.Digest("sha256:"+imageID)), err)
	}
	return out, nil
}

// layerDir is the directory the store keeps a layer's own files in: the
// overlay driver's upper directory (its "diff"); the vfs driver keeps each
// layer whole in vfs/dir/<id>, its lower layers' files with it.
func (s *Store) layerDir(layerID string) (string, error) {
	switch s.Driver {
	case DriverOverlay:
		driver, err := s.Storage.GraphDriver()
		if err != nil {
			return "", err
		}
		meta, err := driver.Metadata(layerID)
		if err != nil {
			return "", err
		}
		if meta["UpperDir"] == "" {
			return "", fmt.Errorf("the overlay driver names no directory for layer %s", layerID)
		}
		return meta["UpperDir"], nil
	case DriverVFS:
		return filepath.Join(s.Storage.GraphRoot(), "vfs", "dir", layerID), nil
	}
	return "", fmt.Errorf("the %s storage driver's layers cannot be read file by file", s.Driver)
}

func (l *layerFiles) Layers() int { return len(l.roots) }

// Open opens a regular file of one layer; anything else (a directory, a
// device, an overlay whiteout, a FIFO) is not there for a delta.
func (l *layerFiles) Open(i int, name string) (io.ReadCloser, int64, error) {
	info, err := l.roots[i].Lstat(name)
	if err != nil {
		return nil, 0, err
	}
	if !info.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	// O_NONBLOCK: should a FIFO take the file's place after Lstat, opening
	// it does not wait for a writer; Stat below refuses it.
	f, err := l.roots[i].OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, err
	}
	if info, err = f.Stat(); err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return f, info.Size(), nil
}

func (l *layerFiles) Close() {
	for _, r := range l.roots {
		r.Close()
	}
}

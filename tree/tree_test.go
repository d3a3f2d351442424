package tree

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteIgnoresAccessAndChangeTimes: reading a file, or touching its
// access time (which changes its change time too), does not change the tar
// of the tree.
func TestWriteIgnoresAccessAndChangeTimes(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"etc/a.conf": "a", "bin/tool": "tool"})
	tarOf := func() []byte {
		var b bytes.Buffer
		if err := Write(&b, dir, "rootfs", nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	before := tarOf()
	file := filepath.Join(dir, "etc/a.conf")
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, time.Now().Add(time.Hour), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if after := tarOf(); !bytes.Equal(before, after) {
		t.Errorf("the tar changed with a file's access time (%d bytes, then %d)", len(before), len(after))
	}
}

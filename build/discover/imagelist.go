package discover

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// imageList records the images of a list file (sealer's imageList): one
// reference a line, # comments and blank lines skipped.
func (f *finder) imageList(p string) error {
	file, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("image list: %w", err)
	}
	defer file.Close()
	name := f.display(p)
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if err := f.add(line, Source{FoundIn: fmt.Sprintf("%s:%d", name, n), Kind: KindImageList}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

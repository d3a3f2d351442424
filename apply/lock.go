package apply

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/layout"
)

// lock keeps two applies or deletes of one cluster apart; the returned
// function releases it.
func lock(root, cluster string) (func(), error) {
	state := layout.Local{Root: root}.Cluster(cluster)
	if err := os.MkdirAll(state.Dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(state.Lock(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("cluster %s is being applied or deleted by another hoist (%s)", cluster, f.Name())
	}
	return func() { f.Close() }, nil
}

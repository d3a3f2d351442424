package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"go.podman.io/storage/pkg/ioutils"

	"github.com/hoistdev/hoist/agent"
	"github.com/hoistdev/hoist/apply/clusterfile"
	"github.com/hoistdev/hoist/layout"
)

// SaveClusterfile keeps cf in its cluster's state under root, without its
// secrets (clusterfile.MarshalKept): what status and delete read when no
// Clusterfile is given. Apply and run call it once the apply is certain
// to go ahead, so that the state says what was applied last.
func SaveClusterfile(root string, cf *clusterfile.Clusterfile) error {
	data, err := clusterfile.MarshalKept(cf)
	if err != nil {
		return err
	}
	return writeKept(root, cf.Cluster.Name, data)
}

func writeKept(root, name string, data []byte) error {
	state := layout.Local{Root: root}.Cluster(name)
	if err := os.MkdirAll(state.Dir, 0o700); err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	if err := ioutils.AtomicWriteFile(state.Clusterfile(), data, 0o600); err != nil {
		return fmt.Errorf("cluster %s: keeping its Clusterfile: %w", name, err)
	}
	return nil
}

// KeptClusterfile reads the Clusterfile kept in the state of cluster name
// under root. An error that wraps fs.ErrNotExist means that none is kept:
// the cluster was applied by a hoist that kept none, or not from here.
func KeptClusterfile(root, name string) (*clusterfile.Kept, error) {
	if err := agent.CheckClusterName(name); err != nil {
		return nil, fmt.Errorf("cluster name: %w", err)
	}
	file := layout.Local{Root: root}.Cluster(name).Clusterfile()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cluster %s: no Clusterfile kept in %s (not applied from here, or by a hoist that kept none): %w", name, file, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	k, err := clusterfile.ParseKept(file, data)
	if err != nil {
		return nil, err
	}
	if k.Cluster.Name != name {
		return nil, fmt.Errorf("%s: the Clusterfile of cluster %q, not %q", file, k.Cluster.Name, name)
	}
	return k, nil
}

// Clusters lists, by name, the clusters that have a state under root: a
// journal or a kept Clusterfile.
func Clusters(root string) ([]string, error) {
	local := layout.Local{Root: root}
	dirs, err := os.ReadDir(local.Clusters())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range dirs {
		if !d.IsDir() || agent.CheckClusterName(d.Name()) != nil {
			continue
		}
		state := local.Cluster(d.Name())
		for _, f := range []string{state.Journal(), state.Clusterfile()} {
			if _, err := os.Stat(f); err == nil {
				names = append(names, d.Name())
				break
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

package agent

import (
	"errors"
	"fmt"
	"path/filepath"
)

// CheckClusterName accepts a cluster name only when it is a DNS-1123 label
// (at most 63 lower-case letters, digits and '-', starting and ending with
// a letter or digit): the name becomes a directory that clean removes, a
// systemd unit's name and an /etc/hosts tag, so nothing in it may reach
// another path or another word.
func CheckClusterName(name string) error {
	if name == "" {
		return errors.New("empty: a cluster needs a name (a DNS-1123 label such as my-cluster)")
	}
	if len(name) > 63 {
		return fmt.Errorf("%q is longer than 63 characters (a DNS-1123 label)", name)
	}
	for i, r := range name {
		lower := r >= 'a' && r <= 'z'
		digit := r >= '0' && r <= '9'
		if !lower && !digit && (r != '-' || i == 0 || i == len(name)-1) {
			return fmt.Errorf("%q is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)", name)
		}
	}
	return nil
}

// CheckClusterDir accepts dir only as <dataRoot>/<cluster>: an absolute,
// clean path whose last element is the cluster's valid name, and not
// directly under / (a cluster named etc or usr with dataRoot / would make
// clean remove a system directory). It is what every removal on a node
// checks first, whoever built the path.
func CheckClusterDir(dir, cluster string) error {
	if err := CheckClusterName(cluster); err != nil {
		return fmt.Errorf("cluster name: %w", err)
	}
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || filepath.Base(dir) != cluster {
		return fmt.Errorf("refusing to remove %q: not <dataRoot>/%s", dir, cluster)
	}
	if filepath.Dir(dir) == "/" {
		return fmt.Errorf("refusing to remove %q: a cluster's directory is not directly under / (dataRoot is /)", dir)
	}
	return nil
}

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Mirrors is containerd's registry configuration for a cluster: every
// registry host bundled in the image is mirrored to the cluster registry,
// whose certificate is signed by the cluster CA.
type Mirrors struct {
	CertsDir string   // containerd's certs.d, e.g. /etc/containerd/certs.d
	Registry string   // the cluster registry, domain:port
	CA       []byte   // PEM of the cluster CA
	Hosts    []string // registry hosts bundled in the image, e.g. docker.io, quay.io, registry.corp:5000
	Record   string   // file listing what was written, for RemoveMirrors
	// Others are the other registry nodes (IP:PORT) of a registry on
	// several nodes, mirrors tried in order after the domain's: a registry
	// node that is down costs a pull one timeout, not the pull.
	Others []string
}

// upstream is the server containerd falls back to for a host: Docker Hub's
// name is not its address.
func upstream(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + host
}

// WriteMirrors writes <CertsDir>/<host>/hosts.toml for each host, pointing
// at the cluster registry first, and the CA with a hosts.toml of its own
// for the registry itself. Files of a previous set that are no longer
// wanted are removed. containerd reads certs.d at each pull, so this works
// before containerd is even installed.
func WriteMirrors(m Mirrors) error {
	caFile := filepath.Join(m.CertsDir, m.Registry, "ca.crt")
	mirror := fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n", "https://"+m.Registry, caFile)
	for _, other := range m.Others {
		mirror += fmt.Sprintf("\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n", "https://"+other, caFile)
	}
	files := map[string][]byte{
		caFile: m.CA,
		filepath.Join(m.CertsDir, m.Registry, "hosts.toml"): fmt.Appendf(nil, "# written by hoist\nserver = %q\nca = %q\n", "https://"+m.Registry, caFile),
	}
	for _, h := range m.Hosts {
		if h == m.Registry {
			continue
		}
		files[filepath.Join(m.CertsDir, h, "hosts.toml")] = fmt.Appendf(nil, "# written by hoist: pulls go to the cluster registry first\nserver = %q\n\n%s", upstream(h), mirror)
	}
	old, err := readRecord(m.Record)
	if err != nil {
		return err
	}
	var written []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(name, data, 0o644); err != nil {
			return err
		}
		written = append(written, name)
	}
	// The record lists the union until the stale files are gone, so that an
	// interrupted run still knows about them.
	if err := writeRecord(m.Record, append(written, old...)); err != nil {
		return err
	}
	for _, name := range old {
		if _, ok := files[name]; !ok {
			if err := removeAndPrune(name, m.CertsDir); err != nil {
				return err
			}
		}
	}
	return writeRecord(m.Record, written)
}

// RemoveMirrors removes the files listed in record, their directories
// when left empty, and the record.
func RemoveMirrors(record, certsDir string) error {
	names, err := readRecord(record)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := removeAndPrune(name, certsDir); err != nil {
			return err
		}
	}
	if err := os.Remove(record); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func removeAndPrune(name, top string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Only directories below top that are empty: another tool's files stay.
	for dir := filepath.Dir(name); strings.HasPrefix(dir, top+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func readRecord(record string) ([]string, error) {
	f, err := os.Open(record)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" {
			names = append(names, l)
		}
	}
	return names, s.Err()
}

func writeRecord(record string, names []string) error {
	if err := os.MkdirAll(filepath.Dir(record), 0o755); err != nil {
		return err
	}
	seen := map[string]bool{}
	var b strings.Builder
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			b.WriteString(n + "\n")
		}
	}
	return writeFileAtomic(record, []byte(b.String()), 0o644)
}

func writeFileAtomic(name string, data []byte, mode os.FileMode) error {
	tmp := name + ".hoist-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

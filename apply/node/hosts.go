package node

import (
	"fmt"
	"os"
	"strings"
)

// hostsTag marks the /etc/hosts line of a cluster, so that it is found
// again to update or remove, and nothing else is touched.
func hostsTag(cluster string) string { return "# hoist:" + cluster }

// SetHostsEntry makes file map domain to ip with one line of its own,
// replacing the cluster's previous line.
func SetHostsEntry(file, cluster, domain, ip string) error {
	return editHosts(file, cluster, fmt.Sprintf("%s %s %s", ip, domain, hostsTag(cluster)))
}

// RemoveHostsEntry removes the cluster's line from file.
func RemoveHostsEntry(file, cluster string) error {
	return editHosts(file, cluster, "")
}

// editHosts rewrites file in place rather than renaming a new one over it:
// /etc/hosts is often a bind mount (containers, test beds), which a rename
// cannot replace.
func editHosts(file, cluster, line string) error {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var out []string
	for l := range strings.SplitSeq(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasSuffix(l, " "+hostsTag(cluster)) || (l == "" && len(out) == 0) {
			continue
		}
		out = append(out, l)
	}
	if line != "" {
		out = append(out, line)
	}
	text := strings.Join(out, "\n") + "\n"
	if text == string(data) {
		return nil
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

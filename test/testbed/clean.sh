#!/bin/sh
# Removes what test beds left behind when a test process was killed before
# its deferred Destroy ran: the processes in hoist-* network namespaces, the
# namespaces, the hbr* bridges, and the beds' directories; and the test API
# servers (test/kube/start.sh) still running.
set -u
for ns in $(ip netns list 2>/dev/null | awk '/^hoist-/ {print $1}'); do
	pids=$(ip netns pids "$ns" 2>/dev/null)
	[ -n "$pids" ] && kill -9 $pids 2>/dev/null
	ip netns del "$ns" 2>/dev/null
done
for br in $(ip -br link show type bridge 2>/dev/null | awk '/^hbr/ {print $1}'); do
	ip link del "$br" 2>/dev/null
done
rm -rf "${TMPDIR:-/tmp}"/hoist-testbed-* 2>/dev/null
for d in "${TMPDIR:-/tmp}"/hoist-kube-*; do
	[ -d "$d" ] || continue
	"$(dirname "$0")/../kube/stop.sh" "$d"
	rm -rf "$d"
done
exit 0

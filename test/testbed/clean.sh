#!/bin/sh
# Removes what test beds left behind when a test process was killed before
# its deferred Destroy ran: kube nodes (their PID namespaces' inits, named by
# the records in /run/hoist-testbed), the hoist-* cgroups of every hierarchy
# and the host-wide sysctls their kubelets changed (restored from
# /run/hoist-testbed-sysctl); the processes in hoist-* network namespaces,
# the namespaces, the hbr* bridges, and the beds' directories; and the test
# API servers (test/kube/start.sh) still running.
set -u
run=/run/hoist-testbed
# A kube node's record is "<host PID of its init> <its start time>": the
# start time tells the init from a later process that got its PID.
starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
for rec in "$run"/*.pid; do
	[ -f "$rec" ] || continue
	read -r pid start <"$rec"
	if [ -n "$pid" ] && [ "$(starttime "$pid")" = "$start" ]; then
		kill -9 "$pid" 2>/dev/null
		# Gone, or a zombie: then the rest of its namespace is gone too.
		for i in $(seq 50); do
			[ "$(starttime "$pid")" = "$start" ] || break
			grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
			sleep 0.1
		done
	fi
	rm -f "$rec"
done
for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
	[ -f "$h/cgroup.procs" ] && [ ! -L "$h" ] || continue
	for cg in "$h"/hoist-*; do
		[ -d "$cg" ] || continue
		for i in $(seq 30); do
			find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
			find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
			[ -d "$cg" ] || break
			sleep 0.1
		done
	done
done
if [ -f /run/hoist-testbed-sysctl ]; then
	while read -r name value; do
		[ -n "$name" ] && echo "$value" >"/proc/sys/$(echo "$name" | tr . /)"
	done </run/hoist-testbed-sysctl
	rm -f /run/hoist-testbed-sysctl
fi
rm -rf "$run"
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

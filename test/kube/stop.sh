#!/bin/sh
# Stops what start.sh DIR started (and tolerates what is already gone).
DIR=$1
for name in kube-controller-manager kube-apiserver etcd; do
	pidfile="$DIR/$name.pid"
	[ -f "$pidfile" ] || continue
	pid=$(cat "$pidfile")
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 "$pid" 2>/dev/null
	rm -f "$pidfile"
done
exit 0

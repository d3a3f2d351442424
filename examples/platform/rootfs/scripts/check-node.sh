#!/bin/sh
# Refuses a node without the kernel modules Kubernetes networking needs.
set -eu
for m in overlay br_netfilter; do
	if ! grep -q "^$m " /proc/modules; then
		echo "kernel module $m is not loaded" >&2
		exit 1
	fi
done

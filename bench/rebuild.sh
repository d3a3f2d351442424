#!/bin/sh
# Measures `hoist build` of Kubefile.example: the cold build on an empty
# store, and a fully cached rebuild as a ratio to `hoist version` (the start-up
# cost of the binary), both measured in this run. Needs root (buildah).
set -eu
cd "$(dirname "$0")/.."
HOIST=${HOIST:-bin/hoist}
RUNS=${RUNS:-10}
root=$(mktemp -d)
# The example's public images come from stand-ins served on loopback.
. examples/standins.sh
trap 'standins_stop; rm -rf "$root"' EXIT
mkdir -p "$root/standins"
standins_start "$root" "${STANDIN_ADDR:-127.0.0.1:5098}" "$root/standins"

now() { date +%s%N; }
# mean_ms CMD...: mean wall time of RUNS runs, in milliseconds.
mean_ms() {
	total=0
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		start=$(now)
		"$@" >/dev/null 2>&1
		end=$(now)
		total=$((total + end - start))
		i=$((i + 1))
	done
	echo $((total / RUNS / 1000000))
}

build() { "$HOIST" --root "$root" build -q -t bench/platform:v1 -f Kubefile.example examples/platform; }

start=$(now)
build >/dev/null
cold=$(( ($(now) - start) / 1000000 ))
version=$(mean_ms "$HOIST" version)
cached=$(mean_ms build)
echo "cold build of Kubefile.example:      ${cold} ms"
echo "hoist version (start-up), mean:      ${version} ms"
echo "cached rebuild, mean of $RUNS:           ${cached} ms"
awk -v c="$cached" -v v="$version" 'BEGIN { if (v < 1) v = 1; printf "cached rebuild / start-up ratio:     %.1f\n", c / v }'

#!/bin/sh
# Builds Kubefile.example into the store under $ROOT and shows the result.
#
# The example's apps name public images (nginx, node-exporter, pause). Where
# public registries cannot be reached (this project's CI, an air gap), set
# STANDINS=1 (the default): generated stand-ins for those images are served
# on loopback and configured as registry mirrors in hoist's own
# registries.conf.d, exactly as a site mirror would be. With STANDINS=0 the
# build pulls the real images.
set -eu
cd "$(dirname "$0")/.."
HOIST=${HOIST:-bin/hoist}
ROOT=${ROOT:-/var/lib/hoist}
STANDINS=${STANDINS:-1}
ADDR=${STANDIN_ADDR:-127.0.0.1:5099}
hoist() { "$HOIST" --root "$ROOT" "$@"; }

echo "== images the example needs"
hoist find-images examples/platform

if [ "$STANDINS" = 1 ]; then
	dir=$(mktemp -d)
	conf="$ROOT/config/registries.conf.d/50-example-standins.conf"
	refs=$(hoist find-images --format '{{.Ref}}' examples/platform)
	# shellcheck disable=SC2086 # one argument per reference
	go run -tags "containers_image_openpgp exclude_graphdriver_btrfs" ./test/standin --dir "$dir/registry" --addr "$ADDR" $refs >"$dir/standin.log" 2>&1 &
	pid=$!
	trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir" "$conf"' EXIT
	i=0
	until grep -q '^serving on' "$dir/standin.log"; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$i" -gt 600 ]; then
			cat "$dir/standin.log" >&2
			exit 1
		fi
		i=$((i + 1))
		sleep 0.5
	done
	mkdir -p "$(dirname "$conf")"
	: >"$conf"
	for host in $(echo "$refs" | cut -d/ -f1 | sort -u); do
		enc=$(echo "$host" | tr : _)
		printf '[[registry]]\nprefix = "%s"\nlocation = "%s"\n[[registry.mirror]]\nlocation = "%s/%s"\ninsecure = true\n\n' \
			"$host" "$host" "$ADDR" "$enc" >>"$conf"
	done
	echo "== stand-ins for them are served on $ADDR (mirrors in $conf)"
fi

echo "== hoist build"
hoist build -t acme/platform:v1 -f Kubefile.example examples/platform
echo "== hoist images"
hoist images
echo "== hoist inspect --images acme/platform:v1"
hoist inspect --images acme/platform:v1
echo "== hoist inspect acme/platform:v1"
hoist inspect acme/platform:v1

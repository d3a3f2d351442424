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
	. examples/standins.sh
	dir=$(mktemp -d)
	trap 'standins_stop; rm -rf "$dir"' EXIT
	standins_start "$ROOT" "$ADDR" "$dir"
	echo "== stand-ins for them are served on $ADDR (mirrors in $_conf)"
fi

echo "== hoist build"
hoist build -t acme/platform:v1 -f Kubefile.example examples/platform
echo "== hoist images"
hoist images
echo "== hoist inspect --images acme/platform:v1"
hoist inspect --images acme/platform:v1
echo "== hoist inspect acme/platform:v1"
hoist inspect acme/platform:v1

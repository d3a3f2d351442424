#!/bin/sh
# Builds etcd, kube-apiserver and kube-controller-manager from the Go module
# proxy into $KUBE_CACHE/<version> (default /var/cache/hoist-kube), outside
# any checkout, unless they are there already; prints that directory.
# Cold on 2 cores: about 10 minutes; then instant. The Go module is the node
# image's (images/kubernetes/modules/kubernetes), so both build the same
# versions from one go.mod.
set -eu
cd "$(dirname "$0")/../../images/kubernetes/modules/kubernetes"
VERSION=v1.37.2
OUT=${KUBE_CACHE:-/var/cache/hoist-kube}/$VERSION
BINS="etcd kube-apiserver kube-controller-manager"
have() {
	for b in $BINS; do [ -x "$OUT/$b" ] || return 1; done
}
if have; then echo "$OUT"; exit 0; fi
# Test binaries start API servers in parallel: one builds, the others wait.
mkdir -p "$(dirname "$OUT")"
exec 9> "$(dirname "$OUT")/.lock"
flock 9
if have; then echo "$OUT"; exit 0; fi

export PATH="$PATH:/usr/local/go/bin" CGO_ENABLED=0 GOFLAGS=
# Without the version stamp the server reports v0.0.0, which clients refuse.
minor=$(echo "$VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
tmp="$OUT.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "building etcd, kube-apiserver, kube-controller-manager $VERSION into $OUT (cold: about 10 minutes)" >&2
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
echo "$OUT"

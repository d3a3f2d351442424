#!/bin/sh
# Builds the Kubernetes base image into hoist's store:
#
#   images/kubernetes/build.sh [NAME]     (default hoist.dev/kubernetes:<version>)
#   KUBERNETES_VERSION=v1.36.3 images/kubernetes/build.sh   # hoist.dev/kubernetes:v1.36.3
#
# HOIST (default bin/hoist) and ROOT (hoist's --root, default /var/lib/hoist)
# as for examples/build-example.sh; KUBERNETES_VERSION (default: binaries.sh's,
# v1.37.2) and SOURCE=release|source as for binaries.sh, which reads them.
# Steps:
# 1. binaries.sh: every binary of a node, by version, cached outside the
#    checkout (downloaded and checked, or built from sources offline);
# 2. the component images (kube-apiserver, kube-controller-manager,
#    kube-scheduler, kube-proxy, etcd, CoreDNS, pause) built with hoist
#    build FROM scratch, under the names kubeadm expects;
# 3. those pushed to a registry on loopback (hoist registry serve) that is
#    configured as the mirror of registry.k8s.io in hoist's own
#    registries.conf.d, as a site mirror would be: the base image bundles
#    them by their registry.k8s.io names, through the normal registry layer;
# 4. hoist build of images/kubernetes/Kubefile on the filled context.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
HOIST=${HOIST:-bin/hoist}
ROOT=${ROOT:-/var/lib/hoist}
# A free port on loopback unless given: builds may run side by side.
ADDR=${KUBE_IMAGES_ADDR:-127.0.0.1:0}
hoist() { "$HOIST" --root "$ROOT" "$@"; }

BIN=$("$here/binaries.sh")
# shellcheck disable=SC1091 # written by binaries.sh
. "$BIN/versions.env"
NAME=${1:-hoist.dev/kubernetes:$KUBERNETES_VERSION}
ETCD_TAG="${ETCD_VERSION#v}-0"
COREDNS_TAG="v${COREDNS_VERSION#v}"

ctx=$(mktemp -d)
conf="$ROOT/config/registries.conf.d/50-kubernetes-images.conf"
registry_pid=""
cleanup() {
	[ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
	rm -f "$conf"
	rm -rf "$ctx"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== the build context (binaries from $BIN, $SOURCE)" >&2
base=$ctx/base
mkdir -p "$base/bin" "$base/cni" "$base/manifests"
cp -R "$here/rootfs/." "$base/"
for b in kubeadm kubelet kubectl containerd containerd-shim-runc-v2 ctr runc crictl etcdctl etcdutl; do
	cp "$BIN/bin/$b" "$base/bin/"
done
cp "$BIN/cni/"* "$base/cni/"
sed -i -e "s|@KUBERNETES_VERSION@|$KUBERNETES_VERSION|" -e "s|@ETCD_TAG@|$ETCD_TAG|" \
	-e "s|@COREDNS_TAG@|$COREDNS_TAG|" "$base/etc/kubeadm.yaml"
repo=registry.k8s.io
cat > "$base/manifests/imageList" <<EOL
# The images kubeadm pulls, built from the same binaries (images/kubernetes/build.sh).
$repo/kube-apiserver:$KUBERNETES_VERSION
$repo/kube-controller-manager:$KUBERNETES_VERSION
$repo/kube-scheduler:$KUBERNETES_VERSION
$repo/kube-proxy:$KUBERNETES_VERSION
$repo/etcd:$ETCD_TAG
$repo/coredns/coredns:$COREDNS_TAG
$repo/pause:$PAUSE_VERSION
EOL

echo "== the component images (hoist build FROM scratch)" >&2
component() { # ref kubefile files... [-- build args]
	ref=$1 kubefile=$2
	shift 2
	dir=$ctx/c/$(echo "$ref" | tr /: __)
	mkdir -p "$dir"
	args=""
	while [ $# -gt 0 ]; do
		case $1 in
		--build-arg) args="$args --build-arg $2"; shift 2 ;;
		*) cp -R "$BIN/$1" "$dir/"; shift ;;
		esac
	done
	# shellcheck disable=SC2086 # one word per argument
	hoist build -q -t "$ref" -f "$here/components/$kubefile" $args "$dir" > /dev/null
	echo "$ref" >&2
}
for b in kube-apiserver kube-controller-manager kube-scheduler; do
	component "$repo/$b:$KUBERNETES_VERSION" Kubefile.binary "bin/$b" --build-arg "BINARY=$b"
done
component "$repo/etcd:$ETCD_TAG" Kubefile.binary bin/etcd --build-arg BINARY=etcd
component "$repo/kube-proxy:$KUBERNETES_VERSION" Kubefile.kube-proxy bin/kube-proxy iptables
component "$repo/coredns/coredns:$COREDNS_TAG" Kubefile.coredns bin/coredns
component "$repo/pause:$PAUSE_VERSION" Kubefile.pause bin/pause

mkdir -p "$ctx/registry"
"$HOIST" registry serve --root "$ctx/registry" --addr "$ADDR" --read-only=false > "$ctx/registry.log" 2>&1 &
registry_pid=$!
i=0
# It says where it listens: "serving DIR on HOST:PORT (read-only: false)".
until ADDR=$(sed -n 's/^serving .* on \([^ ]*\) (read-only.*/\1/p' "$ctx/registry.log") && [ -n "$ADDR" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$registry_pid" 2>/dev/null; then
		echo "the registry for the component images did not start (set KUBE_IMAGES_ADDR):" >&2
		cat "$ctx/registry.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "== served on $ADDR as the mirror of $repo" >&2
grep -v '^#' "$base/manifests/imageList" | while read -r ref; do
	hoist push -q --tls-verify=false "$ref" "$ADDR/$ref"
done
mkdir -p "$(dirname "$conf")"
printf '[[registry]]\nprefix = "%s"\nlocation = "%s"\n[[registry.mirror]]\nlocation = "%s/%s"\ninsecure = true\n' \
	"$repo" "$repo" "$ADDR" "$repo" > "$conf"

echo "== hoist build -t $NAME" >&2
hoist build -t "$NAME" -f "$here/Kubefile" --build-arg "KUBERNETES_VERSION=$KUBERNETES_VERSION" \
	--build-arg "CONTAINERD_VERSION=$CONTAINERD_VERSION" "$base"

#!/bin/sh
# Makes, once, every binary a Kubernetes node needs, cached by version outside
# the checkout, and prints the directory ($KUBE_CACHE/node-<version>, default
# /var/cache/hoist-kube/node-v1.37.2):
#
#   images/kubernetes/binaries.sh                            # v1.37.2
#   KUBERNETES_VERSION=v1.36.3 images/kubernetes/binaries.sh # another version
#
#   bin/          kubeadm kubelet kubectl kube-apiserver kube-controller-manager
#                 kube-scheduler kube-proxy etcd etcdctl etcdutl coredns containerd
#                 containerd-shim-runc-v2 ctr runc crictl pause
#   cni/          the CNI plugins (bridge, host-local, loopback, portmap, ...)
#   iptables/     root filesystem of kube-proxy's image: iptables-nft (nft
#                 backend), conntrack, nft, their libraries, the loader and the
#                 xtables extensions, taken from this host's Debian packages
#   versions.env  KUBERNETES_VERSION ETCD_VERSION COREDNS_VERSION ... SOURCE
#   images.txt    `kubeadm config images list`: the image names kubeadm expects
#
# SOURCE=release downloads the official release binaries and checks their
# published sha256 sums; SOURCE=source builds them from the Go module proxy
# (modules/*: one Go module each, versions pinned by their go.mod) and takes
# runc and the CNI plugins from Debian. Default: release when dl.k8s.io answers.
# pause is a static C program (pause.c) either way. ETCD, CoreDNS, containerd
# and crictl versions come from the modules' go.mod in both modes.
#
# The modules of a version: modules/<version>/<name> when that directory
# exists, else modules/<name>. modules/kubernetes, coredns, containerd and
# cri-tools are the default version's. Another version has its own
# kubernetes module (k8s.io/kubernetes and etcd; checked against
# KUBERNETES_VERSION) and its own of what its kubeadm wants at another
# version (modules/v1.36.3/coredns: kubeadm 1.36 expects CoreDNS v1.14.2),
# and shares the rest (containerd, crictl). So a version is one directory,
# added or removed alone, and the default version's paths (test/kube/build.sh,
# CI's warm caches) do not move.
#
# Cold, SOURCE=source, 2 cores (empty Go build cache): about 10 minutes
# (Kubernetes 7, CoreDNS 1.5, containerd 1.5, crictl 0.5); with a warm Go
# build cache under a minute; then instant. Parallel
# callers wait for one build (flock); a build is made in DIR.tmp.PID and
# renamed when complete, so a killed run leaves nothing under DIR. A DIR made
# before binaries were added to it (LATER_BINS) gets just those, each built
# beside it and renamed into place: a warm cache is not rebuilt for them.
# Progress goes to stderr, the directory alone to stdout. Run as root (apt-get,
# and the iptables tree is checked in a throwaway network namespace).
set -eu

# The caller's KUBERNETES_VERSION, else the default on the line below (the
# first KUBERNETES_VERSION= line: tests and build/discover read it there).
chosen=${KUBERNETES_VERSION:-}
KUBERNETES_VERSION=v1.37.2
if [ -n "$chosen" ]; then KUBERNETES_VERSION=$chosen; fi
# It names the cache directory and the modules': a version, nothing else.
case $KUBERNETES_VERSION in
*[!A-Za-z0-9.+-]*) bad=1 ;;
v[0-9]*.[0-9]*.[0-9]*) bad= ;;
*) bad=1 ;;
esac
if [ -n "$bad" ]; then
	echo "binaries.sh: KUBERNETES_VERSION must be a version such as v1.36.3, not $KUBERNETES_VERSION" >&2
	exit 1
fi
# SOURCE=release only; SOURCE=source uses Debian's runc and CNI plugins.
RUNC_RELEASE_VERSION=v1.5.3
CNI_PLUGINS_RELEASE_VERSION=v1.10.0

here=$(cd "$(dirname "$0")" && pwd)
mods=$here/modules
CACHE=${KUBE_CACHE:-/var/cache/hoist-kube}
OUT=$CACHE/node-$KUBERNETES_VERSION
MULTIARCH=$(uname -m)-linux-gnu
case $(uname -m) in
x86_64) ARCH=amd64 ;;
aarch64) ARCH=arm64 ;;
*) echo "binaries.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

BINS="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd etcdctl etcdutl coredns containerd containerd-shim-runc-v2 ctr runc crictl pause"
# Binaries added to BINS after caches were made (etcdutl restores etcd
# snapshots: hoist restore): add_later builds only these into such a cache.
LATER_BINS="etcdctl etcdutl"
CNIS="bridge host-local loopback portmap"
IPTABLES_FILES="usr/sbin/xtables-nft-multi usr/sbin/iptables-nft usr/sbin/iptables usr/sbin/iptables-save usr/sbin/iptables-restore usr/sbin/ip6tables usr/sbin/ip6tables-save usr/sbin/ip6tables-restore usr/lib/$MULTIARCH/xtables/libxt_statistic.so usr/lib/$MULTIARCH/libm.so.6"

missing() { # dir: every expected file that is not there, one a line
	for b in $BINS; do [ -x "$1/bin/$b" ] || echo "bin/$b"; done
	for c in $CNIS; do [ -x "$1/cni/$c" ] || echo "cni/$c"; done
	for f in $IPTABLES_FILES; do [ -e "$1/iptables/$f" ] || echo "iptables/$f"; done
	[ -s "$1/versions.env" ] || echo versions.env
	[ -s "$1/images.txt" ] || echo images.txt
}
is_complete() { [ -z "$(missing "$1")" ]; }
if is_complete "$OUT"; then echo "$OUT"; exit 0; fi

die() { echo "binaries.sh: $*" >&2; exit 1; }
# moddir NAME: the directory of module NAME for this version (see above).
moddir() {
	if [ -f "$mods/$KUBERNETES_VERSION/$1/go.mod" ]; then echo "$mods/$KUBERNETES_VERSION/$1"; else echo "$mods/$1"; fi
}
# modver NAME MODULE-PATH: the version MODULE-PATH has in that module's go.mod.
modver() {
	v=$(awk -v m="$2" '$1 == "replace" { exit }
		{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v/) { print $(i + 1); exit } }' "$(moddir "$1")/go.mod")
	[ -n "$v" ] || die "no $2 in $(moddir "$1")/go.mod"
	echo "$v"
}
# etcd's version comes from the Kubernetes module in both modes: one of
# another Kubernetes version would bring the wrong etcd.
[ "$(modver kubernetes k8s.io/kubernetes)" = "$KUBERNETES_VERSION" ] ||
	die "$(moddir kubernetes)/go.mod requires k8s.io/kubernetes $(modver kubernetes k8s.io/kubernetes), not $KUBERNETES_VERSION: make $mods/$KUBERNETES_VERSION/kubernetes (docs/kubernetes.md)"
ETCD_VERSION=$(modver kubernetes go.etcd.io/etcd/server/v3)
COREDNS_VERSION=$(modver coredns github.com/coredns/coredns)
CONTAINERD_VERSION=$(modver containerd github.com/containerd/containerd/v2)
CRICTL_VERSION=$(modver cri-tools sigs.k8s.io/cri-tools)

mkdir -p "$CACHE"
exec 9> "$OUT.lock"
if ! flock -n 9; then
	echo "binaries.sh: waiting for another build of $OUT" >&2
	flock 9
fi
if is_complete "$OUT"; then echo "$OUT"; exit 0; fi
rm -rf "$OUT".tmp.* # left by killed runs; nobody else builds while we hold the lock

SOURCE=${SOURCE:-}
if [ -z "$SOURCE" ]; then
	if curl -fsI -m 5 https://dl.k8s.io/ > /dev/null 2>&1; then SOURCE=release; else SOURCE=source; fi
fi
case $SOURCE in release | source) ;; *) echo "binaries.sh: SOURCE must be release or source, not $SOURCE" >&2; exit 1 ;; esac

tmp=$OUT.tmp.$$
child=
trap 'rm -rf "$tmp"' EXIT
trap 'if [ -n "$child" ]; then kill "$child" 2> /dev/null || :; fi; exit 130' INT TERM HUP
mkdir -p "$tmp/bin" "$tmp/cni" "$tmp/iptables"
t0=$(date +%s)
step=0
progress() { # message
	step=$((step + 1))
	echo "binaries.sh [$step/$steps, $(($(date +%s) - t0)) s]: $*" >&2
}
# run COMMAND...: runs it and waits for it in the background, so that a signal
# stops it at once (the trap kills it), not after it ends as a foreground
# command would.
run() {
	"$@" &
	child=$!
	status=0
	wait "$child" || status=$?
	child=
	return "$status"
}

# need PACKAGE...: apt-get install the Debian packages that are missing.
need() {
	missing=
	for p in "$@"; do
		dpkg-query -W -f '${Status}\n' "$p" 2> /dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	[ -n "$missing" ] || return 0
	echo "binaries.sh: apt-get install$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Builds of two versions run at once in make test: wait for the other's
	# dpkg lock instead of failing (apt-get's default is not to wait).
	lock="-o DPkg::Lock::Timeout=300"
	apt-get $lock install -y -q --no-install-recommends $missing >&2 ||
		{ apt-get $lock update -q >&2 && apt-get $lock install -y -q --no-install-recommends $missing >&2; }
}
# debver PACKAGE: the upstream version of an installed Debian package, as vX.Y.Z.
debver() { echo "v$(dpkg-query -W -f '${Version}' "$1" | sed 's/^[0-9]*://; s/[+~-].*//')"; }

# --- SOURCE=release -------------------------------------------------------

# fetch URL SUMS-URL DEST: downloads URL to DEST and checks its sha256 against
# SUMS-URL (a bare hash, or "hash  name" lines of which the one for URL's file).
fetch() {
	name=${1##*/}
	run curl -fsSL --retry 3 -o "$3" "$1" || die "download $1"
	want=$(curl -fsSL --retry 3 "$2" | awk -v n="$name" '
		NF == 1 && h == "" { h = $1 }
		NF >= 2 { f = $2; sub(/^\*/, "", f); sub(/^.*\//, "", f); if (f == n) h = $1 }
		END { print tolower(h) }') || die "download $2"
	got=$(sha256sum "$3" | cut -d' ' -f1)
	if [ -z "$want" ] || [ "$want" != "$got" ]; then die "$1: sha256 $got, published ${want:-nothing} ($2)"; fi
}

release() {
	dl=$tmp/download
	mkdir -p "$dl"
	progress "Kubernetes $KUBERNETES_VERSION from dl.k8s.io"
	for b in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
		u=https://dl.k8s.io/release/$KUBERNETES_VERSION/bin/linux/$ARCH/$b
		fetch "$u" "$u.sha256" "$tmp/bin/$b"
	done

	progress "etcd $ETCD_VERSION, CoreDNS $COREDNS_VERSION, containerd $CONTAINERD_VERSION, runc $RUNC_RELEASE_VERSION, crictl $CRICTL_VERSION, CNI plugins $CNI_PLUGINS_RELEASE_VERSION from GitHub"
	gh=https://github.com
	u=$gh/etcd-io/etcd/releases/download/$ETCD_VERSION
	fetch "$u/etcd-$ETCD_VERSION-linux-$ARCH.tar.gz" "$u/SHA256SUMS" "$dl/etcd.tgz"
	tar -xzf "$dl/etcd.tgz" -C "$tmp/bin" --strip-components=1 "etcd-$ETCD_VERSION-linux-$ARCH/etcd" "etcd-$ETCD_VERSION-linux-$ARCH/etcdctl" \
		"etcd-$ETCD_VERSION-linux-$ARCH/etcdutl"

	u=$gh/coredns/coredns/releases/download/$COREDNS_VERSION/coredns_${COREDNS_VERSION#v}_linux_$ARCH.tgz
	fetch "$u" "$u.sha256" "$dl/coredns.tgz"
	tar -xzf "$dl/coredns.tgz" -C "$tmp/bin" coredns

	u=$gh/containerd/containerd/releases/download/$CONTAINERD_VERSION/containerd-static-${CONTAINERD_VERSION#v}-linux-$ARCH.tar.gz
	fetch "$u" "$u.sha256sum" "$dl/containerd.tgz"
	tar -xzf "$dl/containerd.tgz" -C "$tmp" bin/containerd bin/containerd-shim-runc-v2 bin/ctr

	u=$gh/opencontainers/runc/releases/download/$RUNC_RELEASE_VERSION
	fetch "$u/runc.$ARCH" "$u/runc.sha256sum" "$tmp/bin/runc"
	RUNC_VERSION=$RUNC_RELEASE_VERSION

	u=$gh/kubernetes-sigs/cri-tools/releases/download/$CRICTL_VERSION/crictl-$CRICTL_VERSION-linux-$ARCH.tar.gz
	fetch "$u" "$u.sha256" "$dl/crictl.tgz"
	tar -xzf "$dl/crictl.tgz" -C "$tmp/bin" crictl

	u=$gh/containernetworking/plugins/releases/download/$CNI_PLUGINS_RELEASE_VERSION/cni-plugins-linux-$ARCH-$CNI_PLUGINS_RELEASE_VERSION.tgz
	fetch "$u" "$u.sha256" "$dl/cni.tgz"
	tar -xzf "$dl/cni.tgz" -C "$tmp/cni"
	CNI_PLUGINS_VERSION=$CNI_PLUGINS_RELEASE_VERSION

	chmod 0755 "$tmp/bin/"*
	rm -rf "$dl"
}

# --- SOURCE=source --------------------------------------------------------

gobuild() { # MODULE-NAME go-build-arguments...
	d=$(moddir "$1")
	shift
	run go build -C "$d" -trimpath "$@"
}

source_build() {
	export PATH="$PATH:/usr/local/go/bin" CGO_ENABLED=0 GOFLAGS='' GOWORK=off
	command -v go > /dev/null || die "no go in PATH"

	# The API server, controller-manager and etcd that test/kube/build.sh
	# caches are built from the same module with the same flags (the same
	# bytes): reuse them.
	k=k8s.io/kubernetes/cmd
	pkgs="$k/kubeadm $k/kubelet $k/kubectl $k/kube-scheduler $k/kube-proxy"
	tested=$CACHE/$KUBERNETES_VERSION
	for b in kube-apiserver kube-controller-manager etcd; do
		if [ -x "$tested/$b" ]; then
			cp "$tested/$b" "$tmp/bin/$b"
		elif [ $b != etcd ]; then
			pkgs="$pkgs $k/$b"
		fi
	done
	progress "Kubernetes $KUBERNETES_VERSION and etcd $ETCD_VERSION from the Go module proxy (cold about 7 min, warm under 1)"
	v=$KUBERNETES_VERSION
	minor=$(echo "$v" | cut -d. -f2)
	# Without the version stamp the binaries report v0.0.0.
	x=k8s.io/component-base/version
	gobuild kubernetes -ldflags "-s -w -X $x.gitVersion=$v -X $x.gitMajor=1 -X $x.gitMinor=$minor -X $x.gitTreeState=clean" -o "$tmp/bin/" $pkgs
	if [ ! -e "$tmp/bin/etcd" ]; then gobuild kubernetes -ldflags "-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3; fi
	gobuild kubernetes -ldflags "-s -w" -o "$tmp/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
	gobuild kubernetes -ldflags "-s -w" -o "$tmp/bin/etcdutl" go.etcd.io/etcd/etcdutl/v3
	got=$("$tmp/bin/kubeadm" version -o short)
	[ "$got" = "$v" ] || die "kubeadm reports $got, not $v"

	progress "CoreDNS $COREDNS_VERSION (cold about 1.5 min)"
	gobuild coredns -tags grpcnotrace -ldflags "-s -w -X github.com/coredns/coredns/coremain.gitTag=$COREDNS_VERSION" -o "$tmp/bin/coredns" .

	progress "containerd $CONTAINERD_VERSION (cold about 1.5 min)"
	c=github.com/containerd/containerd/v2
	ld="-s -w -X $c/version.Version=$CONTAINERD_VERSION -X $c/version.Package=$c"
	tags="urfave_cli_no_docs osusergo netgo static_build no_btrfs"
	gobuild containerd -tags "$tags" -ldflags "$ld" -o "$tmp/bin/" $c/cmd/containerd $c/cmd/ctr
	gobuild containerd -tags "$tags no_grpc" -ldflags "$ld" -o "$tmp/bin/" $c/cmd/containerd-shim-runc-v2

	progress "crictl $CRICTL_VERSION"
	gobuild cri-tools -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION#v}" -o "$tmp/bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl

	progress "runc and CNI plugins from Debian"
	need runc containernetworking-plugins
	# Debian's runc is dynamic (libseccomp2, libc): fine on a Debian node.
	cp /usr/sbin/runc "$tmp/bin/runc"
	RUNC_VERSION=$(debver runc)
	cp -a /usr/lib/cni/. "$tmp/cni/"
	CNI_PLUGINS_VERSION=$(debver containernetworking-plugins)
}

# --- both -----------------------------------------------------------------

pause_build() {
	progress "pause (static C)"
	need gcc libc6-dev
	PAUSE_VERSION=$(sed -n 's|.*/pause:||p' "$tmp/images.txt")
	[ -n "$PAUSE_VERSION" ] || die "no pause image in images.txt"
	gcc -static -Os -Wall -DVERSION="\"$PAUSE_VERSION\"" -o "$tmp/bin/pause" "$here/pause.c"
	strip "$tmp/bin/pause"
}

# libs FILE...: the shared libraries (and loader) the files load, by ldd.
libs() {
	for f in "$@"; do
		ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
	done | sort -u
}

iptables_tree() {
	progress "iptables tree for kube-proxy (from this host's Debian packages)"
	need iptables conntrack nftables netbase
	r=$tmp/iptables
	mkdir -p "$r/usr/bin" "$r/usr/sbin" "$r/usr/lib/$MULTIARCH" "$r/usr/lib64" "$r/etc" "$r/run" "$r/tmp" "$r/var/lib"
	chmod 1777 "$r/tmp"
	for d in bin sbin lib lib64; do ln -s usr/$d "$r/$d"; done # merged /usr, as Debian
	cp -p /usr/sbin/xtables-nft-multi /usr/sbin/conntrack /usr/sbin/nft "$r/usr/sbin/"
	# Every name Debian links to xtables-nft-multi, and the unsuffixed names
	# its alternatives give them (iptables -> iptables-nft) with the nft backend.
	for f in /usr/sbin/*; do
		if [ -L "$f" ] && [ "$(readlink "$f")" = xtables-nft-multi ]; then ln -s xtables-nft-multi "$r/usr/sbin/${f##*/}"; fi
	done
	for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
		ln -s "${n%%-*}-nft${n#"${n%%-*}"}" "$r/usr/sbin/$n"
	done
	cp -a "/usr/lib/$MULTIARCH/xtables" "$r/usr/lib/$MULTIARCH/"
	# The libraries under the names ldd gives (their sonames), in the real
	# directory (/lib is usr/lib): libm among them, for libxt_statistic.so.
	for l in $(libs /usr/sbin/xtables-nft-multi /usr/sbin/conntrack /usr/sbin/nft "/usr/lib/$MULTIARCH/xtables/"*.so); do
		d=$(cd "$(dirname "$l")" && pwd -P)
		mkdir -p "$r$d"
		cp -L "$l" "$r$d/${l##*/}"
	done
	for f in /etc/protocols /etc/services /etc/ethertypes; do
		if [ -e "$f" ]; then cp "$f" "$r/etc/"; fi
	done
	IPTABLES_VERSION=$(debver iptables)
	# Check it where it will run: alone, in a throwaway network namespace.
	if [ "$(id -u)" = 0 ]; then
		unshare -n sh -ec '
			chroot "$1" /usr/sbin/iptables-nft -t nat -L -n > /dev/null
			chroot "$1" /usr/sbin/iptables -t nat -N HOIST-CHECK
			chroot "$1" /usr/sbin/iptables -t nat -A HOIST-CHECK -p tcp -m statistic --mode random --probability 0.5 -m comment --comment check -j RETURN
			chroot "$1" /usr/sbin/iptables-save -t nat | grep -q -- "-m statistic"
			chroot "$1" /usr/sbin/ip6tables -t filter -L -n > /dev/null
			chroot "$1" /usr/sbin/conntrack -L > /dev/null 2>&1
			chroot "$1" /usr/sbin/nft list ruleset > /dev/null 2>&1
		' check "$r" || die "the iptables tree does not work in a chroot"
	fi
}

# --- a cache made before LATER_BINS ----------------------------------------

# only_later DIR: DIR lacks nothing but some of LATER_BINS, and was made with
# this etcd version (what those binaries are built from).
only_later() {
	[ -d "$1" ] && [ -s "$1/versions.env" ] || return 1
	for m in $(missing "$1"); do
		case " $LATER_BINS " in *" ${m#bin/} "*) [ "${m%/*}" = bin ] || return 1 ;; *) return 1 ;; esac
	done
	[ "$(sed -n 's/^ETCD_VERSION=//p' "$1/versions.env")" = "$ETCD_VERSION" ]
}

# add_later DIR: builds what only_later allows DIR to lack, the way DIR was
# made (its SOURCE), into $tmp, and renames each binary into DIR/bin.
add_later() {
	lack=$(missing "$1")
	made=$(sed -n 's/^SOURCE=//p' "$1/versions.env")
	steps=1
	progress "adding $(echo $lack | sed 's|bin/||g') (etcd $ETCD_VERSION, $made) to $1"
	case $made in
	source)
		export PATH="$PATH:/usr/local/go/bin" CGO_ENABLED=0 GOFLAGS='' GOWORK=off
		for m in $lack; do
			gobuild kubernetes -ldflags "-s -w" -o "$tmp/$m" "go.etcd.io/etcd/${m#bin/}/v3" || die "building ${m#bin/}"
		done
		;;
	release)
		u=https://github.com/etcd-io/etcd/releases/download/$ETCD_VERSION
		fetch "$u/etcd-$ETCD_VERSION-linux-$ARCH.tar.gz" "$u/SHA256SUMS" "$tmp/etcd.tgz"
		for m in $lack; do
			tar -xzf "$tmp/etcd.tgz" -C "$tmp/bin" --strip-components=1 "etcd-$ETCD_VERSION-linux-$ARCH/${m#bin/}" || die "no ${m#bin/} in the etcd release"
		done
		;;
	*) die "$1/versions.env: SOURCE=$made" ;;
	esac
	for m in $lack; do
		chmod 0755 "$tmp/$m"
		mv -f "$tmp/$m" "$1/$m"
	done
	is_complete "$1" || die "incomplete: $1 lacks $(missing "$1")"
	echo "binaries.sh: done in $(($(date +%s) - t0)) s" >&2
	echo "$1"
	exit 0
}
if only_later "$OUT"; then add_later "$OUT"; fi

if [ "$SOURCE" = source ]; then steps=7; else steps=4; fi
echo "binaries.sh: making $OUT ($SOURCE; $(
	if [ "$SOURCE" = source ]; then echo "cold about 10 minutes on 2 cores, warm under 1"; else echo "downloads about 400 MB"; fi))" >&2
if [ "$SOURCE" = source ]; then source_build; else release; fi

"$tmp/bin/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" > "$tmp/images.txt"
pause_build
iptables_tree

cat > "$tmp/versions.env" << EOF
KUBERNETES_VERSION=$KUBERNETES_VERSION
ETCD_VERSION=$ETCD_VERSION
COREDNS_VERSION=$COREDNS_VERSION
CONTAINERD_VERSION=$CONTAINERD_VERSION
RUNC_VERSION=$RUNC_VERSION
CNI_PLUGINS_VERSION=$CNI_PLUGINS_VERSION
CRICTL_VERSION=$CRICTL_VERSION
PAUSE_VERSION=$PAUSE_VERSION
IPTABLES_VERSION=$IPTABLES_VERSION
SOURCE=$SOURCE
EOF
is_complete "$tmp" || die "incomplete: $tmp"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
echo "binaries.sh: done in $(($(date +%s) - t0)) s" >&2
echo "$OUT"

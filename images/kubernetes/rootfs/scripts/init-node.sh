#!/bin/sh
# Sets a node up for kubeadm: run by hoist (step kube-node) as root, in
# this image's rootfs on the node, with HOIST (hoist's binary there),
# HOIST_STATE (the cluster's state directory) and the Clusterfile's env.
# Safe to run again: it converges.
#
# Env it reads: ContainerdRestrictOOMScoreAdj (true/false; default: true
# when this root lacks CAP_SYS_RESOURCE, as in nested machines).
set -eu
: "${HOIST:?run by hoist}" "${HOIST_STATE:?run by hoist}"

for f in bin/*; do install -m 0755 "$f" "/usr/bin/${f#bin/}"; done
mkdir -p /opt/cni/bin /etc/cni/net.d
for f in cni/*; do install -m 0755 "$f" "/opt/cni/bin/${f#cni/}"; done

# Pods need forwarding, and bridged traffic seen by iptables (kube-proxy).
modprobe overlay 2>/dev/null || true
modprobe br_netfilter 2>/dev/null || true
mkdir -p /etc/sysctl.d
{
	echo "# written by hoist (scripts/init-node.sh of the Kubernetes image)"
	echo "net.ipv4.ip_forward = 1"
	[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo "net.bridge.bridge-nf-call-iptables = 1"
	true
} > /etc/sysctl.d/90-hoist-kubernetes.conf
sysctl -q -p /etc/sysctl.d/90-hoist-kubernetes.conf

restrict=${ContainerdRestrictOOMScoreAdj:-}
if [ -z "$restrict" ]; then
	# CAP_SYS_RESOURCE is bit 24 of the effective set.
	capeff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
	if [ $(((0x$capeff >> 24) & 1)) = 1 ]; then restrict=false; else restrict=true; fi
fi
sandbox=$(grep '/pause:' manifests/imageList | head -n 1)
mkdir -p /etc/containerd
sed -e "s|@SANDBOX_IMAGE@|$sandbox|" -e "s|@RESTRICT_OOM_SCORE_ADJ@|$restrict|" \
	etc/containerd/config.toml > /etc/containerd/config.toml.new
changed=0
if ! cmp -s /etc/containerd/config.toml.new /etc/containerd/config.toml; then
	mv /etc/containerd/config.toml.new /etc/containerd/config.toml
	changed=1
else
	rm -f /etc/containerd/config.toml.new
fi
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\n' > /etc/crictl.yaml

if [ "$changed" = 1 ]; then
	"$HOIST" node service stop containerd --state-dir "$HOIST_STATE"
fi
"$HOIST" node service start containerd --state-dir "$HOIST_STATE" -- /usr/bin/containerd --config /etc/containerd/config.toml
i=0
until ctr --address /run/containerd/containerd.sock version > /dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "containerd does not answer on /run/containerd/containerd.sock; its log ends with:" >&2
		tail -n 20 "$HOIST_STATE/containerd.log" 2>/dev/null >&2 || journalctl -u containerd -n 20 --no-pager >&2
		exit 1
	fi
	sleep 0.2
done
# It waits for kubeadm to write its configuration.
"$HOIST" node service start kubelet --state-dir "$HOIST_STATE" -- /usr/bin/kubelet-start

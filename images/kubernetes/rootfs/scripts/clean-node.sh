#!/bin/sh
# Resets a node (run by hoist delete, and when a node leaves the cluster),
# in this image's rootfs on the node, with HOIST and HOIST_STATE as for
# init-node.sh: kubeadm reset, the kubelet and containerd stopped, their
# state, the pod network and what init-node.sh installed removed. Nothing
# of the cluster keeps running.
set -u
: "${HOIST:?run by hoist}" "${HOIST_STATE:?run by hoist}"

"$HOIST" node service stop kubelet --state-dir "$HOIST_STATE"
if [ -x /usr/bin/kubeadm ]; then
	# With containerd still up, reset also removes the pods' containers.
	# When the whole cluster goes (HOIST_DELETE_CLUSTER=1), a master does
	# not leave etcd: the other members are going at the same time.
	skip=""
	[ "${HOIST_DELETE_CLUSTER:-0}" = 1 ] && skip="--skip-phases=remove-etcd-member"
	# shellcheck disable=SC2086 # empty or one flag
	kubeadm reset -f $skip --cri-socket unix:///run/containerd/containerd.sock >&2 || true
fi
"$HOIST" node service stop containerd --state-dir "$HOIST_STATE"
pkill -KILL -f /usr/bin/containerd-shim-runc-v2 2>/dev/null || true

# Mounts of pods and snapshots, deepest first, then the state itself (the
# directories may be mount points: their content goes, not them).
awk '$2 ~ "^/(var/lib/kubelet|var/lib/containerd|run/containerd|run/netns)/" {print $2}' /proc/mounts |
	sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
for d in /var/lib/kubelet /var/lib/containerd /var/lib/etcd /run/containerd /etc/kubernetes /var/lib/cni; do
	[ -d "$d" ] && find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
done
rm -rf /etc/kubernetes /run/containerd /var/lib/cni
rm -f /etc/cni/net.d/10-hoist.conflist /etc/containerd/config.toml /etc/crictl.yaml \
	/etc/sysctl.d/90-hoist-kubernetes.conf

# The pod network: the bridge, the routes to other nodes' pods, the rules
# kube-proxy and the CNI plugins wrote.
ip link del hoist0 2>/dev/null || true
ip route flush proto 77 2>/dev/null || true
if command -v iptables-save > /dev/null 2>&1; then
	iptables-save | grep -v -e KUBE- -e CNI- | iptables-restore 2>/dev/null || true
fi

for f in bin/*; do rm -f "/usr/bin/${f#bin/}"; done
for f in cni/*; do rm -f "/opt/cni/bin/${f#cni/}"; done
exit 0

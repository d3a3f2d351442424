package kubeadm

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/hoistdev/hoist/apply/ssh"
)

// memberEtcdctl is etcdctl (installed in /usr/bin by init-node.sh) against
// a master's own etcd, as its API server's client.
func memberEtcdctl(args string) string {
	return "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt" +
		" --cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key" +
		" --command-timeout=20s " + args + " </dev/null"
}

// RemoveMember takes the etcd member of the master at ip out of etcd,
// asked on another master. kubeadm reset does it on a master that leaves,
// when its machine answers; a dead machine cannot, and its member would
// count against the quorum until removed. No such member is not an
// error: the master left already, or never ran etcd.
func (k *Runtime) RemoveMember(ctx context.Context, master ssh.Executor, ip string) error {
	out, err := ssh.Output(ctx, master, "command -v etcdctl >/dev/null || exit 0\n"+memberEtcdctl("member list -w json"))
	if err != nil {
		return fmt.Errorf("etcdctl member list: %w", err)
	}
	if len(out) == 0 {
		// An image without etcdctl: kubeadm reset on the node is all.
		return nil
	}
	id, ok, err := memberOn(out, ip)
	if err != nil || !ok {
		return err
	}
	if err := master.Run(ctx, memberEtcdctl("member remove "+strconv.FormatUint(id, 16))+" >&2", nil, nil); err != nil {
		return fmt.Errorf("etcdctl member remove %x (%s): %w", id, ip, err)
	}
	return nil
}

// maxMemberList bounds etcdctl's answer: a few hundred bytes a member.
const maxMemberList = 1 << 20

// memberOn finds, in `etcdctl member list -w json` (from a node), the
// member whose peer URL is on ip.
func memberOn(list []byte, ip string) (id uint64, ok bool, err error) {
	if len(list) > maxMemberList {
		return 0, false, fmt.Errorf("etcdctl member list: %d bytes, more than any cluster's list", len(list))
	}
	var l struct {
		Members []struct {
			ID       uint64   `json:"ID"`
			Name     string   `json:"name"`
			PeerURLs []string `json:"peerURLs"`
		} `json:"members"`
	}
	if err := json.Unmarshal(list, &l); err != nil {
		return 0, false, fmt.Errorf("etcdctl member list: %w", err)
	}
	for _, m := range l.Members {
		for _, p := range m.PeerURLs {
			u, err := url.Parse(p)
			if err != nil {
				continue
			}
			if h := u.Hostname(); h != "" && net.ParseIP(h) != nil && net.ParseIP(h).Equal(net.ParseIP(ip)) {
				return m.ID, true, nil
			}
		}
	}
	return 0, false, nil
}

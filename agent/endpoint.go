package agent

// The API servers' name on a node, when hoist balances them there (the
// kubeadm runtime without an endpoint of the Clusterfile's): the hosts
// line of the name and the balancer's service, both the cluster's, which
// `hoist node endpoint` sets up (package agent/lb) and `hoist node clean`
// removes.

// APIServerLBService is the node service of a cluster's API server
// balancer.
func APIServerLBService(cluster string) string { return "hoist-apiserver-lb-" + cluster }

// apiServerHostsKey tells the hosts line of the API servers' name from the
// registry's line of the same cluster.
func apiServerHostsKey(cluster string) string { return cluster + "/apiserver" }

// SetAPIServerHostsEntry makes file map name to ip, in the cluster's line
// for the API servers' name.
func SetAPIServerHostsEntry(file, cluster, name, ip string) error {
	return SetHostsEntry(file, apiServerHostsKey(cluster), name, ip)
}

// RemoveAPIServerHostsEntry removes that line.
func RemoveAPIServerHostsEntry(file, cluster string) error {
	return RemoveHostsEntry(file, apiServerHostsKey(cluster))
}

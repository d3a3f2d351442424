// Package layout names, once, every path hoist uses: under --root on the
// machine that runs it, under a cluster's directory on a node, and the
// conventional folders of a cluster image's rootfs. It depends on the
// standard library only, since the node side (agent) uses it too.
package layout

import (
	"path"
	"path/filepath"
)

// Files apply writes on a node outside the cluster's directory.
const (
	CertsDir  = "/etc/containerd/certs.d" // containerd's mirror configuration
	HostsFile = "/etc/hosts"
)

// Folders of a cluster image's rootfs.
const (
	ImageRegistry = "registry" // the bundled images, in the Distribution layout
	ImagePlugins  = "plugins"  // Plugin documents: the image's hooks
)

// Local is hoist's --root on the machine that runs it.
type Local struct{ Root string }

// Storage is the image store (containers/storage's graph root).
func (l Local) Storage() string { return filepath.Join(l.Root, "storage") }

// StorageDriver records the store's driver, chosen once.
func (l Local) StorageDriver() string { return filepath.Join(l.Root, "storage-driver") }

// Config holds registries.conf.d and the credentials of hoist login.
func (l Local) Config() string { return filepath.Join(l.Root, "config") }

// BlobCache caches the blobs of the images a build bundles.
func (l Local) BlobCache() string { return filepath.Join(l.Root, "cache", "blobs") }

// BlobInfoCache is containers/image's cache of what blobs each registry
// holds (otherwise in /var/lib/containers/cache).
func (l Local) BlobInfoCache() string { return filepath.Join(l.Root, "cache", "blob-info") }

// PackedRootfs is the packed stream of a rootfs that apply sends to nodes
// (key: the image digest, "+registry" for the tree with its registry/),
// made once per image; the file's index (segments and stream digest) is
// beside it with ".json" added.
func (l Local) PackedRootfs(key string) string {
	return filepath.Join(l.Root, "cache", "rootfs", key+".tar.zst")
}

// BuildLock keeps builds of one store apart.
func (l Local) BuildLock() string { return filepath.Join(l.Root, "build.lock") }

// BuildCache maps a build's inputs (a key) to the image they made, so that
// a rebuild of unchanged inputs reuses it without running buildah.
func (l Local) BuildCache() string { return filepath.Join(l.Root, "cache", "builds") }

// Downloads caches the https sources of Kubefiles.
func (l Local) Downloads() string { return filepath.Join(l.Root, "cache", "downloads") }

// Tmp holds the temporary directories of running hoists (see scratch).
func (l Local) Tmp() string { return filepath.Join(l.Root, "tmp") }

// KnownHosts is the SSH host keys of the nodes.
func (l Local) KnownHosts() string { return filepath.Join(l.Root, "known_hosts") }

// Clusters holds one directory per cluster applied from here.
func (l Local) Clusters() string { return filepath.Join(l.Root, "clusters") }

// Cluster is the state of one cluster applied from here.
func (l Local) Cluster(name string) Cluster { return Cluster{Dir: filepath.Join(l.Clusters(), name)} }

// Cluster is a cluster's state directory under --root.
type Cluster struct{ Dir string }

// Journal is the apply journal: the steps done on each node.
func (c Cluster) Journal() string { return filepath.Join(c.Dir, JournalFile) }

// Lock keeps two applies or deletes of the cluster apart.
func (c Cluster) Lock() string { return filepath.Join(c.Dir, "lock") }

// PKI holds the cluster CA and the registry certificate.
func (c Cluster) PKI() string { return filepath.Join(c.Dir, "pki") }

// Clusterfile is the Clusterfile last applied to the cluster (by apply -f
// or run), without its secrets: what status and delete read when given no
// -f, as sealer reads ~/.sealer/<name>/Clusterfile.
func (c Cluster) Clusterfile() string { return filepath.Join(c.Dir, "Clusterfile") }

// JournalFile is the journal's name, in a cluster's state here and on its
// first master.
const JournalFile = "journal.json"

// Node is a cluster's directory on a node: <dataRoot>/<cluster>.
type Node struct{ Dir string }

// NodeDir is the directory of cluster on a node whose data root is
// dataRoot.
func NodeDir(dataRoot, cluster string) Node { return Node{Dir: path.Join(dataRoot, cluster)} }

// Rootfs is the image's tree, as distributed.
func (n Node) Rootfs() string { return path.Join(n.Dir, "rootfs") }

// Registry is the registry data the node serves (registry nodes only).
func (n Node) Registry() string { return path.Join(n.Rootfs(), ImageRegistry) }

// Bin holds the node's copies of hoist, named by digest.
func (n Node) Bin() string { return path.Join(n.Dir, "bin") }

// PKI holds the registry's certificate and key.
func (n Node) PKI() string { return path.Join(n.Dir, "pki") }

// State holds services' pid files and logs, the runtime's files, the
// journal's copy.
func (n Node) State() string { return path.Join(n.Dir, "state") }

// Journal is the copy of the apply journal kept on the first master.
func (n Node) Journal() string { return path.Join(n.State(), JournalFile) }

// Mirrors lists the mirror files the node's agent wrote.
func (n Node) Mirrors() string { return path.Join(n.State(), "mirrors") }

// Kubeconfig is where shell apps find the cluster's kubeconfig while they
// run (a cluster given by spec.kubeconfig).
func (n Node) Kubeconfig() string { return path.Join(n.State(), "kubeconfig") }

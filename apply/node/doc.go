// Package node is what hoist does on a node, run there by the copy of hoist
// that apply installs (the hidden `hoist node` commands): the /etc/hosts
// entry of the registry, containerd's mirror configuration, and the
// registry service. It depends on nothing but the standard library, so the
// node needs no tool of its own.
package node

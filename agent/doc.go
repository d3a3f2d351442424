// Package agent is what hoist does on a node, run there by the copy of hoist
// that apply installs (the hidden `hoist node` commands): unpacking the
// rootfs, the /etc/hosts entry of the registry, containerd's mirror
// configuration, the registry and other services, cleaning. It depends on
// nothing but the standard library, zstd and hoist's tree code, so the node
// needs no tool of its own.
//
// The commands apply runs are typed command lines (UnpackCmd, MirrorsCmd,
// ...): apply sends a struct's Args, the node's command binds its flags to
// the same struct's Flags, so the two ends cannot disagree on a flag.
package agent

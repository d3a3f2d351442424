// Package apply takes a cluster image to a set of machines: the Clusterfile
// (this file's neighbour clusterfile.go), and, as they land, the plan, the
// SSH executor and the journal that makes an apply resumable.
package apply

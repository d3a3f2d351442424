// Package clusterimage owns the cluster image format and the local image
// store. The metadata schema lives in the leaf package clusterimage/metadata
// so that the Kubefile front end can produce it without the store's
// dependencies.
package clusterimage

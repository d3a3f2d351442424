// Package discover finds the container images that charts, manifests and
// image lists need, so that a cluster image can bundle every one of them: an
// image missed here is an ImagePullBackOff in an air gap. Nothing is found by
// scanning lines; every source is parsed.
//
// Helm charts are rendered with action.Install in client-only dry-run mode,
// as `helm template` does, rather than with engine.Render directly. Install
// is what hoist runs at apply time, so the build sees the same manifests the
// cluster will get: dependency conditions, tags and aliases, import-values,
// values.schema.json validation, kubeVersion checks and hooks (rendered
// apart from the manifest) all behave as they will at install. Two inputs
// make them the install's: the Kubernetes version (Options.KubeVersion,
// NewestKubeVersion by default, never Helm's v1.20.0) and the values,
// composed by package chartvalues exactly as the launcher composes them.
//
// In Kubernetes objects, images are read from every containers,
// initContainers and ephemeralContainers list anywhere in the object. That
// covers the pod templates of Pod, Deployment, StatefulSet, DaemonSet,
// ReplicaSet, ReplicationController, Job, CronJob and PodTemplate, and also
// those of custom resources that embed a pod template (Argo Rollouts,
// OpenKruise and the like), which a list of known paths would miss.
//
// Operators start images no pod names yet, so objects are also read for
// them, each image with the Kind it was found as: string fields named image
// and repository/tag splits under a custom resource's spec, a container's
// image flags and RELATED_IMAGE_* variables. Those guesses are taken only
// with a tag or digest, and only where the field or flag says "image" or
// the value is a fully qualified reference, to keep false positives out: a
// wrong image fails the build. Other strings that look like references are
// Possible, and the images of Helm test hooks Skipped: neither is bundled,
// both are for the caller to warn of (Result.Warnings).
package discover

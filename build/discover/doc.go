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
// apart from the manifest) all behave as they will at install.
//
// In Kubernetes objects, images are read from every containers,
// initContainers and ephemeralContainers list anywhere in the object. That
// covers the pod templates of Pod, Deployment, StatefulSet, DaemonSet,
// ReplicaSet, ReplicationController, Job, CronJob and PodTemplate, and also
// those of custom resources that embed a pod template (Argo Rollouts,
// OpenKruise and the like), which a list of known paths would miss.
package discover

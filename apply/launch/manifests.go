package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// FieldManager is hoist's name in the objects' managed fields.
const FieldManager = "hoist"

// Object is one manifest, with where it came from for errors.
type Object struct {
	*unstructured.Unstructured
	Source string // file:document
}

// ReadManifests reads the *.yaml and *.yml files under dir (sorted), every
// document of each, Lists unpacked.
func ReadManifests(dir string) ([]Object, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for doc := 1; ; doc++ {
			var obj map[string]any
			if err := dec.Decode(&obj); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: document %d: %w", filepath.Base(f), doc, err)
			}
			if len(obj) == 0 {
				continue
			}
			src := fmt.Sprintf("%s:%d", filepath.Base(f), doc)
			u := &unstructured.Unstructured{Object: obj}
			if u.GetKind() == "" || u.GetAPIVersion() == "" {
				return nil, fmt.Errorf("%s: not a Kubernetes object (no apiVersion or kind)", src)
			}
			if u.IsList() {
				list, err := u.ToList()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", src, err)
				}
				for i := range list.Items {
					out = append(out, Object{&list.Items[i], fmt.Sprintf("%s[%d]", src, i)})
				}
				continue
			}
			out = append(out, Object{u, src})
		}
	}
	return out, nil
}

// first tells the objects that others depend on: namespaces and CRDs.
func first(o Object) bool {
	gk := o.GroupVersionKind().GroupKind()
	return gk == (schema.GroupKind{Kind: "Namespace"}) || gk == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"})
}

// manifests server-side applies the objects under dir: namespaces and
// CRDs first (waiting for each CRD to be served), then the rest. Applying
// the same objects again changes nothing.
func (l *Launcher) manifests(ctx context.Context, dir string) error {
	objs, err := ReadManifests(dir)
	if err != nil {
		return err
	}
	dyn, mapper, err := l.clients()
	if err != nil {
		return err
	}
	if l.Rewrite != nil {
		for _, o := range objs {
			l.Rewrite.Object(o.Unstructured)
		}
	}
	early, rest := ordered(objs)
	for _, o := range early {
		if err := apply(ctx, dyn, mapper, o); err != nil {
			return err
		}
		if o.GetKind() == "CustomResourceDefinition" {
			if err := waitEstablished(ctx, dyn, o.GetName()); err != nil {
				return fmt.Errorf("%s: %w", o.Source, err)
			}
		}
	}
	mapper.Reset() // the new CRDs' kinds
	for _, o := range rest {
		if err := apply(ctx, dyn, mapper, o); err != nil {
			return err
		}
	}
	return nil
}

// ordered splits the objects into those applied first (namespaces, CRDs)
// and the rest, each in file order.
func ordered(objs []Object) (early, rest []Object) {
	for _, o := range objs {
		if first(o) {
			early = append(early, o)
		} else {
			rest = append(rest, o)
		}
	}
	return early, rest
}

func apply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o Object) error {
	gvk := o.GroupVersionKind()
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", o.Source, gvk.Kind, o.GetName(), err)
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	ri, _ := resource(dyn, mapping, o)
	force := true // hoist owns what its images declare
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("%s: applying %s %s: %w", o.Source, gvk.Kind, o.GetName(), err)
	}
	return nil
}

// clients are what applying manifests needs: a dynamic client, and a
// mapper from kinds to resources that asks the cluster (again after Reset).
func (l *Launcher) clients() (dynamic.Interface, *restmapper.DeferredDiscoveryRESTMapper, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), nil
}

// resource is where the object goes, and its namespace ("" for a
// cluster-scoped kind): objects without one go to default.
func resource(dyn dynamic.Interface, mapping *meta.RESTMapping, o Object) (dynamic.ResourceInterface, string) {
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return dyn.Resource(mapping.Resource), ""
	}
	ns := o.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return dyn.Resource(mapping.Resource).Namespace(ns), ns
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		crd, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRD %s is not established after a minute", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Change is what launching an app would do to one release or object.
type Change struct {
	Action string `json:"action"` // install, upgrade, create, apply
	Kind   string `json:"kind"`   // HelmRelease, or the object's kind
	Name   string `json:"name"`   // namespace/name
}

// Preview lists what launching the app would create or change, asking the
// cluster which releases and objects exist (nothing is written).
func (l *Launcher) Preview(ctx context.Context, app metadata.App) ([]Change, error) {
	switch {
	case len(app.Cmds) > 0 || app.Type == metadata.AppShell:
		return []Change{{Action: "run", Kind: "Commands", Name: app.Name}}, nil
	case app.Type == metadata.AppHelm:
		ns := Namespace(app)
		cfg := new(action.Configuration)
		if err := cfg.Init(kube.GetConfig(l.Kubeconfig, "", ns), ns, "secret", func(string, ...any) {}); err != nil {
			return nil, err
		}
		hist := action.NewHistory(cfg)
		hist.Max = 1
		act := "upgrade"
		if _, err := hist.Run(app.Name); errors.Is(err, driver.ErrReleaseNotFound) {
			act = "install"
		} else if err != nil {
			return nil, err
		}
		return []Change{{Action: act, Kind: "HelmRelease", Name: ns + "/" + app.Name}}, nil
	case app.Type == metadata.AppManifests:
		dir, err := l.rendered(app)
		if err != nil {
			return nil, err
		}
		objs, err := ReadManifests(dir)
		if err != nil {
			return nil, err
		}
		dyn, mapper, err := l.clients()
		if err != nil {
			return nil, err
		}
		var out []Change
		early, rest := ordered(objs)
		for _, o := range append(early, rest...) {
			gvk := o.GroupVersionKind()
			name := o.GetName()
			act := "create"
			// A kind the cluster does not know yet (its CRD comes with
			// the app) has no objects to change.
			if mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
				ri, ns := resource(dyn, mapping, o)
				if ns != "" {
					name = ns + "/" + name
				}
				if _, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{}); err == nil {
					act = "apply"
				} else if !apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("%s: %w", o.Source, err)
				}
			} else if o.GetNamespace() != "" {
				name = o.GetNamespace() + "/" + name
			}
			out = append(out, Change{Action: act, Kind: gvk.Kind, Name: name})
		}
		return out, nil
	}
	return nil, fmt.Errorf("app %s: type %q has no default launch", app.Name, app.Type)
}

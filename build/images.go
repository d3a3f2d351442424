package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.podman.io/common/libimage"

	"github.com/hoistdev/hoist/build/discover"
	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/chartvalues"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
)

// finishPlan completes a platform's plan with what image discovery needs,
// for a build and a dry run alike: the per-app value flags checked against
// the apps, and the Kubernetes version the charts are rendered for,
// recorded in the metadata.
func finishPlan(ctx context.Context, store *clusterimage.Store, opts Options, plan *kubefile.Plan) error {
	flags := chartvalues.Flags{Files: opts.ValueFiles, Set: opts.Set}
	if err := flags.CheckApps(plan.Metadata.Apps); err != nil {
		return fmt.Errorf("%s: %w", plan.File, err)
	}
	version, from, err := renderKubeVersion(ctx, store, opts, plan)
	if err != nil {
		return err
	}
	plan.Metadata.RenderKubeVersion = version
	if r := plan.Metadata.KubeVersion; r != "" && !inRange(r, version) {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s: warning: charts are rendered for Kubernetes %s (%s), which KUBEVERSION %s excludes", plan.File, version, from, r))
	}
	return nil
}

// renderKubeVersion chooses the Kubernetes version a plan's charts are
// rendered for, and says where it comes from. In order: --kube-version;
// the io.hoist.kubernetes.version label the image will carry (from
// --label, else inherited from its base, such as hoist's Kubernetes base
// image); the highest version the Kubefile's KUBEVERSION allows; the
// newest version hoist's own base image ships.
func renderKubeVersion(ctx context.Context, store *clusterimage.Store, opts Options, plan *kubefile.Plan) (version, from string, err error) {
	if opts.KubeVersion != "" {
		v, err := discover.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return "", "", fmt.Errorf("--kube-version: %w", err)
		}
		return v, "--kube-version", nil
	}
	for _, kv := range opts.Labels {
		if k, v, _ := strings.Cut(kv, "="); k == metadata.KubernetesVersionLabel && v != "" {
			version, err := discover.ParseKubeVersion(v)
			if err != nil {
				return "", "", fmt.Errorf("--label %s: %w", kv, err)
			}
			return version, "--label " + metadata.KubernetesVersionLabel, nil
		}
	}
	if plan.Base != "" && store != nil {
		lookup := &libimage.LookupImageOptions{OS: plan.Platform.OS, Architecture: plan.Platform.Arch, Variant: plan.Platform.Variant}
		// Planning has pulled the base when it may; a dry run's may be
		// missing, and then so is its label.
		if img, _, err := store.Runtime.LookupImage(plan.Base, lookup); err == nil {
			labels, err := img.Labels(ctx)
			if err != nil {
				return "", "", fmt.Errorf("%s: FROM %s: reading its labels: %w", plan.File, plan.Base, err)
			}
			if v := labels[metadata.KubernetesVersionLabel]; v != "" {
				version, err := discover.ParseKubeVersion(v)
				if err != nil {
					return "", "", fmt.Errorf("%s: FROM %s: label %s: %w", plan.File, plan.Base, metadata.KubernetesVersionLabel, err)
				}
				return version, "the base image's " + metadata.KubernetesVersionLabel, nil
			}
		}
	}
	if r := plan.Metadata.KubeVersion; r != "" {
		v, err := discover.KubeVersionInRange(r)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", plan.File, err)
		}
		return v, "the highest KUBEVERSION allows", nil
	}
	return discover.NewestKubeVersion, "the newest hoist's Kubernetes base image ships", nil
}

// inRange tells whether a KUBEVERSION range allows version, as apply's
// check does; a range that does not parse has been refused by the
// Kubefile's parser already.
func inRange(r, version string) bool {
	ok, err := metadata.KubeVersionAllows(r, version)
	return err != nil || ok
}

// discoverOptions are the options of the image search in one platform's
// charts: the value flags with the apps' APPENV (apps: chart path to app),
// the Kubernetes version chosen for the plan, and warnings reported once.
func discoverOptions(opts Options, plan *kubefile.Plan, apps map[string]discover.App, baseDir string, warn func(string)) discover.Options {
	return discover.Options{
		ValueFiles:   opts.ValueFiles,
		Set:          opts.Set,
		Apps:         apps,
		KubeVersion:  plan.Metadata.RenderKubeVersion,
		APIVersions:  opts.APIVersions,
		Exclude:      opts.ExcludeImages,
		IncludeTests: opts.IncludeTests,
		BaseDir:      baseDir,
		Warn:         warn,
	}
}

// discoverFunc finds the images one platform's plan needs.
type discoverFunc func(i int, plan *kubefile.Plan, warn func(string)) ([]discover.Image, error)

// gatherImages lists, for a build or a dry run, the images that the
// plans' apps, charts and manifests need (through find), that their IMAGE
// instructions name and that the image lists hold, each with the places
// that name it. A warning of the search is reported once, however many
// platforms repeat it.
func gatherImages(plans []*kubefile.Plan, opts Options, rep reporter, find discoverFunc) (map[string]map[string]bool, error) {
	found := map[string]map[string]bool{}
	add := func(ref, where string) {
		if found[ref] == nil {
			found[ref] = map[string]bool{}
		}
		found[ref][where] = true
	}
	warned := map[string]bool{}
	warn := func(message string) {
		if !warned[message] {
			warned[message] = true
			rep.warn(StepFindImages, "warning: "+message)
		}
	}
	for i, plan := range plans {
		images, err := find(i, plan, warn)
		if err != nil {
			return nil, err
		}
		for _, img := range images {
			for _, where := range img.FoundIn {
				add(img.Ref, where)
			}
		}
		for _, img := range plan.Images {
			if !discover.Excluded(img.Ref, opts.ExcludeImages) {
				add(img.Ref, fmt.Sprintf("%s:%d (IMAGE)", filepath.Base(plan.File), img.Line))
			}
		}
	}
	if len(opts.ImageLists) > 0 {
		listed, err := discover.Find(nil, discover.Options{ImageLists: opts.ImageLists, Exclude: opts.ExcludeImages})
		if err != nil {
			return nil, err
		}
		for _, img := range listed {
			for _, where := range img.FoundIn {
				add(img.Ref, where)
			}
		}
	}
	return found, nil
}

// discoverSources finds, for a dry run, the images of the apps of this
// Kubefile (APP, CNI, CSI) from their sources in the build context or the
// download cache, rendered as the build will render them in the image.
// What only the build produces is not read: files that COPY, ADD or RUN
// put under charts/ or manifests/, and the apps of the base image.
func discoverSources(plan *kubefile.Plan, opts Options, warn func(string)) ([]discover.Image, error) {
	apps := map[string]discover.App{}
	var paths []string
	for _, app := range plan.Metadata.Apps {
		sources := plan.AppSources[app.Name]
		if len(sources) == 0 {
			continue // the base image's
		}
		switch app.Type {
		case metadata.AppHelm:
			// One chart: a directory or an archive.
			apps[sources[0]] = discover.App{Name: app.Name, Env: app.Env}
			paths = append(paths, sources[0])
		case metadata.AppManifests:
			for _, src := range sources {
				// A directory is walked, which skips what is not a
				// manifest; a lone *.yaml.tmpl is rendered only at install.
				if st, err := os.Stat(src); err == nil && (st.IsDir() || !strings.HasSuffix(src, ".tmpl")) {
					paths = append(paths, src)
				}
			}
		}
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		return nil, nil
	}
	images, err := searchImages(paths, discoverOptions(opts, plan, apps, plan.ContextDir, warn))
	if err != nil {
		return nil, fmt.Errorf("finding the images %s needs: %w", plan.File, err)
	}
	return images, nil
}

// imageRecords are the found images as the metadata lists them, without
// the digests and platforms that only collecting them gives.
func imageRecords(found map[string]map[string]bool) []metadata.Image {
	records := make([]metadata.Image, 0, len(found))
	for ref, places := range found {
		var where []string
		for p := range places {
			where = append(where, p)
		}
		sort.Strings(where)
		records = append(records, metadata.Image{Ref: ref, FoundIn: strings.Join(where, ", ")})
	}
	sort.Slice(records, func(i, j int) bool { return records[i].Ref < records[j].Ref })
	return records
}

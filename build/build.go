// Package build is the build pipeline: a Kubefile's plan (package kubefile)
// run through buildah into hoist's image store, with the hoist metadata on
// the image manifest.
package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containers/buildah/define"
	"github.com/containers/buildah/imagebuildah"
	"github.com/sirupsen/logrus"
	"go.podman.io/common/libimage"
	nettypes "go.podman.io/common/libnetwork/types"
	"go.podman.io/common/pkg/config"
	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/build/kubefile"
	"github.com/hoistdev/hoist/clusterimage"
	"github.com/hoistdev/hoist/clusterimage/metadata"
	"github.com/hoistdev/hoist/layout"
	"github.com/hoistdev/hoist/progress"
)

// PullPolicy says when a build pulls its base images: the word --pull takes.
// It may hold any word the flag was given; Build rejects one it does not
// know, naming it.
type PullPolicy string

// Pull policies, as podman names them.
const (
	PullMissing PullPolicy = "missing"
	PullAlways  PullPolicy = "always"
	PullNever   PullPolicy = "never"
)

// Options are the inputs of a build besides the store.
type Options struct {
	ContextDir  string
	File        string // the Kubefile; default ContextDir/Kubefile
	Tags        []string
	BuildArgs   map[string]string
	Labels      []string // KEY=VALUE
	Annotations []string // KEY=VALUE
	Target      string
	Type        metadata.ImageType
	Platforms   []kubefile.Platform
	NoCache     bool
	Pull        PullPolicy // missing (default), always or never
	Quiet       bool
	// BuildContexts are --build-context NAME=docker-image://REF values,
	// NAME to REF (kubefile.ParseBuildContexts): FROM NAME builds on REF.
	BuildContexts map[string]string
	// CacheDir keeps downloaded APP sources; default: under the store root.
	CacheDir string
	// Version is hoist's own version (and commit): an image in the build
	// cache is reused only by the hoist that made it (cache.go).
	Version string

	// Image discovery and collection (the registry layer).
	ValueFiles    []string // Helm values files: FILE for every chart, APP=FILE for one app's
	Set           []string // Helm --set values: K=V for every chart, APP:K=V for one app's
	ImageLists    []string // extra image list files
	ExcludeImages []string // references or prefixes (ending in / or *) not to bundle
	Jobs          int      // parallel pulls (default 4)
	AllowMissing  bool     // an image that cannot be fetched is a warning, not an error
	TLSNoVerify   bool     // reach source registries over plain HTTP or unverified TLS
	IncludeTests  bool     // bundle the images of Helm test hooks too (--include-tests)
	// KubeVersion is the Kubernetes version charts are rendered for
	// (--kube-version); "" chooses one (renderKubeVersion). APIVersions are
	// API versions the charts see besides Helm's defaults (--api-versions).
	KubeVersion string
	APIVersions []string
	// Progress receives pull progress bars; nil for none.
	Progress io.Writer
	// Out receives buildah's step output; Err its warnings.
	Out, Err io.Writer
	// Reporter receives the build's steps, per platform or for the whole
	// build (Node), and its own warnings (the Kubefile's, images not
	// bundled). Nil writes the warnings to Err, one a line.
	Reporter progress.Reporter
}

// withDefaults fills in what a caller may leave out.
func (o Options) withDefaults() Options {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Err == nil {
		o.Err = io.Discard
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []kubefile.Platform{kubefile.HostPlatform()}
	}
	if o.Reporter == nil {
		o.Reporter = progress.NewNotices(o.Err)
	}
	return o
}

// Result is what a build made.
type Result struct {
	ID    string // the image, or the index for several platforms
	Plans []*kubefile.Plan
}

// Build runs the Kubefile through buildah and stores the image under its tags.
func Build(ctx context.Context, store *clusterimage.Store, opts Options) (*Result, error) {
	entered := time.Now()
	opts = opts.withDefaults()
	rep := reporter{opts.Reporter}
	pull, err := pullPolicy(opts.Pull)
	if err != nil {
		return nil, err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, errors.New("runc is not installed: hoist runs RUN steps with runc (apt-get install runc)")
	}

	file, err := readKubefile(opts)
	if err != nil {
		return nil, err
	}
	var plans []*kubefile.Plan
	for _, pl := range opts.Platforms {
		plan, err := planPlatform(ctx, store, file, opts, pl, false, rep)
		if err != nil {
			return nil, err
		}
		if plan.HasRun && pl.Arch != kubefile.HostPlatform().Arch && !binfmtSupports(pl.Arch) {
			return nil, fmt.Errorf("%s: RUN for %s needs binfmt support for %s binaries on this machine, and there is none (install qemu-user-static and binfmt-support, or build without RUN for that platform)", plan.File, pl, pl.Arch)
		}
		plans = append(plans, plan)
	}
	// The same for every platform: once is enough.
	for _, w := range plans[0].Warnings {
		rep.warn(StepPlan, w)
	}

	unlock, err := lockBuilds(ctx, store, rep)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Nothing that goes into the build changed: the image it made is
	// reused, buildah does not run (cache.go). The key is taken under the
	// lock, so that no other build moves a base image's tag meanwhile. A
	// --no-cache build records its image under the key too: the next
	// build reuses the newest.
	key := buildKey(ctx, store, opts, plans)
	if key != "" && !opts.NoCache {
		if res := reuse(ctx, store, opts, plans, key); res != nil {
			logrus.Debugf("reused the cached build in %s", time.Since(entered))
			return res, nil
		}
	}

	tmp, err := os.MkdirTemp(store.TmpDir(), "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	logrus.Debugf("planned and locked in %s", time.Since(entered))
	var ids []string
	start := time.Now()
	defer func() { logrus.Debugf("build done in %s", time.Since(start)) }()
	for _, plan := range plans {
		done := rep.start(plan.Platform.String(), StepBuildah)
		id, err := buildOne(ctx, store, opts, plan, tmp, runc, pull)
		done(err)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	logrus.Debugf("buildah steps done in %s", time.Since(start))
	// The images the result needs go in a registry layer on top.
	ids, err = bundle(ctx, store, opts, plans, ids, tmp, rep)
	if err != nil {
		return nil, err
	}
	if len(plans) == 1 {
		for _, tag := range opts.Tags {
			if err := store.Tag(ids[0], tag); err != nil {
				return nil, err
			}
		}
		remember(ctx, store, key, plans, ids, ids[0])
		return &Result{ID: ids[0], Plans: plans}, nil
	}
	id, err := store.CreateIndex(ctx, opts.Tags, ids)
	if err != nil {
		return nil, err
	}
	remember(ctx, store, key, plans, ids, id)
	return &Result{ID: id, Plans: plans}, nil
}

// ErrBaseNotLocal is returned with the never pull policy when the base
// image is not in the store.
var ErrBaseNotLocal = errors.New("image not known in the local store, and --pull=never forbids pulling it")

// readKubefile reads the Kubefile once for every platform of the build.
func readKubefile(opts Options) (*kubefile.File, error) {
	path := opts.File
	if path == "" {
		path = filepath.Join(opts.ContextDir, "Kubefile")
	}
	return kubefile.ReadFile(path)
}

// planPlatform plans the Kubefile for one platform. When the final stage
// starts from a hoist image, that image's metadata is inherited: it is
// looked up in the store (nil: none), and pulled first unless the pull
// policy is never. With baseMayBeMissing, a base the store lacks under the
// never policy is planned without its metadata, as a dry run does.
func planPlatform(ctx context.Context, store *clusterimage.Store, file *kubefile.File, opts Options, pl kubefile.Platform, baseMayBeMissing bool, rep reporter) (plan *kubefile.Plan, err error) {
	done := rep.start(pl.String(), StepPlan)
	defer func() { done(err) }()
	cache := opts.CacheDir
	if cache == "" && store != nil {
		cache = layout.Local{Root: store.Root}.Downloads()
	}
	kopts := kubefile.Options{
		ContextDir:    opts.ContextDir,
		BuildArgs:     opts.BuildArgs,
		Platform:      pl,
		Type:          opts.Type,
		CacheDir:      cache,
		BuildContexts: opts.BuildContexts,
	}
	base, err := file.Base(kopts)
	if err != nil {
		return nil, err
	}
	if base != "" && store != nil {
		kopts.Parent, kopts.SealerBase, err = baseMetadata(ctx, store, base, pl, opts.Pull)
		switch {
		case errors.Is(err, ErrBaseNotLocal) && baseMayBeMissing:
			kopts.Parent = nil
		case err != nil:
			return nil, fmt.Errorf("%s: FROM %s: %w", file.Name(), base, err)
		}
	}
	plan, err = file.Plan(ctx, kopts)
	if err != nil {
		return nil, err
	}
	return plan, finishPlan(ctx, store, opts, plan)
}

// baseMetadata returns the hoist metadata of a base image, or nil when it
// is not a hoist image; and why sealer made it, when it did (the plan
// refuses it at its FROM line).
func baseMetadata(ctx context.Context, store *clusterimage.Store, base string, pl kubefile.Platform, pull PullPolicy) (*metadata.Metadata, string, error) {
	lookup := &libimage.LookupImageOptions{OS: pl.OS, Architecture: pl.Arch, Variant: pl.Variant}
	img, _, err := store.Runtime.LookupImage(base, lookup)
	if err != nil {
		if pull == PullNever {
			return nil, "", ErrBaseNotLocal
		}
		popts := &libimage.PullOptions{}
		popts.OS, popts.Architecture, popts.Variant = pl.OS, pl.Arch, pl.Variant
		imgs, perr := store.Runtime.Pull(ctx, base, config.PullPolicyMissing, popts)
		if perr != nil {
			return nil, "", fmt.Errorf("pulling the base image: %w", perr)
		}
		img = imgs[0]
	}
	data, err := img.Inspect(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("inspecting %s: %w", img.ID(), err)
	}
	if why := kubefile.SealerImage(data.Labels, data.Annotations); why != "" {
		return nil, why, nil
	}
	meta, err := clusterimage.MetadataOf(ctx, img)
	return meta, "", err
}

// buildOne runs one platform's plan through buildah and returns the
// image, untagged: the tags go on the final image, after the registry layer.
func buildOne(ctx context.Context, store *clusterimage.Store, opts Options, plan *kubefile.Plan, tmp, runc string, pull define.PullPolicy) (string, error) {
	dockerfile := filepath.Join(tmp, "Dockerfile."+strings.ReplaceAll(plan.Platform.String(), "/", "-"))
	if err := os.WriteFile(dockerfile, []byte(plan.Dockerfile), 0o644); err != nil {
		return "", err
	}
	meta, err := plan.Metadata.Encode()
	if err != nil {
		return "", err
	}
	contexts := map[string]*define.AdditionalBuildContext{}
	for name, dir := range plan.BuildContexts {
		contexts[name] = &define.AdditionalBuildContext{Value: dir}
	}
	// The plan has written the FROM lines these replace; buildah still
	// needs them for COPY --from=NAME and RUN --mount=from=NAME.
	for name, ref := range opts.BuildContexts {
		contexts[name] = &define.AdditionalBuildContext{IsImage: true, Value: ref}
	}
	ulimits, err := currentUlimits()
	if err != nil {
		return "", err
	}
	sys := store.SystemContext()
	sys.OSChoice, sys.ArchitectureChoice, sys.VariantChoice = plan.Platform.OS, plan.Platform.Arch, plan.Platform.Variant
	options := define.BuildOptions{
		ContextDirectory:        plan.ContextDir,
		AdditionalBuildContexts: contexts,
		Args:                    plan.BuildArgs,
		Labels: append([]string{
			metadata.TypeLabel + "=" + string(plan.Metadata.Type),
			metadata.Annotation + "=" + string(meta),
		}, opts.Labels...),
		Annotations: append([]string{
			metadata.TypeLabel + "=" + string(plan.Metadata.Type),
			metadata.Annotation + "=" + string(meta),
		}, opts.Annotations...),
		Target: opts.Target,
		// The ID goes to a file rather than to Out: a build of several
		// steps prints only its final ID (the command does).
		IIDFile:                 dockerfile + ".iid",
		Layers:                  true,
		NoCache:                 opts.NoCache,
		RemoveIntermediateCtrs:  true,
		ForceRmIntermediateCtrs: true,
		PullPolicy:              pull,
		Isolation:               define.IsolationOCI,
		Runtime:                 runc,
		// Host networking and no network setup: builds run offline, and
		// netavark is not installed.
		NamespaceOptions: define.NamespaceOptions{{Name: "network", Host: true}},
		ConfigureNetwork: define.NetworkDisabled,
		NetworkInterface: noNetwork{},
		// buildah raises RLIMIT_NOFILE to 1048576 by default, which fails on
		// machines that forbid raising the hard limit: keep ours.
		CommonBuildOpts:     &define.CommonBuildOptions{Ulimit: ulimits},
		OutputFormat:        define.OCIv1ImageManifest,
		SystemContext:       sys,
		SignaturePolicyPath: store.PolicyPath(),
		Platforms:           []struct{ OS, Arch, Variant string }{{plan.Platform.OS, plan.Platform.Arch, plan.Platform.Variant}},
		Quiet:               opts.Quiet,
		Out:                 opts.Out,
		Err:                 opts.Err,
		ReportWriter:        opts.Err,
		In:                  strings.NewReader(""),
		Log: func(format string, args ...any) {
			fmt.Fprintf(opts.Out, format+"\n", args...)
		},
	}
	if opts.Quiet {
		options.ReportWriter = io.Discard
		options.Log = func(string, ...any) {}
	}
	before, err := containerIDs(store)
	if err != nil {
		return "", err
	}
	// buildah waits for a RUN step to end even when the build is cancelled:
	// stop the step's container so that Ctrl-C takes effect at once.
	// A step may be starting when the cancel comes: keep killing until
	// buildah returns.
	finished := make(chan struct{})
	defer close(finished)
	stop := context.AfterFunc(ctx, func() {
		for {
			killRunningSteps(runc)
			select {
			case <-finished:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	defer stop()
	id, _, err := imagebuildah.BuildDockerfiles(ctx, store.Storage, options, dockerfile)
	if err != nil {
		// buildah removes its working containers on failure, but cannot
		// when the failure is a full disk (its bookkeeping needs space) or
		// an interruption at the wrong moment: remove what this build left.
		removeNewContainers(store, before)
		if ctx.Err() != nil {
			return "", fmt.Errorf("build interrupted: %w", ctx.Err())
		}
		return "", fmt.Errorf("building %s for %s: %w", plan.File, plan.Platform, err)
	}
	return id, nil
}

func pullPolicy(s PullPolicy) (define.PullPolicy, error) {
	switch s {
	case "", PullMissing:
		return define.PullIfMissing, nil
	case PullAlways:
		return define.PullAlways, nil
	case PullNever:
		return define.PullNever, nil
	}
	return 0, fmt.Errorf("--pull %q: use missing, always or never", s)
}

// noNetwork satisfies buildah's network interface without netavark: with
// host networking and network setup disabled it is never called.
type noNetwork struct{ nettypes.ContainerNetwork }

func currentUlimits() ([]string, error) {
	var out []string
	for name, res := range map[string]int{"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC} {
		var lim unix.Rlimit
		if err := unix.Getrlimit(res, &lim); err != nil {
			return nil, fmt.Errorf("reading the %s limit: %w", name, err)
		}
		out = append(out, fmt.Sprintf("%s=%d:%d", name, lim.Max, lim.Max))
	}
	return out, nil
}

// binfmtDir is where the kernel lists binfmt_misc handlers.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// binfmtSupports tells whether the kernel can run binaries of arch through
// binfmt_misc (qemu-user-static registers qemu-<arch>).
func binfmtSupports(arch string) bool {
	names := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "386": "i386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
	name, ok := names[arch]
	if !ok {
		name = arch
	}
	data, err := os.ReadFile(filepath.Join(binfmtDir, "qemu-"+name))
	return err == nil && strings.HasPrefix(string(data), "enabled")
}

func containerIDs(store *clusterimage.Store) (map[string]bool, error) {
	containers, err := store.Storage.Containers()
	if err != nil {
		return nil, fmt.Errorf("listing working containers: %w", err)
	}
	ids := map[string]bool{}
	for _, c := range containers {
		ids[c.ID] = true
	}
	return ids, nil
}

// removeNewContainers deletes the working containers created since before,
// unmounting them first; it is best effort, on a path that already failed.
func removeNewContainers(store *clusterimage.Store, before map[string]bool) {
	containers, err := store.Storage.Containers()
	if err != nil {
		return
	}
	for _, c := range containers {
		if before[c.ID] {
			continue
		}
		_, _ = store.Storage.Unmount(c.ID, true)
		_ = store.Storage.DeleteContainer(c.ID)
	}
}

// lockBuilds serialises the builds of one store and, once it holds the
// lock, removes working containers that an earlier build could not (a full
// disk, a killed process): with every build holding the lock, any container
// found now is such a leftover.
func lockBuilds(ctx context.Context, store *clusterimage.Store, rep reporter) (func(), error) {
	f, err := os.OpenFile(layout.Local{Root: store.Root}.BuildLock(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		waited := time.Now()
		rep.report(progress.Event{Node: Node, Step: StepLock, State: progress.StateWaiting, Message: "waiting for another build on this image store to finish"})
		locked := make(chan error, 1)
		go func() { locked <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
		select {
		case err := <-locked:
			if err != nil {
				f.Close()
				return nil, err
			}
			rep.report(progress.Event{Node: Node, Step: StepLock, State: progress.StateDone, Elapsed: time.Since(waited).Seconds()})
		case <-ctx.Done():
			f.Close() // closing releases a lock the goroutine may still get
			return nil, fmt.Errorf("build interrupted while waiting for another build: %w", ctx.Err())
		}
	}
	removeNewContainers(store, nil)
	return func() { f.Close() }, nil
}

// killRunningSteps kills the runc containers that this process started:
// the RUN steps of its builds (their processes descend from it, buildah's
// runtime helper being its child and their subreaper).
func killRunningSteps(runc string) {
	out, err := exec.Command(runc, "list", "--format", "json").Output()
	if err != nil {
		return
	}
	var containers []struct {
		ID  string `json:"id"`
		Pid int    `json:"pid"`
	}
	if json.Unmarshal(out, &containers) != nil {
		return
	}
	for _, c := range containers {
		if descendsFrom(c.Pid, os.Getpid()) {
			_ = exec.Command(runc, "kill", c.ID, "KILL").Run()
		}
	}
}

// descendsFrom follows parent process IDs from pid up to ancestor.
func descendsFrom(pid, ancestor int) bool {
	for i := 0; i < 64 && pid > 1; i++ {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// The command name may hold spaces and parentheses: the fields we
		// want follow the last ')'.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) < 2 {
			return false
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			return false
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

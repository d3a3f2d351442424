# hoist: build, example and tests. `make example` and `make test` are the two
# setup commands of the README: each installs what it needs first.

GO       ?= go
# buildah's libraries need these tags to build without C libraries (gpgme,
# btrfs); the binary is static (CGO_ENABLED=0) so it can run on any node.
TAGS     := containers_image_openpgp exclude_graphdriver_btrfs
comma    := ,
space    := $(empty) $(empty)
VERSION  ?= 0.1.0-dev
LDFLAGS  := -s -w -X main.version=$(VERSION)
# Helm's version strings, set as Helm's own Makefile sets them: the Helm
# module's version (charts may test .Capabilities.HelmVersion), and the
# Kubernetes version of Helm's default capabilities from client-go's (1.N
# for v0.N). hoist's renders pass their Kubernetes version explicitly
# (build/discover.NewestKubeVersion by default), so nothing depends on
# these but Helm's own defaults. Recursive (=): only the build runs go list.
HELM_VERSION     = $(shell $(GO) list -m -f '{{.Version}}' helm.sh/helm/v3)
K8S_MODULES_VER  = $(subst ., ,$(subst v,,$(shell $(GO) list -m -f '{{.Version}}' k8s.io/client-go)))
HELM_LDFLAGS     = -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/internal/version.metadata= \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$$(($(firstword $(K8S_MODULES_VER)) + 1)) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(word 2,$(K8S_MODULES_VER))
FUZZTIME ?= 60s

export CGO_ENABLED := 0
export PATH := $(PATH):/usr/local/go/bin
# Also for the go commands that scripts and tests run.
export GOFLAGS := -tags=$(subst $(space),$(comma),$(TAGS))

.PHONY: all deps build example demo demo-kubernetes bench test vet fmt-check fuzz clean kube kubernetes-image e2e-kubernetes

all: build

# System packages: runc runs RUN steps; the tests use busybox-static (a base
# image with a shell), skopeo (an independent image reader; with zstd, the
# baseline of make bench's transport benchmark), openssh-server
# (real SSH servers), debootstrap and iproute2 (the node test bed, whose
# Debian tree is cached in /var/cache/hoist-testbed).
PACKAGES := runc busybox-static skopeo zstd openssh-server debootstrap iproute2

deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download

build: deps
	$(GO) build -ldflags "$(LDFLAGS) $(HELM_LDFLAGS)" -o bin/hoist ./cmd/hoist

# The main job: build the example cluster image and show what it holds.
ROOT ?= /var/lib/hoist
example: build
	ROOT=$(ROOT) examples/build-example.sh

# The example image applied to a local test bed of 3 nodes (network
# namespaces with their own root and sshd), then hoist status, then delete.
demo: example
	$(GO) run ./test/demo --hoist bin/hoist --root $(ROOT)
	test/testbed/clean.sh

# Benchmarks: a cached rebuild of Kubefile.example against `hoist version`;
# bundling 20 images of 10 MB against go-containerregistry's layout copy; a
# cached rebuild in process against opening the store; moving 20 images
# into an air gap (build + save against skopeo + zstd, sizes, --since);
# re-applying a version that changed one of them to a node of the test bed
# (as root) against the first apply; a transfer through the API server
# balancer against a direct one.
bench: build
	bench/rebuild.sh
	$(GO) test -run '^$$' -bench 'Bundle|CachedRebuild' -benchtime 3x ./build
	$(GO) test -run '^$$' -bench Transport -benchtime 1x -timeout 60m ./build
	$(GO) test -run '^$$' -bench Redistribute -benchtime 3x -timeout 30m ./apply
	$(GO) test -run '^$$' -bench LB -benchtime 3x ./agent/lb

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet: deps
	$(GO) vet ./...
	$(GO) vet -tags '$(subst $(space),$(comma),$(TAGS)),e2e' ./test/e2e

# etcd, kube-apiserver and kube-controller-manager for the tests that need a
# real API server: built from the Go module proxy (test/kube, its own
# module) into /var/cache/hoist-kube/<version>, once (cold: 5 to 10 minutes).
kube:
	test/kube/build.sh

# The Kubernetes base image (images/kubernetes): binaries cached by version
# in /var/cache/hoist-kube (cold: about 10 minutes from sources), then the
# component images and the base image built into $(ROOT). Another version:
# make kubernetes-image KUBERNETES_VERSION=v1.36.3 (make exports it).
kubernetes-image: build
	HOIST=bin/hoist ROOT=$(ROOT) images/kubernetes/build.sh

# The Kubernetes base image applied to a local test bed of 3 kube nodes
# (1 master, 2 workers): nodes and pods shown, then deleted. KEEP=1 leaves
# the cluster up (test/testbed/clean.sh removes it).
demo-kubernetes: kubernetes-image
	dir=$$(images/kubernetes/binaries.sh) && . "$$dir/versions.env" && \
	KUBE_CACHE_DIR=$$dir $(GO) run ./test/demo --kubernetes \
		--hoist bin/hoist --root $(ROOT) --image hoist.dev/kubernetes:$$KUBERNETES_VERSION $(if $(KEEP),--keep)
	$(if $(KEEP),,test/testbed/clean.sh)

# The proof of the Kubernetes runtime: the base image and an app image
# FROM it, applied to a master and a worker of the kube test bed, a worker
# added and removed, the cluster deleted (TestKubernetesEndToEnd); three
# masters and a worker that survive the loss of the master that made the
# cluster (TestKubernetesHA); a cluster of the previous minor upgraded
# while its app serves (TestKubernetesUpgrade; its base image's binaries
# are built once and cached by version). Each prints its summary lines.
# E2E narrows the run (E2E=Upgrade).
E2E ?= EndToEnd|HA|Upgrade
e2e-kubernetes: deps
	@status=0; $(GO) test -count=1 -tags '$(subst $(space),$(comma),$(TAGS)),e2e' -timeout 80m \
		-run 'TestKubernetes($(E2E))$$' -v ./test/e2e || status=$$?; \
	test/testbed/clean.sh; exit $$status

# The test bed is torn down by each test; clean.sh catches what a killed
# test run left, whatever the outcome. The binaries of the other Kubernetes
# versions (images/kubernetes/modules/v*: the upgrade test's) are built
# meanwhile at the lowest priority, from the CPU the unit tests leave idle
# (about half of 2 cores): cold, that takes their 10 minutes or so off
# the end-to-end tests; cached, it ends at once. A failed build is redone,
# with its error, by the test that needs it.
test: deps fmt-check vet kube
	@pre=; for dir in images/kubernetes/modules/v*/; do \
		KUBERNETES_VERSION=$$(basename $$dir) nice -n 19 images/kubernetes/binaries.sh >/dev/null 2>&1 & pre="$$pre $$!"; \
	done; \
	trap 'kill $$pre 2>/dev/null; wait' EXIT; \
	status=0; $(GO) test -count=1 -timeout 30m ./... || status=$$?; \
	test/testbed/clean.sh; \
	if [ $$status = 0 ]; then $(MAKE) --no-print-directory e2e-kubernetes || status=$$?; fi; \
	exit $$status

# Every fuzz target of the repository (func Fuzz... in a _test.go), one
# after the other, each for FUZZTIME (not part of `make test`, which runs
# their seed corpora). Minimizing a new input is capped: with the default
# 60 s it can take most of a short run.
FUZZFLAGS ?= -fuzzminimizetime 10x
fuzz: deps
	@for file in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== ./$$(dirname $$file) $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./$$(dirname $$file) || exit 1; \
		done; \
	done

clean:
	rm -rf bin

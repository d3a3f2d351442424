# hoist: build, example and tests. `make example` and `make test` are the two
# setup commands of the README: each installs what it needs first.

GO       ?= go
# buildah's libraries (coming with the build engine) need these tags to build
# without C libraries; they are harmless before that.
TAGS     := containers_image_openpgp exclude_graphdriver_btrfs
VERSION  ?= 0.1.0-dev
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 60s

export CGO_ENABLED := 0
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps build example test vet fmt-check fuzz clean

all: build

# Go modules come from the module proxy; nothing else is needed yet.
deps:
	$(GO) mod download

build: deps
	$(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o bin/hoist ./cmd/hoist

# The main job: plan the example cluster image and show the result.
example: build
	bin/hoist build --dry-run -f Kubefile.example examples/platform

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet: deps
	$(GO) vet -tags "$(TAGS)" ./...

test: deps fmt-check vet
	$(GO) test -tags "$(TAGS)" -count=1 ./...

# Fuzz the Kubefile parser (not part of `make test`: it runs until FUZZTIME).
fuzz: deps
	$(GO) test -tags "$(TAGS)" -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./build/kubefile

clean:
	rm -rf bin

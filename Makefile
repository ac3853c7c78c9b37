# Hive: thin wrappers over swift build / swift test. Every target installs what it needs on a fresh Debian 12
# machine (as root), and skips what is already there.
SWIFT ?= swift
HIVE_DEBUG := .build/debug/hive
PORT ?= 9501
WORKERS ?= 2
APT_PACKAGES := libhiredis-dev zlib1g-dev redis-server pkg-config python3 chromium python3-prometheus-client

.PHONY: all deps build release run test unit integration conformance bench fuzz fuzz-smoke docs examples clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "make: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

# Release builds skip Swift's run-time exclusivity checks (debug builds, which the tests run, keep them): in NIO's
# channel and Hive's HTTP path they cost about 15 % of the instructions of a request (callgrind: GET /hello 38.6k ->
# 32.6k, POST 1 KB echo 48.5k -> 41.7k). scripts/bench.sh builds with the same flags.
RELEASE_FLAGS ?= -Xswiftc -enforce-exclusivity=unchecked

release: deps
	$(SWIFT) build -c release $(RELEASE_FLAGS)

# Serves the demo page and its WebSocket on http://127.0.0.1:$(PORT)/ with $(WORKERS) workers.
run: build
	@scripts/ensure-redis.sh
	$(HIVE_DEBUG) start --port $(PORT) --workers $(WORKERS)

# The whole suite: unit and integration tests (real hive binary; the metrics pages checked by Prometheus' promtool,
# taken from Debian's package by scripts/ensure-promtool.sh; Examples/ and the issue's `upper` package built and run,
# see `examples`), the DocC archive (a broken symbol link in a doc comment fails it; under a minute), 30 s of each
# fuzz target, then WebSocket conformance.
test: build
	$(SWIFT) build --build-tests
	PROMTOOL=$$(scripts/ensure-promtool.sh) $(SWIFT) test --skip-build --disable-swift-testing
	$(MAKE) docs
	$(MAKE) fuzz-smoke
	$(MAKE) conformance

# The packages in Examples/, built as a user's package is (Hive by path), into the one scratch path that the tests
# running them use (Tests/IntegrationTests/Support/PackageBuild.swift), so Hive and its dependencies are compiled
# once for all of them. The build plan is deleted before each package: SwiftPM keeps one per scratch path and would
# not notice that the root package changed. Binaries: .build/examples/scratch/debug/{seed,chat}.
EXAMPLES := Seed Chat
EXAMPLES_DIR := $(CURDIR)/.build/examples
examples: deps
	@for example in $(EXAMPLES); do \
		echo "make: building Examples/$$example"; \
		rm -f $(EXAMPLES_DIR)/scratch/debug.yaml $(EXAMPLES_DIR)/scratch/debug/description.json; \
		$(SWIFT) build --package-path Examples/$$example --scratch-path $(EXAMPLES_DIR)/scratch || exit 1; \
	done

unit: build
	$(SWIFT) test --disable-swift-testing --filter 'HiveIPCTests|HiveWorkerTests|HiveRedisTests|HiveMasterTests|HiveConfigTests'

integration: build
	$(SWIFT) test --disable-swift-testing --filter IntegrationTests

conformance: build
	Tests/Conformance/run-conformance.sh $(HIVE_DEBUG)

# Every scenario of Docs/BENCHMARKS.md, 3 runs each, on a release build (about 3 minutes); not part of `make test`.
bench: deps
	scripts/bench.sh

# libFuzzer targets (Docs/FUZZING.md), $(FUZZ_SECONDS) s each; findings in .build-fuzz/findings, exit 1.
FUZZ_SECONDS ?= 300
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# Each fuzz target for 30 s, part of `make test`.
fuzz-smoke: deps
	FUZZ_SECONDS=30 scripts/fuzz.sh

# The API reference (Docs/API.md): one DocC archive of the modules `import Hive` brings (Hive re-exports the
# application API of HiveWorker, HiveIPC and HiveRedis, and DocC documents a module's own symbols only, so the four
# are built and combined). Written under .build, never committed; a broken symbol link fails it. Part of
# `make test`: about 15 s of CPU once the package is built (57 s of wall time on a loaded machine).
DOCS_TARGETS := Hive HiveWorker HiveIPC HiveRedis
DOCS_ARCHIVE := .build/plugins/Swift-DocC/outputs/Hive.doccarchive
docs: deps
	$(SWIFT) package --disable-sandbox generate-documentation --enable-experimental-combined-documentation \
		$(addprefix --target ,$(DOCS_TARGETS)) --warnings-as-errors
	@echo "make: the DocC archive is $(DOCS_ARCHIVE) (open its documentation/hive/ through any static web server)"

clean:
	rm -rf .build .build-fuzz

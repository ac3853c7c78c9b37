# Hive: thin wrappers over swift build / swift test. Every target installs what it needs on a fresh Debian 12
# machine (as root), and skips what is already there.
SWIFT ?= swift
HIVE_DEBUG := .build/debug/hive
PORT ?= 9501
WORKERS ?= 2
APT_PACKAGES := libhiredis-dev zlib1g-dev redis-server pkg-config python3 chromium python3-prometheus-client

.PHONY: all deps build release run test unit integration conformance bench fuzz fuzz-smoke clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "make: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Serves the demo page and its WebSocket on http://127.0.0.1:$(PORT)/ with $(WORKERS) workers.
run: build
	@scripts/ensure-redis.sh
	$(HIVE_DEBUG) start --port $(PORT) --workers $(WORKERS)

# The whole suite: unit and integration tests (real hive binary; the metrics pages checked by Prometheus' promtool,
# taken from Debian's package by scripts/ensure-promtool.sh), 30 s of each fuzz target, then WebSocket conformance.
test: build
	$(SWIFT) build --build-tests
	PROMTOOL=$$(scripts/ensure-promtool.sh) $(SWIFT) test --skip-build --disable-swift-testing
	$(MAKE) fuzz-smoke
	$(MAKE) conformance

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

clean:
	rm -rf .build .build-fuzz

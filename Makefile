# zest: build, demo and test entry points. See README.md.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/zest/target
export ZEST_TOOLS_DIR ?= $(HOME)/.cache/zest-tools
# libtorch comes from the torch wheel in this venv (tch: LIBTORCH_USE_PYTORCH=1); binaries
# carry an rpath to it, so running them needs no environment.
export ZEST_TORCH_VENV ?= $(HOME)/.cache/zest-py/torch-venv
export VIRTUAL_ENV := $(ZEST_TORCH_VENV)
export PATH := $(ZEST_TORCH_VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CARGO ?= cargo
BIN := target/release/zest

.PHONY: all build deps torch pdfium demo test test-tools lint fmt bench clean

all: build

## deps: system packages the build needs (Debian); skipped when already present.
deps:
	@bash infra/scripts/install-build-deps.sh

## torch: the Python venv with the torch wheel (libtorch), transformers and TRL.
torch:
	@bash infra/scripts/install-torch.sh

## pdfium: the PDF library ingest.pdf loads at run time (from the pypdfium2 wheel on PyPI).
pdfium:
	@bash infra/scripts/install-pdfium.sh

## build: target/release/zest
build: deps torch pdfium
	$(CARGO) build --release --locked --workspace --bins
	@cp -f "$(ZEST_TOOLS_DIR)/pdfium/libpdfium.so" "$(CARGO_TARGET_DIR)/release/libpdfium.so"
	@mkdir -p target/release
	@ln -sf "$(CARGO_TARGET_DIR)/release/zest" $(BIN)
	@ln -sf "$(CARGO_TARGET_DIR)/release/zest-torch" target/release/zest-torch
	@echo "built $(BIN)"

## demo: set up, then run the main job on the embedded default data.
## The HTML report is written whether or not every node succeeded; the run's status is kept.
demo: build
	@./$(BIN) run dags/demo.yaml --report .zest/demo-report.json; status=$$?; \
	./$(BIN) report "$$(./$(BIN) runs --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')"; \
	exit $$status

## test-tools: the real services the tests start (SeaweedFS S3, otelite OTLP receiver).
test-tools:
	@bash infra/scripts/install-test-tools.sh

## test: set up, then run every test (unit, integration, end-to-end against real services).
## The test tools (otelite is a cargo build of its own) are installed while the workspace
## builds, at a lower priority, so they use the CPU the build leaves idle.
test: deps
	@mkdir -p .zest; \
	setsid bash infra/scripts/install-test-tools.sh >.zest/test-tools.log 2>&1 & tools=$$!; \
	if ! $(MAKE) --no-print-directory build; then kill -- -$$tools 2>/dev/null; exit 2; fi; \
	if ! wait $$tools; then cat .zest/test-tools.log; echo "installing the test tools failed (log above)" >&2; exit 2; fi; \
	tail -n 4 .zest/test-tools.log
	@for f in dags/*.yaml; do ./$(BIN) validate "$$f" || exit 2; done
	$(CARGO) test --release --locked --workspace --no-fail-fast --lib --bins --tests $(if $(shell nvidia-smi -L 2>/dev/null),-- --include-ignored,)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets --workspace -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: the 10,000-node overhead benchmark against Prefect and Dagster.
bench: build
	bash bench/orchestrators.sh

clean:
	rm -rf .zest target

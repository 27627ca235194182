# attest-step developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(BIN):$(PATH)
PYTEST_WORKERS ?= 2

PHONY_CLUSTER := cluster-build cluster-up cluster-down e2e-cluster chains-comparison
.PHONY: $(PHONY_CLUSTER) help venv tools tekton-tools test test-fast fuzz lint bench demo image image-dev image-lock image-kaniko image-opa release-pin wheel validate-catalog e2e-kind clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(STAMP) ## Create .venv and install attest-step with its test dependencies

tools: ## Install system packages and pinned Go tools (cosign) into .tools/bin
	hack/install-tools.sh

tekton-tools: venv ## Build the Go helpers on Tekton's own code (validator, renderer, entrypoint)
	hack/tekton-validate/run.sh --build-only >/dev/null
	$(PY) -c 'from tests.e2e.executor.render import ensure_built; ensure_built()'

test: venv tools tekton-tools ## Run every test (unit, integration with a real registry, cosign, namespaces, e2e)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --ignore=tests/cluster tests

test-fast: venv ## Unit tests only
	$(BIN)/pytest -n $(PYTEST_WORKERS) tests/unit

fuzz: venv ## Property-based tests of every outside-input parser, long budget (see tests/fuzz/README.md)
	ATTEST_STEP_FUZZ=long $(BIN)/pytest -n $(PYTEST_WORKERS) tests/fuzz

lint: venv ## ruff, mypy --strict, yamllint, shellcheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint -s catalog .yamllint
	hack/shellcheck-all.sh

bench: venv tools ## Measure speed; writes bench.json
	$(PY) hack/bench.py --output bench.json

demo: venv tools ## The main job: hermetic pipeline locally, signed, attested and verified
	$(PY) hack/demo.py

wheel: venv ## Build the wheel into dist/
	$(PY) -m pip wheel --no-deps -w dist .

IMAGE_NAME ?= attest-step
IMAGE_PY := /usr/bin/python3

image: ## Build images/$(IMAGE_NAME) reproducibly from its lock into build/image/ (OCI layout, SBOM)
	$(IMAGE_PY) hack/image/cli.py build --image $(IMAGE_NAME)

image-dev: ## Same, but accept an attest-step wheel that differs from the lock (unlocked dev image)
	$(IMAGE_PY) hack/image/cli.py build --image $(IMAGE_NAME) --unlocked-dev-wheel

image-lock: ## Re-resolve Debian packages and wheels; rewrite images/$(IMAGE_NAME)/image.lock
	$(IMAGE_PY) hack/image/cli.py lock --image $(IMAGE_NAME)

image-kaniko: ## Build the kaniko executor image from KANIKO_SRC (a kaniko source checkout; offline, -mod=vendor)
	$(IMAGE_PY) hack/image/kaniko.py --src "$(KANIKO_SRC)" --version $(or $(KANIKO_VERSION),v1.27.6) --epoch $(or $(KANIKO_EPOCH),1780695290)

image-opa: ## Build the OPA image of verify-provenance's rego step from the Go module proxy (go install -trimpath)
	$(IMAGE_PY) hack/image/opa.py --version $(or $(OPA_VERSION),v1.22.4)

release-pin: ## Pin the catalog's attest-step reference to the last locked `make image` digest
	$(IMAGE_PY) hack/image/cli.py pin

cluster-build: ## Build Kubernetes, Tekton, Chains and tkn for the real-cluster tier (cached)
	hack/cluster/build.sh

cluster-up: venv ## Start the single-node Kubernetes with Tekton and Chains (root; see docs/e2e.md)
	hack/cluster/up.sh

cluster-down: ## Stop the cluster started by cluster-up and undo its host changes
	hack/cluster/down.sh

e2e-cluster: venv tools ## The real-cluster tier: catalog tests under real Tekton (opt-in, root, ~10 GB cache)
	hack/cluster/e2e.sh

chains-comparison: venv ## Regenerate docs/chains-comparison.md from the last e2e-cluster run's statements
	$(PY) hack/cluster/chains_compare.py $${ATTEST_CLUSTER_CACHE:-/var/cache/attest-step-cluster}/results --output docs/chains-comparison.md

validate-catalog: venv ## Validate catalog/ with Tekton's own code (1.0 LTS and newest) and our catalog checks
	hack/tekton-validate/run.sh
	$(PY) hack/catalog_check.py
	$(PY) hack/catalog_scripts.py --shellcheck

clean: ## Remove build output (keeps .venv and .tools)
	rm -rf dist build bench.json .pytest_cache .mypy_cache .ruff_cache

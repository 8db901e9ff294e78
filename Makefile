# ContinuableJob: `make help` lists the targets. Everything installs itself into .venv and
# ~/.cache/continuable, so a fresh clone needs nothing but Python 3.11+ and Go.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CRD := crds/continuable.dev_continuablejobs.yaml

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Getting started

.PHONY: demo
demo: $(STAMP) k8s-bin ## A local Kubernetes, the operator, two jobs interrupted and resumed.
	PYTHONPATH=. $(BIN)/python examples/demo.py

##@ Development

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the project with all its extras.

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[operator,cli,dev]'
	touch $@

.PHONY: crds
crds: $(STAMP) ## Render crds/ (and the chart's copy) from the pydantic models.
	$(BIN)/python -m continuable.api.crd > $(CRD)
	cp $(CRD) charts/continuable-operator/crds/

.PHONY: lint
lint: $(STAMP) ## ruff (lint and format), mypy --strict, import contracts.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: verify
verify: $(STAMP) ## Fail when the committed CRD differs from what the models render.
	@$(BIN)/python -m continuable.api.crd | diff -u $(CRD) - \
		|| { echo "$(CRD) is stale: run 'make crds' and commit it"; exit 1; }
	@cmp -s $(CRD) charts/continuable-operator/crds/$(notdir $(CRD)) \
		|| { echo "charts/continuable-operator/crds/ is stale: run 'make crds' and commit it"; exit 1; }

.PHONY: unit
unit: $(STAMP) ## Unit tests (no cluster).
	$(BIN)/pytest tests/unit

.PHONY: e2e-local
e2e-local: $(STAMP) ## SDK end-to-end tests with real processes and signals (no cluster).
	$(BIN)/pytest tests/e2e/local

.PHONY: e2e
# The suites mostly wait on their jobs (about half of 2 cores is idle), so they run in three
# pytest processes at once, each with a control plane of its own: the soak smoke, the suites in
# E2E_BESIDE (the real node and Kueue, which change host state, are both there), and the rest.
# Their output follows the main run's; any failing fails `e2e`.
SOAK_SMOKE_LOG := .continuable/soak-smoke.log
E2E_BESIDE := tests/e2e/kueue tests/e2e/helm tests/e2e/realnode tests/e2e/node
E2E_BESIDE_LOG := .continuable/e2e-beside.log

e2e: $(STAMP) k8s-bin prometheus-bin kueue-bin node-packages node-images ## All end-to-end tests, in three pytest processes, each starting (and stopping) a local cluster of its own.
	@mkdir -p $(dir $(SOAK_SMOKE_LOG))
	@$(BIN)/pytest tests/e2e/soak -p no:cacheprovider --durations=1 >$(SOAK_SMOKE_LOG) 2>&1 & smoke=$$!; \
	$(BIN)/pytest $(E2E_BESIDE) -p no:cacheprovider --durations=10 >$(E2E_BESIDE_LOG) 2>&1 & beside=$$!; \
	$(BIN)/pytest tests/e2e --ignore=tests/e2e/soak $(addprefix --ignore=,$(E2E_BESIDE)) --durations=15; suite=$$?; \
	wait $$beside; besided=$$?; \
	echo "==> $(E2E_BESIDE) (ran beside the suite; log: $(E2E_BESIDE_LOG))"; cat $(E2E_BESIDE_LOG); \
	wait $$smoke; smoked=$$?; \
	echo "==> tests/e2e/soak (ran beside the suite; log: $(SOAK_SMOKE_LOG))"; cat $(SOAK_SMOKE_LOG); \
	test $$suite -eq 0 && test $$besided -eq 0 && test $$smoked -eq 0

.PHONY: test
test: lint verify k8s-bin prometheus-bin kueue-bin node-packages node-images unit e2e ## Everything CI runs: lint, verify, unit and end-to-end tests.

##@ Local cluster

.PHONY: k8s-bin
k8s-bin: ## Build the pinned Kubernetes (kubelet, kube-proxy too), etcd and helm binaries into ~/.cache/continuable (once).
	bash tests/cluster/build_binaries.sh >/dev/null

.PHONY: prometheus-bin
prometheus-bin: ## Build the pinned Prometheus server and promtool into ~/.cache/continuable (once).
	bash tests/cluster/build_prometheus.sh >/dev/null

.PHONY: kueue-bin
kueue-bin: ## Build the pinned Kueue manager (and keep its CRDs) into ~/.cache/continuable (once).
	bash tests/cluster/build_kueue.sh >/dev/null

.PHONY: kwok-bin
kwok-bin: ## Build the pinned kwok (fake nodes for `make bench-scale`) into ~/.cache/continuable (once).
	bash tests/cluster/build_kwok.sh >/dev/null

.PHONY: node-packages
node-packages: ## Install the real node's Debian packages (containerd, runc, CNI plugins, buildah, ...) if missing.
	bash tests/cluster/realnode/install_packages.sh

.PHONY: node-images
node-images: node-packages ## Build the real node's images (base, operator from the Dockerfile, job, pause) when their inputs change.
	bash tests/cluster/realnode/build_images.sh >/dev/null

# `make cluster-up REALNODE=1` adds the real node real-0 (kubelet, containerd, kube-proxy).
REALNODE ?=

.PHONY: cluster-up
cluster-up: $(STAMP) k8s-bin $(if $(REALNODE),node-images) ## A long-lived local cluster: control plane, process node, operator (REALNODE=1: and real-0); prints the kubeconfig.
	$(BIN)/python -m tests.cluster up $(if $(REALNODE),--real-node)

.PHONY: cluster-down
cluster-down: $(STAMP) ## Stop the local cluster started by cluster-up.
	$(BIN)/python -m tests.cluster down

.PHONY: cluster-status
cluster-status: $(STAMP) ## Say whether the local cluster is up.
	$(BIN)/python -m tests.cluster status

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[operator,cli,dev,bench]'
	touch $@

.PHONY: bench
bench: $(BENCH_STAMP) k8s-bin ## Benchmarks, printed as tables with ratios (not tests); plots into bench/results/.
	$(BIN)/python bench/sdk.py
	$(BIN)/python bench/concurrency.py
	PYTHONPATH=. $(BIN)/python bench/checkpoint.py
	PYTHONPATH=. $(BIN)/python bench/operator_load.py
	PYTHONPATH=. $(BIN)/python bench/versus_job.py

.PHONY: bench-scale
bench-scale: $(BENCH_STAMP) k8s-bin kwok-bin ## The operator at 100, 300 and 1,000 jobs on kwok nodes, then restarted among 5,000 finished ones (about 30 minutes).
	PYTHONPATH=. $(BIN)/python bench/scale.py

.PHONY: bench-versus-job
bench-versus-job: $(BENCH_STAMP) k8s-bin ## Only the ContinuableJob against batch/v1 Job comparison of `make bench`.
	PYTHONPATH=. $(BIN)/python bench/versus_job.py

# The soak's size; `make soak SOAK_SEED=<seed>` replays a run's plan (an empty seed: a random one).
SOAK_JOBS ?= 30
SOAK_FAULTS ?= 20
SOAK_MINUTES ?= 25
SOAK_SEED ?=

.PHONY: soak
soak: $(STAMP) k8s-bin ## Chaos soak (not in `make test`): seeded faults on SOAK_JOBS jobs, judged from independent records.
	SOAK_JOBS=$(SOAK_JOBS) SOAK_FAULTS=$(SOAK_FAULTS) SOAK_MINUTES=$(SOAK_MINUTES) \
		SOAK_SEED=$(SOAK_SEED) $(BIN)/python -m tests.soak

.PHONY: clean
clean: ## Remove .venv and caches (the Kubernetes binaries in ~/.cache stay).
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .continuable
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

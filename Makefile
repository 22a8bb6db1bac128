# skaha-operator — `make help` lists every target.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=
HELM ?= $(or $(wildcard $(HOME)/.cache/skaha-operator/bin/helm),helm)

##@ General

.PHONY: help
help: ## Show this help, grouped.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Set-up

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,peer]'
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the project with its dev extras.

.PHONY: controlplane
controlplane: ## Build (or reuse) etcd, kube-apiserver, kube-controller-manager, kubectl, helm in ~/.cache.
	bash hack/controlplane.sh all

.PHONY: podman
podman: venv ## Install podman/runc/mmdebstrap if missing; build (or reuse) the Debian bases and the job stand-in.
	bash hack/podman.sh install
	bash hack/podman.sh bases
	bash hack/podman.sh standin

.PHONY: setup
setup: venv controlplane podman ## Everything the tests and the demo need.

##@ Development

.PHONY: lint
lint: venv ## ruff (lint + format check) and the import-linter layer contracts.
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/lint-imports

.PHONY: format
format: venv ## Apply ruff's formatter and safe fixes.
	$(BIN)/ruff check --fix operator tests bench
	$(BIN)/ruff format operator tests bench

.PHONY: typecheck
typecheck: venv ## mypy, strict, on the package and bench/.
	$(BIN)/mypy

.PHONY: crds
crds: venv ## Regenerate crds/ from the pydantic models.
	$(BIN)/python -m skaha_operator.domain.crd --out crds
	cp crds/*.yaml helm/skaha-operator/files/crds/
	cp crds/*.yaml manifests/base/crds/

.PHONY: check
check: lint typecheck ## lint + typecheck.

##@ Test

.PHONY: test
test: setup ## All tests: unit, simulator, contract and integration (real kube-apiserver + etcd).
	bash hack/pytest.sh $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Only the tests that need neither the control plane nor podman.
	bash hack/pytest.sh -m "not integration and not containers" $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: setup ## Only the tests against the local control plane or podman.
	bash hack/pytest.sh -m "integration or containers" $(PYTEST_ARGS)

.PHONY: bench
bench: setup ## Sessions/s, cost per Session vs the floor and bare kopf (N=100,500,1000); writes docs/performance.md.
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

.PHONY: chaos
chaos: setup ## Full reliability campaigns (tests/chaos at CHAOS_SCALE=full); writes docs/reliability.md.
	rm -rf build/chaos
	CHAOS_SCALE=full CHAOS_REPORT_DIR=build/chaos bash hack/pytest.sh -m chaos tests/chaos $(PYTEST_ARGS); \
	  rc=$$?; $(BIN)/python -m bench.chaos_report build/chaos docs/reliability.md && exit $$rc

##@ Run

.PHONY: cluster
cluster: setup ## Start a local control plane in the foreground; prints its kubeconfig.
	$(BIN)/skaha-operator controlplane

.PHONY: simulator
simulator: venv ## Run the Skaha/Cavern/Rucio simulator on 127.0.0.1:8765.
	$(BIN)/skaha-operator simulator --port 8765

.PHONY: demo
demo: setup ## The one-command demo: control plane, simulator, operator, examples, live table.
	$(BIN)/skaha-operator demo $(DEMO_ARGS)

.PHONY: demo-down
demo-down: ## Stop a running `make demo` and everything it started.
	$(BIN)/skaha-operator demo --down

##@ Ship

CHART := helm/skaha-operator
IMAGE ?= skaha-operator:dev
KIND_CLUSTER ?= skaha
KIND ?= kind

.PHONY: chart-lint
chart-lint: setup ## helm lint + helm template of the chart (both RBAC modes).
	$(HELM) lint $(CHART)
	$(HELM) lint $(CHART) --set rbac.namespaced=true --set watchNamespaces='{science}'
	$(HELM) template skaha-operator $(CHART) --namespace skaha-system --kube-version 1.36.3 >/dev/null

.PHONY: manifests
manifests: setup ## Regenerate manifests/base (kustomize) from the chart and the Argo CD health ConfigMap.
	cp crds/*.yaml $(CHART)/files/crds/
	$(BIN)/python hack/gen_manifests.py $(HELM)
	$(BIN)/python hack/gen_argocd_health.py

.PHONY: image
image: venv ## Build the container image with podman, FROM Debian's python3 (hack/podman.sh; installs podman if missing).
	IMAGE=$(IMAGE) bash hack/podman.sh image

.PHONY: image-docker
image-docker: ## Build the image with docker FROM the pinned python:3.11 slim base (needs an index and a registry).
	docker build -t $(IMAGE) .

.PHONY: kind-up
kind-up: ## Create a kind cluster (needs docker; untested in CI, which has no container engine).
	$(KIND) create cluster --name $(KIND_CLUSTER)

.PHONY: kind-deploy
kind-deploy: image-docker ## Load the image into kind and install the chart (untested in CI).
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(HELM) upgrade --install skaha-operator $(CHART) --namespace skaha-system --create-namespace \
	  --kube-context kind-$(KIND_CLUSTER) --set image.repository=$(firstword $(subst :, ,$(IMAGE))) \
	  --set image.tag=$(lastword $(subst :, ,$(IMAGE))) --set image.pullPolicy=Never --wait

.PHONY: kind-down
kind-down: ## Delete the kind cluster (untested in CI).
	$(KIND) delete cluster --name $(KIND_CLUSTER)

##@ Clean-up

.PHONY: clean
clean: ## Remove the virtualenv and caches (keeps the control-plane binaries).
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

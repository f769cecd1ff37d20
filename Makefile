# Marina — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python3
PYTEST_ARGS ?=
# PURGE=1: cluster-down and undeploy also delete MinIO's stored data (kept otherwise).
PURGE ?= 0

.DEFAULT_GOAL := help
.PHONY: help deps install check test test-unit lint format typecheck layers crds gitops bench cluster-up cluster-down \
        cluster-status images deploy undeploy demo kind-up kind-down monitoring

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages and Python packages Marina needs (idempotent)
	bash hack/install-deps.sh

install: ## install Marina and its development tools into the current Python
	$(PYTHON) -m pip install -q -e '.[dev]'

check: ## style, formatting, strict types, import layers and generated files, in seconds (CI runs it first)
	$(PYTHON) -m ruff check operator tests benchmarks hack
	$(PYTHON) -m ruff format --check operator tests benchmarks hack
	$(PYTHON) -m mypy
	lint-imports
	$(PYTHON) -m marina.contract.crds --check crds
	$(PYTHON) -m marina.contract.reference --check docs/reference.md
	$(PYTHON) -m marina.contract.argocd --check manifests/argocd
	$(PYTHON) hack/chart_files.py --check

# hack/test.sh brings the cluster up in the background while the unit tests run, then runs the cluster tests
# side by side and the serial ones alone (MARINA_TEST_WORKERS=N sets the side-by-side workers).
test: deps check ## run every test, bringing the local cluster up when no cluster is reachable
	PYTHON="$(PYTHON)" PYTEST_ARGS="$(PYTEST_ARGS)" bash hack/test.sh

test-unit: ## run only the tests that need no cluster
	$(PYTHON) -m pytest -m 'not cluster' $(PYTEST_ARGS)
	for threads in 1 2; do OPENBLAS_NUM_THREADS=$$threads $(PYTHON) -m pytest tests/solver -q || exit 1; done  # tolerances hold for any BLAS summation order

lint: ## ruff
	$(PYTHON) -m ruff check operator tests benchmarks hack

format: ## ruff format, in place
	$(PYTHON) -m ruff format operator tests benchmarks hack

typecheck: ## mypy (strict) on the package
	$(PYTHON) -m mypy

layers: ## the import layers of pyproject.toml's [tool.importlinter]
	lint-imports

crds: ## generate crds/, docs/reference.md and the Argo CD health checks from the contract (operator/marina/contract/kinds.py); copy the CRDs and monitoring files into the Helm chart
	$(PYTHON) -m marina.contract.crds crds
	$(PYTHON) -m marina.contract.reference docs/reference.md
	$(PYTHON) -m marina.contract.argocd manifests/argocd
	$(PYTHON) hack/chart_files.py

gitops: ## the Argo CD health checks (gopher-lua), kstatus and the Helm chart (lint, template = kustomize), building their Go tools once
	$(PYTHON) -m pytest tests/manifests/test_argocd_health.py tests/manifests/test_kstatus.py tests/manifests/test_helm_chart.py $(PYTEST_ARGS)

bench: ## benchmarks against scikit-learn and MLServer, printing ratios
	$(PYTHON) benchmarks/solver_bench.py
	$(PYTHON) benchmarks/server_bench.py

cluster-up: ## build (or reuse) and start a local Kubernetes cluster on this machine
	bash hack/cluster-up.sh

cluster-down: ## stop the local cluster and clean up after it; MinIO's data stays unless PURGE=1
	PURGE=$(PURGE) bash hack/cluster-down.sh

cluster-status: ## show what is running
	bash hack/cluster-status.sh

monitoring: ## metrics-server (kubectl top, HPAs) and a Prometheus on 127.0.0.1:9090 with Marina's rules, on the local cluster
	bash hack/monitoring-up.sh

images: ## build Marina's images and load them into the cluster
	bash hack/images.sh

deploy: ## install CRDs, MinIO and the operator into the current cluster
	bash hack/deploy.sh

undeploy: ## remove the operator, MinIO and CRDs; stored data stays in MinIO's volume unless PURGE=1
	PURGE=$(PURGE) bash hack/undeploy.sh

demo: deps ## cluster, images, operator, MinIO, samples — ending in real predictions
	bash hack/demo.sh

# worker nodes of `make kind-up` besides the control plane
WORKERS ?= 0

kind-up: ## a kind cluster "marina" with Marina deployed (node image built here; WORKERS=3 adds three worker nodes; MARINA_KIND_NODE_IMAGE=kindest/node:... for an upstream one)
	MARINA_KIND_WORKERS=$(WORKERS) bash hack/kind-up.sh

kind-down: ## delete the kind cluster, its network and filter, and stop kind's Docker engine
	bash hack/kind/kind-down.sh

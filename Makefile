# The two commands of the README:
#   make demo   set everything up, then run the docs' scaling practice on the embedded sandbox
#   make test   set everything up, then lint, type-check and run the whole test suite
.PHONY: setup demo test lint typecheck unit sandbox bench crds control-plane kstatus real-milvus

VENV := .venv/bin

setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/milvus-rg-operator demo

# The tests run in parallel (pytest-xdist, a worker per core, at most 4): they mostly wait on the sandbox, and
# every test on the real control plane goes to one worker, so it starts once (tests/conftest.py).
PYTEST_WORKERS ?= auto
test: setup lint typecheck control-plane kstatus real-milvus
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(VENV)/python -m pytest -q -p no:cacheprovider \
		--numprocesses $(PYTEST_WORKERS) --maxprocesses 4 --dist loadgroup

# The real Kubernetes tier (docs/real-kubernetes.md): etcd, kube-apiserver, controllers, scheduler and kwok
# built from Go modules into a cache outside the clone (cold 8-35 min on 2 cores, by load; then nothing). Without Go
# its tests skip, and the run then fails on skips missing from tests/expected_skips.txt; under CI this target fails.
control-plane:
	@if command -v go >/dev/null; then ./scripts/control-plane.sh build; \
	elif [ -n "$${CI:-}" ]; then echo "control-plane: CI is set and Go is not on PATH: the real Kubernetes tier" \
		"(tests/realkube, the [real] tests) is built with Go 1.26 (docs/real-kubernetes.md)" >&2; exit 1; \
	else echo "control-plane: no Go here: the real Kubernetes tests will skip (and fail the run as unexpected skips)"; fi

# kstatus, the health engine Flux uses, built from the Go module sigs.k8s.io/cli-utils (scripts/kstatus/) into a
# cache outside the clone (about 30 s cold): the tests read the operator's objects' health with it.
kstatus:
	@if command -v go >/dev/null; then ./scripts/kstatus.sh build; \
	elif [ -n "$${CI:-}" ]; then echo "kstatus: CI is set and Go is not on PATH: kstatus (scripts/kstatus/) is" \
		"built with Go 1.26 from sigs.k8s.io/cli-utils" >&2; exit 1; \
	else echo "kstatus: no Go here: the kstatus tests will skip (and fail the run as unexpected skips)"; fi

# The real Milvus tier (tests/realmilvus, marker real_milvus): Milvus 2.3.5 from PyPI in .tools/milvus-2.3.5.
real-milvus:
	@./scripts/real-milvus.sh install

lint:
	$(VENV)/ruff check .

typecheck:
	$(VENV)/mypy

sandbox: setup
	$(VENV)/milvus-rg-operator sandbox --query-nodes 1

# `make bench` runs every bench at full size; `make bench BENCH_FLAGS=--quick` the CI subset.
bench: setup
	./bench/run $(BENCH_FLAGS)

crds: setup
	$(VENV)/python -m milvus_rg_operator.api.crds --write

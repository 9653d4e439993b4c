# The two commands of the README:
#   make demo   set everything up, then run the docs' scaling practice on the embedded sandbox
#   make test   set everything up, then lint, type-check and run the whole test suite
.PHONY: setup demo test lint typecheck unit sandbox bench crds

VENV := .venv/bin

setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/milvus-rg-operator demo

test: setup lint typecheck
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(VENV)/python -m pytest -q -p no:cacheprovider

lint:
	$(VENV)/ruff check .

typecheck:
	$(VENV)/mypy

sandbox: setup
	$(VENV)/milvus-rg-operator sandbox

bench: setup
	$(VENV)/python bench/run_all.py

crds: setup
	$(VENV)/python -m milvus_rg_operator.api.crds --write

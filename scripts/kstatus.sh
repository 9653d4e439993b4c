#!/usr/bin/env bash
# kstatus, the health engine Flux uses (sigs.k8s.io/cli-utils/pkg/kstatus), as a small command built from
# scripts/kstatus/ (main.go: `kubectl get -o json` on stdin, `<kind>/<name> <Status> <message>` out):
#   scripts/kstatus.sh build   build it into the cache (does nothing when it is there)
#   scripts/kstatus.sh bin     print the built binary's path (empty output, exit 1, if not built)
# The version is pinned by scripts/kstatus/go.mod and go.sum; the cache directory is keyed by it, the Go
# version and the sources, outside the clone (as scripts/control-plane.sh does), so a rebuild happens only
# when one of them changes.
set -euo pipefail
module="$(cd "$(dirname "$0")" && pwd)/kstatus"
cache_root="${MILVUS_RG_KSTATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/milvus-rg-operator/kstatus}"

require_go() {
    command -v go >/dev/null || { echo "kstatus: Go is not on PATH (needed to build kstatus)" >&2; exit 1; }
}

binary() {
    local version digest
    version="$(awk '$1 == "sigs.k8s.io/cli-utils" { print $2; exit } $1 == "require" && $2 == "sigs.k8s.io/cli-utils" { print $3; exit }' "$module/go.mod")"
    digest="$( (go env GOVERSION; cat "$module/go.mod" "$module/go.sum" "$module/main.go") | sha256sum | cut -c1-12)"
    echo "$cache_root/cli-utils-${version}_$digest/kstatus"
}

build() {
    require_go
    local target staging
    target="$(binary)"
    if [ -x "$target" ]; then
        echo "kstatus: cached in $target"
        return
    fi
    mkdir -p "$(dirname "$target")"
    staging="$target.$$"
    trap 'rm -f "$staging"' EXIT
    (cd "$module" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -trimpath "-ldflags=-s -w" -o "$staging" .)
    mv "$staging" "$target"  # whole or absent: a binary in place is a complete build
    trap - EXIT
    echo "kstatus: built $target"
}

case "${1:-}" in
    build) build ;;
    bin)
        require_go
        target="$(binary)"
        [ -x "$target" ] || exit 1
        echo "$target"
        ;;
    *)
        echo "usage: $0 build|bin" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# A real Kubernetes control plane built from Go modules (docs/real-kubernetes.md):
#   scripts/control-plane.sh build   build etcd, kube-apiserver, kube-controller-manager, kube-scheduler
#                                    and kwok into the cache (does nothing when they are there)
#   scripts/control-plane.sh bin     print the cache's bin directory (empty output, exit 1, if not built)
# The versions are pinned by the go.mod/go.sum of scripts/control-plane/*/; the cache directory is keyed by
# them and by the Go version, outside the clone, so a second run (or a second clone) builds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
modules="$here/control-plane"

build_flags=(-trimpath "-ldflags=-s -w")
cache_root="${MILVUS_RG_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/milvus-rg-operator/control-plane}"

cache_key() {
    local versions digest
    versions="k8s-$(module_version kubernetes k8s.io/kubernetes)_etcd-$(module_version etcd go.etcd.io/etcd/server/v3)_kwok-$(module_version kwok sigs.k8s.io/kwok)"
    digest="$( (echo "layout 2"; go env GOVERSION; echo "${build_flags[*]}"; cat "$modules"/*/go.mod "$modules"/*/go.sum) | sha256sum | cut -c1-12)"
    echo "${versions}_${digest}"
}

module_version() {  # module_version DIR MODULE -> the version DIR/go.mod requires
    awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$modules/$1/go.mod"
}

bin_dir() {
    echo "$cache_root/$(cache_key)/bin"
}

build_one() {  # build_one MODULE_DIR OUTPUT_NAME PACKAGE
    (cd "$modules/$1" && go build "${build_flags[@]}" -o "$staging/$2" "$3")
}

kwok_stages() {  # kwok_stages FILE: kwok's "fast" stages (nodes Ready at once; pods Ready, completed, deleted
                 # at once) from the pinned kwok module's own kustomize/stage files, as one --config file
    local source
    source="$(cd "$modules/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
    for stage in node/fast/node-initialize pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
        echo "---"
        cat "$source/$stage.yaml"
    done > "$1"
}

build() {
    command -v go >/dev/null || { echo "control-plane: Go is not installed (needed for the real Kubernetes tier)" >&2; exit 1; }
    local bin
    bin="$(bin_dir)"
    if [ -f "$bin/.complete" ]; then
        echo "control-plane: cached in $bin"
        return
    fi
    staging="$(dirname "$bin")/staging.$$"
    rm -rf "$staging"
    mkdir -p "$staging"
    trap 'rm -rf "$staging"' EXIT
    local start=$SECONDS
    export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
    echo "control-plane: building into $bin (cold: 8-35 minutes on 2 cores, by load)"
    build_one etcd etcd go.etcd.io/etcd/server/v3
    build_one kwok kwok sigs.k8s.io/kwok/cmd/kwok
    kwok_stages "$staging/kwok-stages.yaml"
    # One go build for the three Kubernetes commands shares the compilation of their common packages.
    (cd "$modules/kubernetes" && go build "${build_flags[@]}" -o "$staging/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler)
    touch "$staging/.complete"
    rm -rf "$bin"
    mv "$staging" "$bin"
    trap - EXIT
    echo "control-plane: built in $((SECONDS - start)) s: $(du -sh "$bin" | cut -f1) in $bin"
}

case "${1:-}" in
    build) build ;;
    bin)
        bin="$(bin_dir)"
        [ -f "$bin/.complete" ] || exit 1
        echo "$bin"
        ;;
    *)
        echo "usage: $0 build|bin" >&2
        exit 2
        ;;
esac

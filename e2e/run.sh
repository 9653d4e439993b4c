#!/usr/bin/env bash
# End to end on a real kind cluster with a real Milvus: the docs' scaling practice (examples/), applied
# step by step, each step waiting for the pool's Ready condition and checking Milvus's placement.
#
# Needs: docker, kind, kubectl, helm, and a Milvus (>= 2.4.1, cluster mode) in the kind cluster whose
# query nodes run as the StatefulSet named in examples/01-init/pool.yaml (`milvus-querynode`, see
# docs/operations.md "Adopting query nodes"); set MILVUS_URI to its proxy (default below).
# Not run in CI: our machines have no container engine (docs/sandbox.md says what CI runs instead).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-milvusrg-e2e}
MILVUS_URI=${MILVUS_URI:-http://milvus-proxy:19530}
IMAGE=milvus-rg-operator:e2e

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

kubectl apply -f crds/
helm upgrade --install milvus-rg-operator charts/milvus-rg-operator -n milvus-rg-operator --create-namespace \
    --set image.repository=milvus-rg-operator --set image.tag=e2e --set image.pullPolicy=Never --wait

for step in examples/*/; do
    echo "== $step"
    for file in "$step"*.yaml; do
        sed "s#uri: .*#uri: $MILVUS_URI#" "$file" | kubectl apply -f -
    done
    kubectl wait qnp/milvus --for=condition=Ready --timeout=600s
    kubectl get pods -l app.kubernetes.io/component=querynode -L milvusrg.io/resource-group,milvusrg.io/state
    kubectl get mrg
done

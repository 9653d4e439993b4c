#!/usr/bin/env bash
# End to end on a real kind cluster, everything installed by this script:
#   1. Milvus with its official Helm chart (zilliztech/milvus-helm, pinned below; cluster mode, values in
#      e2e/milvus-values.yaml): the query nodes are the chart's Deployment <release>-milvus-querynode;
#   2. the operator: its image built from the Dockerfile and loaded into kind, the CRDs, the chart;
#   3. the docs' scaling practice (examples/01-init, 02-scale-out, 03-scale-in) step by step, each step
#      waiting until the operator observed every object's latest spec and the pool is Ready. 01-init's pool
#      adopts the chart's query-node Deployment (spec.scaleTargetRef) and must restart or replace no query
#      node: their pod names, uids and restart counts are compared before and after.
# From 01-init on, a small pymilvus loop (e2e/workload.py) searches a collection loaded in the default
# group, and from 02-scale-out on a second one loaded in rg1, whose node the scale-in drains; the first
# failed search fails the run.
#
# Needs: docker, kind, kubectl, helm, and `make setup` (.venv with pymilvus). Not run in CI: our machines
# have no container engine (docs/sandbox.md says what CI runs instead). The kind cluster is left running
# (`kind delete cluster --name milvusrg-e2e` removes it).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-milvusrg-e2e}
NAMESPACE=milvus
RELEASE=e2e
MILVUS_CHART_REPO=https://zilliztech.github.io/milvus-helm/
MILVUS_CHART_VERSION=5.0.19  # Milvus v2.6.15
QUERY_NODES=$RELEASE-milvus-querynode  # the chart's query-node Deployment
QUERY_NODE_PODS="app.kubernetes.io/instance=$RELEASE,component=querynode"
MILVUS_SERVICE=$RELEASE-milvus  # the proxy: gRPC 19530, management API 9091
IMAGE_REPOSITORY=milvus-rg-operator
IMAGE_TAG=e2e
PYTHON=.venv/bin/python
LOCAL_PORT=${LOCAL_PORT:-19530}
LOCAL_URI=http://127.0.0.1:$LOCAL_PORT

work=$(mktemp -d)
searches=()  # pids of the search loops
port_forward=""
cleanup() {
    touch "$work/stop"
    for pid in "${searches[@]}" $port_forward; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || { echo "e2e: $tool is not on PATH" >&2; exit 1; }
done
[ -x "$PYTHON" ] || { echo "e2e: $PYTHON is missing: run make setup" >&2; exit 1; }

kube() {
    kubectl --namespace "$NAMESPACE" "$@"
}

query_node_pods() {  # "name uid restarts" per query-node pod, sorted
    kube get pods -l "$QUERY_NODE_PODS" \
        -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[0].restartCount}{"\n"}{end}' |
        sort
}

wait_observed_and_ready() {  # KIND/NAME: the operator acted on its latest spec, then Ready
    local generation
    generation=$(kube get "$1" -o jsonpath='{.metadata.generation}')
    kube wait "$1" --for=jsonpath='{.status.observedGeneration}'="$generation" --timeout=300s
    kube wait "$1" --for=condition=Ready --timeout=900s
}

wait_settled() {  # every ResourceGroup, then the pool
    local group
    for group in $(kube get resourcegroups -o name); do
        wait_observed_and_ready "$group"
    done
    wait_observed_and_ready querynodepool/milvus
}

searches_pass() {  # fail the run as soon as a search loop has ended (it ends only on a failed search)
    local pid
    for pid in "${searches[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" || true
            echo "e2e: a search failed (above)" >&2
            exit 1
        fi
    done
}

start_searching() {  # COLLECTION GROUP: load the collection into the group, then search it in the background
    "$PYTHON" e2e/workload.py load --uri "$LOCAL_URI" --collection "$1" --resource-group "$2"
    "$PYTHON" e2e/workload.py search --uri "$LOCAL_URI" --collection "$1" --stop-file "$work/stop" &
    searches+=("$!")
}

show() {
    kube get pods -l "$QUERY_NODE_PODS" -L milvusrg.io/resource-group,milvusrg.io/state,milvusrg.io/node-id
    kube get querynodepools,resourcegroups
}

echo "== kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
kubectl config use-context "kind-$CLUSTER"

echo "== Milvus: chart $MILVUS_CHART_VERSION, release $RELEASE in namespace $NAMESPACE"
helm upgrade --install "$RELEASE" milvus --repo "$MILVUS_CHART_REPO" --version "$MILVUS_CHART_VERSION" \
    --namespace "$NAMESPACE" --create-namespace --values e2e/milvus-values.yaml --wait --timeout 20m
kube rollout status "deployment/$QUERY_NODES" --timeout=600s

echo "== operator: image from the Dockerfile, CRDs, chart"
docker build -t "$IMAGE_REPOSITORY:$IMAGE_TAG" .
kind load docker-image "$IMAGE_REPOSITORY:$IMAGE_TAG" --name "$CLUSTER"
kubectl apply --server-side -f crds/
helm upgrade --install milvus-rg-operator charts/milvus-rg-operator --namespace milvus-rg-operator \
    --create-namespace --set image.repository="$IMAGE_REPOSITORY" --set image.tag="$IMAGE_TAG" \
    --set image.pullPolicy=Never --wait --timeout 5m

echo "== examples/01-init: the pool adopts $QUERY_NODES"
query_node_pods > "$work/before"
kube apply -f - <<EOF
apiVersion: milvusrg.io/v1alpha1
kind: QueryNodePool
metadata:
  name: milvus
spec:
  milvus:
    uri: http://$MILVUS_SERVICE.$NAMESPACE.svc:19530
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: $QUERY_NODES
  pendingGroup: __pending_nodes
  spareNodes: 0
  minNodes: 1
  maxNodes: 10
EOF
for file in examples/01-init/*.yaml; do
    [ "$(basename "$file")" = pool.yaml ] || kube apply -f "$file"  # the pool above replaces the sandbox's
done
wait_settled
show
query_node_pods > "$work/after"
if ! diff "$work/before" "$work/after"; then
    echo "e2e: adopting $QUERY_NODES restarted or replaced query nodes (name uid restarts, before < > after)" >&2
    exit 1
fi
echo "adopted with no restart: $(wc -l < "$work/after") query node(s) kept their pods"

kube port-forward "service/$MILVUS_SERVICE" "$LOCAL_PORT:19530" > "$work/port-forward.log" 2>&1 &
port_forward=$!
start_searching e2e_default __default_resource_group

echo "== examples/02-scale-out"
kube apply -f examples/02-scale-out/
wait_settled
show
searches_pass
start_searching e2e_rg1 rg1

echo "== examples/03-scale-in"
kube apply -f examples/03-scale-in/
wait_settled
show
searches_pass

touch "$work/stop"
failed=0
for pid in "${searches[@]}"; do
    wait "$pid" || failed=1
done
searches=()
if [ "$failed" -ne 0 ]; then
    echo "e2e: a search failed (above)" >&2
    exit 1
fi
replicas=$(kube get "deployment/$QUERY_NODES" -o jsonpath='{.spec.replicas}')
echo "e2e: passed; $QUERY_NODES has $replicas replicas, every search answered"

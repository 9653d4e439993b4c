"""The shapes users run Milvus query nodes in, as the manifests that make them (docs/sandbox.md):

- `statefulset`: a StatefulSet `milvus-querynode` (what the operator adopts today), `sandbox.query_node_statefulset`;
- `deployment`: the Milvus Helm chart's Deployment `<release>-milvus-querynode`, `helm_query_node_deployment`;
- `milvus-operator`: a `Milvus` CR, `milvus_cr`; milvus-operator's stand-in keeps `<cr>-milvus-querynode-0/-1`;
- `per-group`: the chart's `replicaResourceGroups`, a Deployment `<release>-milvus-querynode-<rg>` per group,
  `per_group_deployments`.

The chart's Deployment follows zilliztech/milvus-helm charts/milvus (chart 5.0.19, Milvus 2.6.15, commit
9832476): `templates/querynode-deployment.yaml` (`milvus.querynode.deployment`, one per group since PR #283)
and `templates/_helpers.tpl` (`milvus.fullname`, `milvus.labels`, `milvus.matchLabels`), with the chart's
default values. Left out: the config ConfigMap and its volume mounts, the `checksum/config` annotation, the
tools volume, and user-defined labels, annotations and volumes (none by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from milvus_rg_sandbox.wiring import QUERY_NODE_PORT

Obj = dict[str, Any]
Shape = Literal["statefulset", "deployment", "milvus-operator", "per-group"]
SHAPES: tuple[Shape, ...] = ("statefulset", "deployment", "milvus-operator", "per-group")
DEFAULT_RELEASE = "my-release"  # the Milvus docs' Helm release (and, for milvus-operator, CR) name

CHART_NAME = "milvus"
CHART = "milvus-5.0.19"  # Chart.yaml name-version (`milvus.chart`)
APP_VERSION = "2.6.15"
CHART_IMAGE = "milvusdb/milvus:v2.6.15"  # values.yaml image.all
METRICS_PORT = 9091
RESOURCE_GROUP_LABEL = "milvus.io/resource-group"
RESOURCE_GROUP_ENV = "MILVUS_SERVER_LABEL_RESOURCE_GROUP"
# values.yaml livenessProbe / readinessProbe (enabled by default)
LIVENESS_PROBE: Obj = {"tcpSocket": {"port": "metrics"}, "initialDelaySeconds": 90, "periodSeconds": 30,
                       "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 5}
READINESS_PROBE: Obj = {"httpGet": {"path": "/healthz", "port": "metrics"}, "initialDelaySeconds": 90,
                        "periodSeconds": 10, "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 5}


def helm_fullname(release: str) -> str:
    """_helpers.tpl `milvus.fullname`: the release name alone when it contains the chart name."""
    name = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return name[:63].rstrip("-")


def helm_query_node_deployment(release: str = DEFAULT_RELEASE, replicas: int = 1, namespace: str = "default",
                               env: Mapping[str, str] | None = None, resource_group: str | None = None,
                               image: str = CHART_IMAGE) -> Obj:
    """querynode-deployment.yaml `milvus.querynode.deployment`: `replicas` < 0 leaves the field out (for an
    HPA, the chart's `queryNode.replicas: -1`); `resource_group` makes the per-group Deployment of
    `replicaResourceGroups` (its name suffix, the `milvus.io/resource-group` label and the
    `MILVUS_SERVER_LABEL_RESOURCE_GROUP` env); `env` is `queryNode.extraEnv`."""
    match_labels = {"app.kubernetes.io/name": CHART_NAME, "app.kubernetes.io/instance": release,
                    "component": "querynode"}
    if resource_group:
        match_labels[RESOURCE_GROUP_LABEL] = resource_group
    labels = {"helm.sh/chart": CHART, **match_labels, "app.kubernetes.io/version": APP_VERSION,
              "app.kubernetes.io/managed-by": "Helm"}
    container_env = [{"name": RESOURCE_GROUP_ENV, "value": resource_group}] if resource_group else []
    container_env += [{"name": key, "value": value} for key, value in (env or {}).items()]
    container = {
        "name": "querynode",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["milvus", "run", "querynode"],
        "env": container_env,
        "ports": [{"name": "querynode", "containerPort": QUERY_NODE_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "livenessProbe": dict(LIVENESS_PROBE),
        "readinessProbe": dict(READINESS_PROBE),
        "resources": {},
    }
    name = f"{helm_fullname(release)}-querynode" + (f"-{resource_group}" if resource_group else "")
    spec: Obj = {
        "selector": {"matchLabels": dict(match_labels)},
        "template": {"metadata": {"labels": dict(match_labels)},
                     "spec": {"serviceAccountName": "default", "containers": [container]}},
    }
    if replicas >= 0:
        spec = {"replicas": replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def per_group_deployments(release: str = DEFAULT_RELEASE, groups: tuple[str, ...] = ("rg1", "rg2"),
                          replicas: int = 1, namespace: str = "default",
                          env: Mapping[str, str] | None = None) -> list[Obj]:
    """The chart with `replicaResourceGroups: groups`: one query-node Deployment per group, all with
    `queryNode.replicas` (open PR #306 would give each group its own)."""
    return [helm_query_node_deployment(release, replicas, namespace, env, resource_group=group) for group in groups]


def milvus_cr(name: str = DEFAULT_RELEASE, replicas: int = 1, namespace: str = "default",
              env: Mapping[str, str] | None = None, image: str = CHART_IMAGE) -> Obj:
    """A cluster-mode `Milvus` CR whose query nodes milvus-operator (here its stand-in) runs as two
    Deployments; `replicas` -1 hands them to an HPA."""
    query_node: Obj = {"replicas": replicas}
    if env:
        query_node["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return {"apiVersion": "milvus.io/v1beta1", "kind": "Milvus",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"mode": "cluster", "components": {"image": image, "queryNode": query_node}}}

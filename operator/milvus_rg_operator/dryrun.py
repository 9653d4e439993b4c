"""`milvus-rg-operator plan`: what the operator would do for these manifests, without doing it.

Like `kubectl diff`: the operator's own pass (the same observation and `core.plan.plan_pass`) over the
manifests, printed instead of executed. The pool and its groups come from the manifests; the rest of the
world comes from where it is asked for:
- `--milvus URI`: that Milvus, read-only (its version, groups, nodes); without it, a new Milvus holding only
  its default group;
- `--cluster`: the current kube context, read-only (the StatefulSet, its pods, the pool's Secret); without
  it, a StatefulSet of `--replicas` pods (0 if not given) and no pods.
An invalid group is reported and planned around, as the operator does; the exit code is 1 when anything is
refused (a group, the pool, or the Milvus version), 0 otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from milvus_rg_operator.adapters.kube import KubeGateway, KubernetesClientGateway
from milvus_rg_operator.adapters.milvus import Distribution, MilvusError, MilvusGateway
from milvus_rg_operator.connection import MilvusEndpoint
from milvus_rg_operator.constants import POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core import actions
from milvus_rg_operator.core.plan import PassInputs, PassPlan, plan_pass
from milvus_rg_operator.core.types import (
    DEFAULT_GROUP,
    DEFAULT_GROUP_LIMIT,
    MILVUS,
    GroupConfig,
    MilvusGroup,
    MilvusState,
    WorkloadRef,
)
from milvus_rg_operator.manifests import load_manifests
from milvus_rg_operator.reconcile import PoolReconciler, pymilvus_factory

NAMESPACE = "default"
ASSUMED_VERSION = "v2.5.16"  # what a new Milvus is taken to be without --milvus: one the operator supports


def config_json(config: GroupConfig) -> str:
    return json.dumps({
        "requests": {"nodeNum": config.requests}, "limits": {"nodeNum": config.limits},
        "transfer_from": list(config.transfer_from), "transfer_to": list(config.transfer_to),
        "node_labels": dict(config.node_labels),
    })


class NeverWrites:
    """The writes of a gateway, for the dry run's stand-ins: a dry run plans writes and never makes them."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AssertionError(f"a dry run never writes ({name})")


class NewMilvus(NeverWrites):
    """A Milvus that holds only its default group (requests 0, limits 1,000,000) and no node: what `plan`
    assumes without --milvus. It serves reads only."""

    async def server_version(self) -> str:
        return ASSUMED_VERSION

    async def observe(self, *, with_node_states: bool = True) -> MilvusState:
        default = MilvusGroup(DEFAULT_GROUP, GroupConfig(0, DEFAULT_GROUP_LIMIT), ())
        return MilvusState(groups={DEFAULT_GROUP: default}, nodes={}, management_available=False)

    async def distribution(self, node_id: int) -> Distribution:
        raise AssertionError("a Milvus without nodes has no distribution to read")

    async def close(self) -> None:
        return None


class ManifestKube(NeverWrites):
    """The Kubernetes a dry run sees: the pool and its groups from the manifests (new objects: generation 1),
    everything else from `cluster` (read-only) or made up from the command line. Writes are never made."""

    def __init__(self, objects: Sequence[dict[str, Any]], cluster: KubeGateway | None, replicas: int | None,
                 token: str | None) -> None:
        self.pools = {o["metadata"]["name"]: _as_new(o) for o in objects if o.get("kind") == POOL_KIND}
        self.groups = [_as_new(o) for o in objects if o.get("kind") == RESOURCE_GROUP_KIND]
        self.cluster, self.replicas, self.token = cluster, replicas, token

    async def get_pool(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pools.get(name)

    async def list_groups(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.groups)

    async def get_workload(self, namespace: str, workload: WorkloadRef) -> dict[str, Any] | None:
        if self.cluster is not None:
            return await self.cluster.get_workload(namespace, workload)
        if self.replicas is None and any(p.get("spec", {}).get("template") for p in self.pools.values()):
            return None  # the operator would create it from spec.template
        replicas = self.replicas or 0
        spec = ({"components": {"queryNode": {"replicas": replicas}}} if workload.kind == MILVUS
                else {"replicas": replicas, "selector": {"matchLabels": {}}})
        return {"metadata": {"name": workload.name}, "spec": spec,
                "status": {"replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas}}

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        return await self.cluster.list_pods(namespace, selector) if self.cluster is not None else []

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        if self.token is not None:  # --token stands for the key the pool's secretRef names
            refs = [p["spec"]["milvus"].get("secretRef") or {} for p in self.pools.values()]
            return {ref.get("key", "token"): self.token for ref in refs if ref.get("name") == name}
        return await self.cluster.read_secret(namespace, name) if self.cluster is not None else None


def _as_new(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server would store it when created: namespace and generation 1, no status."""
    meta = {"namespace": NAMESPACE, "generation": 1, **obj.get("metadata", {})}
    return {**obj, "metadata": meta, "status": obj.get("status") or {}}


async def dry_run(objects: Sequence[dict[str, Any]], *, milvus_uri: str | None, token: str | None,
                  replicas: int | None, cluster: KubeGateway | None,
                  clock: Callable[[], float] = time.time) -> tuple[PassInputs, PassPlan]:
    """What the operator's first pass over `objects` (one QueryNodePool and its ResourceGroups) observes and
    plans."""
    pools = [o for o in objects if o.get("kind") == POOL_KIND]
    if len(pools) != 1:
        raise ValueError(f"expected exactly one QueryNodePool in the manifests, found {len(pools)}")
    kube = ManifestKube(objects, cluster, replicas, token)

    def gateway(endpoint: MilvusEndpoint) -> MilvusGateway:
        if milvus_uri is None:
            return cast(MilvusGateway, NewMilvus())
        return pymilvus_factory(MilvusEndpoint(milvus_uri, endpoint.token, endpoint.management_uri, endpoint.timeout,
                                               endpoint.tls))

    reconciler = PoolReconciler(cast(KubeGateway, kube), gateway, clock=clock)
    try:
        inputs = await reconciler.observe(NAMESPACE, kube.pools[pools[0]["metadata"]["name"]])
        return inputs, plan_pass(inputs)
    finally:
        await reconciler.close()


def render(plan: PassPlan, milvus_uri: str | None) -> list[str]:
    """The plan as `kubectl diff`-like lines: Milvus first (+ create, ~ the one update batch, - drop), then
    Kubernetes writes, each with its reason."""
    lines = [f"# Milvus {'at ' + milvus_uri if milvus_uri else '(assumed new: only its default group)'}"]
    milvus_writes = [a for a in plan.actions if isinstance(a, actions.MILVUS_ACTIONS)]
    for action in milvus_writes:
        match action:
            case actions.CreateGroup(name=name, config=config):
                lines.append(f"+ create_resource_group {name} {config_json(config)}")
            case actions.UpdateGroups(configs=configs, changes=changes):
                lines.append(f"~ update_resource_groups (one atomic batch): {changes}")
                lines += [f"    {name}: {config_json(config)}" for name, config in sorted(configs.items())]
            case actions.DropGroup(name=name):
                lines.append(f"- drop_resource_group {name}")
            case _:
                lines.append(f"* {action.summary}  # {action.reason}")
    if not any(isinstance(a, actions.CreateGroup | actions.UpdateGroups | actions.DropGroup) for a in milvus_writes):
        lines.append("  (Milvus already matches)")
    lines += [f"* {a.summary}  # {a.reason}" for a in plan.actions
              if not isinstance(a, (*actions.MILVUS_ACTIONS, actions.WriteStatus, actions.LabelPod))]
    labelled = sum(isinstance(a, actions.LabelPod) for a in plan.actions)
    if labelled:
        lines.append(f"* label {labelled} pod(s) with where Milvus placed them")
    statuses = [a for a in plan.actions if isinstance(a, actions.WriteStatus)]
    lines += [f"* {a.summary}" for a in statuses]
    if plan.desired_replicas is not None:
        lines.append(f"query nodes: replicas {plan.desired_replicas}")
    return lines


async def run_plan(files: list[Path], milvus_uri: str | None, token: str | None, replicas: int | None,
                   cluster: bool) -> int:
    # Later manifests of the same object replace earlier ones, as applying them in order would.
    latest = {(o.get("kind"), o.get("metadata", {}).get("name")): o for o in load_manifests(files)}
    kube = KubernetesClientGateway() if cluster else None
    try:
        inputs, plan = await dry_run(list(latest.values()), milvus_uri=milvus_uri, token=token, replicas=replicas,
                                     cluster=kube)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MilvusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in plan.problems:
        print(f"invalid: {problem.kind} {problem.name}: {problem.field}: {problem.message}", file=sys.stderr)
    support = inputs.support
    if support is not None and not support.supported:  # a plan that cannot be applied is never printed
        print(f"error: {support.message}; the operator will not change this Milvus", file=sys.stderr)
        return 1
    print("\n".join(render(plan, milvus_uri)))
    if support is not None and support.message:
        print(f"note: {support.message}: the operator will not scale in", file=sys.stderr)
    return 1 if plan.problems else 0

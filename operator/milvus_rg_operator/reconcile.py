"""One reconcile pass for one pool: observe -> plan (pure core) -> act. The only place doing I/O in sequence.

Order matters for safety:
- Milvus configs are written before replicas change (scale out: configs, then pods; scale in: configs,
  then only pods Milvus no longer uses).
- A drain is recorded in the pool's status *before* the node is suspended, so an operator killed in
  between finds the record on restart and either finishes or undoes it (never leaves a node suspended).
- Nothing is written when the plan is empty: a steady state costs zero writes to Kubernetes and Milvus.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from milvus_rg_operator.adapters.kube import GROUP_PLURAL, POOL_PLURAL, KubeError, KubeGateway
from milvus_rg_operator.adapters.milvus import MilvusAuthError, MilvusError, MilvusGateway, PymilvusGateway
from milvus_rg_operator.api.models import ANNOTATION_PAUSED, FINALIZER
from milvus_rg_operator.core import conditions as cond
from milvus_rg_operator.core import configs, labels, scaling, validation
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import DeclaredGroup, DeclaredPool, MilvusNode, MilvusState, Problem
from milvus_rg_operator.scheduler import PassOutcome
from milvus_rg_operator.translate import (
    SpecError,
    declared_group,
    declared_pool,
    drain_records,
    drain_status,
    owned_by,
    pod_state,
    pool_spec,
    statefulset_state,
)

logger = logging.getLogger(__name__)

PROGRESS_REQUEUE = 1.0  # while something is in flight, look again soon
MAX_BACKOFF = 60.0


@dataclass
class PassReport:
    """What one pass did: tests count writes with it, the scheduler reads the requeue delay."""

    writes: list[str] = field(default_factory=list)
    converged: bool = False
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class MilvusConnection:
    uri: str
    token: str
    management_uri: str | None
    timeout: float


MilvusFactory = Callable[[MilvusConnection], MilvusGateway]


def pymilvus_factory(conn: MilvusConnection) -> MilvusGateway:
    return PymilvusGateway(conn.uri, token=conn.token, management_uri=conn.management_uri, timeout=conn.timeout)


class PoolReconciler:
    def __init__(self, kube: KubeGateway, milvus_factory: MilvusFactory = pymilvus_factory,
                 clock: Callable[[], float] = time.time) -> None:
        self._kube = kube
        self._milvus_factory = milvus_factory
        self._clock = clock
        self._gateways: dict[MilvusConnection, MilvusGateway] = {}
        self._statefulsets: dict[tuple[str, str], str] = {}  # (namespace, StatefulSet) -> pool
        self._failures: dict[tuple[str, str], int] = {}
        self.last_report: dict[tuple[str, str], PassReport] = {}
        self.passes: collections.Counter[tuple[str, str]] = collections.Counter()

    def pool_of_statefulset(self, namespace: str, statefulset: str) -> str | None:
        return self._statefulsets.get((namespace, statefulset))

    async def close(self) -> None:
        for gateway in self._gateways.values():
            await gateway.close()
        self._gateways.clear()

    async def reconcile(self, namespace: str, name: str) -> PassOutcome:
        key = (namespace, name)
        report = PassReport()
        self.last_report[key] = report
        try:
            outcome = await _Pass(self, namespace, name, report).run()
        except (KubeError, MilvusError) as exc:
            # Transient trouble: back off exponentially; the error is already in the status when it
            # could be written. Nothing half-done is left: every step is re-derived from observation.
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(PROGRESS_REQUEUE * 2 ** failures, MAX_BACKOFF)
            logger.warning("pool %s/%s: %s (retry in %.0fs)", namespace, name, exc, delay)
            return PassOutcome(requeue_after=delay)
        finally:
            self.passes[key] += 1
        self._failures.pop(key, None)
        return outcome

    def milvus_for(self, conn: MilvusConnection) -> MilvusGateway:
        gateway = self._gateways.get(conn)
        if gateway is None:
            gateway = self._gateways[conn] = self._milvus_factory(conn)
        return gateway


class _Pass:
    """The state of one pass; `run` is the sequence, the helpers are its steps."""

    def __init__(self, owner: PoolReconciler, namespace: str, name: str, report: PassReport) -> None:
        self.owner = owner
        self.kube = owner._kube
        self.namespace = namespace
        self.name = name
        self.report = report
        self.now = owner._clock()

    async def run(self) -> PassOutcome:
        pool_obj = await self.kube.get_pool(self.namespace, self.name)
        if pool_obj is None:
            await self.report_missing_pool()
            return PassOutcome(requeue_after=0, pool_gone=True)
        self.pool_obj = pool_obj
        group_objs = [g for g in await self.kube.list_groups(self.namespace)
                      if g.get("spec", {}).get("pool") == self.name]
        self.group_objs = group_objs
        resync = float(pool_obj.get("spec", {}).get("resyncSeconds", 30))

        if pool_obj["metadata"].get("annotations", {}).get(ANNOTATION_PAUSED) == "true":
            await self.write_pool_status(cond.paused_pool_conditions(self.generation(pool_obj)), {})
            return PassOutcome(requeue_after=resync)

        try:
            pool = declared_pool(pool_obj)
            self.owner._statefulsets[(self.namespace, pool.stateful_set_name)] = self.name
            groups, spec_problems = self.declared_groups()
        except SpecError as exc:
            await self.fail_validation([Problem("QueryNodePool", self.name, exc.field, str(exc))])
            return PassOutcome(requeue_after=resync)

        conn, secret_problems = await self.milvus_connection()
        if secret_problems:
            await self.fail_validation(secret_problems)
            return PassOutcome(requeue_after=resync)
        assert conn is not None
        milvus = self.owner.milvus_for(conn)
        try:
            observed = await milvus.observe()
        except MilvusAuthError as exc:
            # Wrong input, not a transient failure: refused like a spec problem, naming the field.
            ref = pool_spec(pool_obj)["milvus"].get("secretRef")
            where = (f"the credentials in Secret {self.namespace}/{ref['name']} (key {ref.get('key', 'token')!r})"
                     if ref else "no credentials (Milvus requires authentication: set spec.milvus.secretRef)")
            await self.fail_validation([Problem("QueryNodePool", self.name, "spec.milvus.secretRef",
                                                f"Milvus refused {where}: {exc.message}")])
            return PassOutcome(requeue_after=resync)
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise

        problems = spec_problems + validation.validate(pool, self.name, groups, observed.groups.keys())
        if problems:
            await self.fail_validation(problems)
            return PassOutcome(requeue_after=resync)

        await self.ensure_finalizers()
        drains = drain_records(pool_obj)
        desired = configs.desired_configs(pool, groups, scaling.surge_of(drains))
        deletable = {resolve_group_name(g) for g in groups if g.deleting}
        milvus_plan = configs.plan_milvus(desired, observed, deletable)
        try:
            await self.apply_milvus_plan(milvus, milvus_plan)
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise
        await self.release_dropped_groups(groups, milvus_plan.released)

        sts_obj = await self.kube.get_statefulset(self.namespace, pool.stateful_set_name)
        if sts_obj is None:
            sts_obj = await self.create_statefulset(pool)
            if sts_obj is None:
                return PassOutcome(requeue_after=resync)
        selector = sts_obj["spec"]["selector"].get("matchLabels", {})
        pod_objs = [p for p in await self.kube.list_pods(self.namespace, selector)
                    if owned_by(p, pool.stateful_set_name)]
        pods = [pod_state(p) for p in pod_objs]
        sts = statefulset_state(sts_obj)
        observed = await self.with_distribution(milvus, observed, drains, pods, pool, groups)

        desired_replicas = scaling.desired_replicas(pool, groups)
        scale = scaling.plan_scale(pool, groups, desired_replicas, sts, pods, observed, drains,
                                   milvus_plan_empty=milvus_plan.empty, now=self.now)
        if tuple(scale.drains) != tuple(drains):
            # Record first, act second: a restart must find every drain it may have started.
            await self.write_pool_scale_down(scale)
        try:
            for node_id in scale.resume:
                await milvus.resume_node(node_id)
                self.report.writes.append(f"milvus resume node {node_id}")
            for node_id in scale.suspend:
                await milvus.suspend_node(node_id)
                self.report.writes.append(f"milvus suspend node {node_id}")
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise
        if scale.replicas is not None and scale.replicas != sts.replicas:
            await self.kube.scale_statefulset(self.namespace, pool.stateful_set_name, scale.replicas)
            self.report.writes.append(f"scale {pool.stateful_set_name} {sts.replicas}->{scale.replicas}")

        draining = {d.pod for d in scale.drains}
        for pod_name, patch in labels.plan_pod_labels(pods, observed, pool.pending_group, draining).items():
            await self.kube.patch_pod_metadata(self.namespace, pod_name, patch.labels, patch.annotations)
            self.report.writes.append(f"label pod {pod_name}")

        converged = (milvus_plan.empty and scale.replicas in (None, sts.replicas) and not scale.drains
                     and not scale.victims and sts.ready_replicas == sts.replicas == desired_replicas
                     and cond.groups_satisfied(groups, observed))
        pool_status = cond.pool_status(
            pool, groups, desired_replicas, sts, pods, observed, scale, milvus_plan,
            generation=self.generation(pool_obj), previous=pool_obj.get("status", {}), now=self.now,
            scale_down=drain_status(scale.drains), converged=converged,
        )
        await self.write_status(POOL_PLURAL, pool_obj, pool_status)
        for group_obj, group in zip(self.group_objs, groups, strict=True):
            group_status = cond.group_status(group, observed, pods, milvus_plan, generation=self.generation(group_obj),
                                             previous=group_obj.get("status", {}), now=self.now)
            await self.write_status(GROUP_PLURAL, group_obj, group_status)
        for event_type, reason, message in scale.events:
            await self.event(pool_obj, event_type, reason, message)
        self.report.converged = converged
        return PassOutcome(requeue_after=resync if converged else PROGRESS_REQUEUE)

    # --- observation ------------------------------------------------------------------------------

    @staticmethod
    def generation(obj: Mapping[str, Any]) -> int:
        return int(obj["metadata"].get("generation") or 0)

    def declared_groups(self) -> tuple[list[DeclaredGroup], list[Problem]]:
        groups: list[DeclaredGroup] = []
        problems: list[Problem] = []
        kept = []
        for obj in self.group_objs:
            try:
                groups.append(declared_group(obj))
                kept.append(obj)
            except SpecError as exc:
                problems.append(Problem("ResourceGroup", exc.name, exc.field, exc.reason))
        self.group_objs = kept
        return groups, problems

    async def milvus_connection(self) -> tuple[MilvusConnection | None, list[Problem]]:
        spec = pool_spec(self.pool_obj)
        milvus = spec["milvus"]
        token = ""
        ref = milvus.get("secretRef")
        if ref:
            secret = await self.kube.read_secret(self.namespace, ref["name"])
            if secret is None:
                return None, [Problem("QueryNodePool", self.name, "spec.milvus.secretRef.name",
                                      f"Secret {self.namespace}/{ref['name']} not found")]
            key = ref.get("key", "token")
            if key not in secret:
                return None, [Problem("QueryNodePool", self.name, "spec.milvus.secretRef.key",
                                      f"Secret {ref['name']} has no key {key!r}")]
            token = secret[key].strip()
        return MilvusConnection(milvus["uri"], token, milvus.get("managementUri"),
                                float(milvus.get("timeoutSeconds", 10))), []

    async def with_distribution(self, milvus: MilvusGateway, observed: MilvusState,
                                drains: Sequence[Any], pods: Sequence[Any], pool: DeclaredPool,
                                groups: Sequence[DeclaredGroup]) -> MilvusState:
        """Fetch segment/channel counts only for nodes that may be leaving: drained or unassigned victims."""
        if not observed.management_available:
            return observed
        in_group = {n for g in observed.groups.values() for n in g.node_ids}
        desired = scaling.desired_replicas(pool, groups)
        victim_pods = {p.name for p in pods if p.ordinal >= desired}
        wanted = {d.node_id for d in drains} | {
            n.node_id for n in observed.nodes.values() if n.hostname in victim_pods and n.node_id not in in_group}
        nodes = dict(observed.nodes)
        for node_id in sorted(wanted & nodes.keys()):
            dist = await milvus.distribution(node_id)
            node = nodes[node_id]
            nodes[node_id] = MilvusNode(node.node_id, node.hostname, node.address, node.state,
                                        segments=dist.segments, channels=dist.channels)
        return MilvusState(groups=observed.groups, nodes=nodes,
                           management_available=observed.management_available)

    # --- actions ----------------------------------------------------------------------------------

    async def apply_milvus_plan(self, milvus: MilvusGateway, plan: configs.MilvusPlan) -> None:
        for group_name, config in plan.create:
            await milvus.create_group(group_name, config)
            self.report.writes.append(f"milvus create {group_name}")
        if plan.update:
            await milvus.update_groups(plan.update)
            self.report.writes.append(f"milvus update {sorted(plan.update)}")
        for group_name in plan.drop:
            await milvus.drop_group(group_name)
            self.report.writes.append(f"milvus drop {group_name}")

    async def ensure_finalizers(self) -> None:
        for obj in self.group_objs:
            meta = obj["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            if not meta.get("deletionTimestamp") and FINALIZER not in finalizers:
                await self.kube.set_finalizers(GROUP_PLURAL, obj, [*finalizers, FINALIZER])
                self.report.writes.append(f"finalizer on {meta['name']}")

    async def release_dropped_groups(self, groups: Sequence[DeclaredGroup], released: Sequence[str]) -> None:
        """A deleting group whose Milvus group is gone (dropped now or earlier) may disappear."""
        for obj, group in zip(self.group_objs, groups, strict=True):
            finalizers = list(obj["metadata"].get("finalizers") or [])
            if group.deleting and resolve_group_name(group) in released and FINALIZER in finalizers:
                await self.kube.set_finalizers(GROUP_PLURAL, obj, [f for f in finalizers if f != FINALIZER])
                self.report.writes.append(f"release {obj['metadata']['name']}")

    async def create_statefulset(self, pool: DeclaredPool) -> dict[str, Any] | None:
        template = pool_spec(self.pool_obj).get("template")
        if not template:
            await self.fail_validation([Problem(
                "QueryNodePool", self.name, "spec.statefulSetName",
                f"StatefulSet {self.namespace}/{pool.stateful_set_name} not found and spec.template is not set")])
            return None
        labels_ = dict(template.get("metadata", {}).get("labels") or {}) or {
            "app.kubernetes.io/name": "milvus", "app.kubernetes.io/component": "querynode"}
        meta = self.pool_obj["metadata"]
        body = {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {
                "name": pool.stateful_set_name, "namespace": self.namespace, "labels": labels_,
                "ownerReferences": [{"apiVersion": self.pool_obj["apiVersion"], "kind": "QueryNodePool",
                                     "name": meta["name"], "uid": meta["uid"], "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": {
                "replicas": scaling.desired_replicas(pool, self.declared_groups()[0]),
                "serviceName": pool.stateful_set_name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels_},
                "template": {"metadata": {**template.get("metadata", {}), "labels": labels_},
                             "spec": template.get("spec", {})},
            },
        }
        created = await self.kube.create_statefulset(self.namespace, body)
        self.report.writes.append(f"create statefulset {pool.stateful_set_name}")
        return created

    async def write_status(self, plural: str, obj: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        current = obj.get("status") or {}
        changed = {k: v for k, v in status.items() if current.get(k) != v}
        if changed:
            await self.kube.patch_status(plural, self.namespace, obj["metadata"]["name"], changed)
            self.report.writes.append(f"status {plural}/{obj['metadata']['name']} {sorted(changed)}")

    async def write_pool_status(self, conditions: Sequence[cond.Condition], extra: Mapping[str, Any]) -> None:
        previous = self.pool_obj.get("status", {})
        status = {
            "observedGeneration": self.generation(self.pool_obj),
            "conditions": cond.merge_conditions(previous.get("conditions", []), conditions,
                                                cond.iso(self.now)),
            **extra,
        }
        await self.write_status(POOL_PLURAL, self.pool_obj, status)

    async def write_pool_scale_down(self, scale: scaling.ScalePlan) -> None:
        scale_down = {"victims": list(scale.victims), "draining": drain_status(scale.drains),
                      "suspendedNodes": sorted({d.node_id for d in scale.drains})}
        await self.write_status(POOL_PLURAL, self.pool_obj, {"scaleDown": scale_down})
        self.pool_obj = {**self.pool_obj,
                         "status": {**self.pool_obj.get("status", {}), "scaleDown": scale_down}}

    async def event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        try:
            await self.kube.post_event(obj, event_type, reason, message)
            self.report.writes.append(f"event {reason}")
        except KubeError as exc:  # an event is best effort: never fail a pass for it
            logger.info("could not post event %s: %s", reason, exc)

    async def fail_validation(self, problems: Sequence[Problem]) -> None:
        """Degraded + a Warning event naming each field; nothing is applied to Milvus or the cluster."""
        self.report.problems.extend(problems)
        previous = self.pool_obj.get("status", {})
        conditions = cond.validation_failed_conditions(problems, self.generation(self.pool_obj))
        old_degraded = cond.find(previous.get("conditions", []), "Degraded")
        await self.write_pool_status(conditions, {})
        message = "; ".join(f"{p.kind} {p.name}: {p.field}: {p.message}" for p in problems)
        if not old_degraded or old_degraded.get("message") != cond.find_new(conditions, "Degraded").message:
            await self.event(self.pool_obj, "Warning", "ValidationFailed", message)
        for obj in self.group_objs:
            await self.fail_group(obj, problems)

    async def report_missing_pool(self) -> None:
        """Groups naming this pool while it does not exist: Degraded + a Warning event naming spec.pool."""
        orphans = [g for g in await self.kube.list_groups(self.namespace)
                   if g.get("spec", {}).get("pool") == self.name]
        problems = [Problem("ResourceGroup", g["metadata"]["name"], "spec.pool",
                            f"QueryNodePool {self.name!r} does not exist in this namespace") for g in orphans]
        for obj in orphans:
            finalizers = list(obj["metadata"].get("finalizers") or [])
            if obj["metadata"].get("deletionTimestamp") and FINALIZER in finalizers:
                # Without its pool there is no Milvus to empty the group in: let the object go.
                await self.kube.set_finalizers(GROUP_PLURAL, obj, [f for f in finalizers if f != FINALIZER])
                continue
            await self.fail_group(obj, problems)

    async def fail_group(self, obj: Mapping[str, Any], problems: Sequence[Problem]) -> None:
        mine = [p for p in problems if p.kind == "ResourceGroup" and p.name == obj["metadata"]["name"]]
        group_conditions = cond.group_problem_conditions(mine, problems, self.generation(obj))
        status = {"observedGeneration": self.generation(obj),
                  "conditions": cond.merge_conditions((obj.get("status") or {}).get("conditions", []),
                                                      group_conditions, cond.iso(self.now))}
        await self.write_status(GROUP_PLURAL, obj, status)
        # Once per transition, as for the pool: the group had no Degraded=True with this message yet.
        old_group_degraded = cond.find((obj.get("status") or {}).get("conditions", []), "Degraded") or {}
        new_group_degraded = cond.find_new(group_conditions, "Degraded")
        if mine and (old_group_degraded.get("status") != "True"
                     or old_group_degraded.get("message") != new_group_degraded.message):
            await self.event(obj, "Warning", "ValidationFailed", new_group_degraded.message)

    async def fail_milvus(self, exc: MilvusError) -> None:
        conditions = cond.milvus_failed_conditions(exc.message, exc.code, self.generation(self.pool_obj))
        try:
            await self.write_pool_status(conditions, {})
        except KubeError as kube_exc:
            logger.warning("could not record Milvus failure in status: %s", kube_exc)

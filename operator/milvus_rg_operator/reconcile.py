"""One reconcile pass for one pool: observe -> plan (pure core, `core.plan.plan_pass`) -> act.

`_Pass.observe` reads Kubernetes and Milvus into plain data (`PassInputs`), `plan_pass` decides every write
with its reason, `_Pass.act` executes them in order: one INFO log line and one metric per write. Nothing is
written when the plan is empty: a steady state costs zero writes to Kubernetes and Milvus.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from milvus_rg_operator.adapters.kube import (
    CONCURRENT_CALLS,
    POOL_PLURAL,
    RESOURCE_GROUP_PLURAL,
    KubeError,
    KubeGateway,
)
from milvus_rg_operator.adapters.milvus import (
    MilvusAuthError,
    MilvusError,
    MilvusGateway,
    MilvusTlsError,
    MilvusUnsupported,
    PymilvusGateway,
)
from milvus_rg_operator.api.models import ANNOTATION_PAUSED, FINALIZER
from milvus_rg_operator.connection import MilvusEndpoint, credentials_problem, read_endpoint, tls_problem
from milvus_rg_operator.constants import POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core import actions as core_actions
from milvus_rg_operator.core import reporting, versions
from milvus_rg_operator.core.plan import GroupWorkload, PassInputs, leaving_nodes, plan_pass
from milvus_rg_operator.core.types import (
    MILVUS,
    GroupInput,
    MilvusState,
    ObjectState,
    PodState,
    Problem,
    WorkloadRef,
    WorkloadState,
    with_pod_hostnames,
)
from milvus_rg_operator.metrics import milvus_error_code
from milvus_rg_operator.owned_workload import statefulset_manifest
from milvus_rg_operator.scheduler import PassOutcome
from milvus_rg_operator.translate import (
    SpecError,
    declared_group,
    declared_pool,
    drain_records,
    group_spec,
    object_state,
    pod_state,
    pool_spec,
    removal_records,
    workload_keys,
    workload_state,
)

if TYPE_CHECKING:
    from milvus_rg_operator.metrics import OperatorMetrics

logger = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")

FIRST_RETRY_DELAY = 2.0  # a failed pass is retried after 2, 4, 8, ... seconds
MAX_BACKOFF = 60.0
LABEL_CONCURRENCY = CONCURRENT_CALLS  # pod label patches in flight at once: as many as the kube gateway runs
DEFAULT_RESYNC_SECONDS = 30.0


@dataclass
class PassReport:
    """What one pass did: tests count writes with it, metrics and the scheduler read the outcome."""

    writes: list[str] = field(default_factory=list)  # the summary of each write made
    actions: list[core_actions.Action] = field(default_factory=list)  # each write made, with its reason
    converged: bool = False
    problems: list[Problem] = field(default_factory=list)
    result: str = "progressing"  # converged | progressing | invalid | paused | failed


MilvusFactory = Callable[[MilvusEndpoint], MilvusGateway]


def pymilvus_factory(endpoint: MilvusEndpoint) -> MilvusGateway:
    return PymilvusGateway(endpoint.uri, token=endpoint.token, management_uri=endpoint.management_uri,
                           timeout=endpoint.timeout, tls=endpoint.tls)


class PoolReconciler:
    def __init__(self, kube: KubeGateway, milvus_factory: MilvusFactory = pymilvus_factory,
                 clock: Callable[[], float] = time.time, metrics: OperatorMetrics | None = None,
                 first_retry_delay: float = FIRST_RETRY_DELAY,
                 on_pass: Callable[[tuple[str, str], PassReport], None] | None = None) -> None:
        """`on_pass` is told of every finished pass (pool key, what it did)."""
        self._kube = kube
        self._first_retry_delay = first_retry_delay
        self._milvus_factory = milvus_factory
        self._clock = clock
        self.metrics = metrics
        self._gateways: dict[MilvusEndpoint, MilvusGateway] = {}
        self._workloads: dict[tuple[str, WorkloadRef], str] = {}  # (namespace, workload) -> pool
        self._endpoint_of_pool: dict[tuple[str, str], MilvusEndpoint] = {}
        self._failures: dict[tuple[str, str], tuple[int, str]] = {}  # pool -> (consecutive failures, last message)
        self.last_report: dict[tuple[str, str], PassReport] = {}
        # Pods by (namespace, workload), fed by a watch (the kopf index in handlers.py); None: LIST them.
        self.pod_cache: Mapping[tuple[str, WorkloadRef], Iterable[PodState]] | None = None
        # ResourceGroup objects by (namespace, pool), fed by a watch the same way; None: LIST them.
        self.group_cache: Mapping[tuple[str, str], Iterable[dict[str, Any]]] | None = None
        self.passes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.on_pass = on_pass

    def pool_of_workload(self, namespace: str, workload: WorkloadRef) -> str | None:
        return self._workloads.get((namespace, workload))

    async def close(self) -> None:
        for gateway in self._gateways.values():
            await gateway.close()
        self._gateways.clear()

    async def reconcile(self, namespace: str, name: str) -> PassOutcome:
        key = (namespace, name)
        report = PassReport()
        self.last_report[key] = report
        started = time.perf_counter()
        try:
            outcome = await _Pass(self, namespace, name, report).run()
        except (KubeError, MilvusError) as exc:
            # Transient trouble: back off exponentially; the error is already in the status when it could be
            # written. Nothing half-done is left: every step is re-derived from observation.
            report.result = "failed"
            failures, last = self._failures.get(key, (0, ""))
            failures += 1
            delay = min(self._first_retry_delay * 2.0 ** (failures - 1), MAX_BACKOFF)
            self._failures[key] = (failures, str(exc))
            log = logger.warning if str(exc) != last else logger.debug  # once per failure transition
            log("pool %s/%s: %s (retry %d in %.0fs)", namespace, name, exc, failures, delay)
            return PassOutcome(requeue_after=delay)
        finally:
            self.passes[key] += 1
            if self.on_pass is not None:
                self.on_pass(key, report)
            if self.metrics is not None:
                self.metrics.pass_finished(f"{namespace}/{name}", report.result, time.perf_counter() - started)
        if self._failures.pop(key, None) is not None:
            logger.info("pool %s/%s: recovered", namespace, name)
        if outcome.pool_gone and self.metrics is not None:
            self.metrics.forget_pool(f"{namespace}/{name}")
        return outcome

    async def observe(self, namespace: str, pool_obj: dict[str, Any]) -> PassInputs:
        """What a pass of this pool observes, read afresh (the dry run plans on it)."""
        inputs, _ = await _Pass(self, namespace, pool_obj["metadata"]["name"], PassReport()).observe(
            pool_obj, cached=False)
        return inputs

    async def milvus_for(self, pool: tuple[str, str], endpoint: MilvusEndpoint) -> MilvusGateway:
        """The gateway of `endpoint`; the one a pool used before (its Secret changed) is closed once no pool uses
        it: its channel and its certificate files go with it."""
        previous = self._endpoint_of_pool.get(pool)
        self._endpoint_of_pool[pool] = endpoint
        if previous not in (None, endpoint) and previous not in self._endpoint_of_pool.values():
            retired = self._gateways.pop(previous, None) if previous is not None else None
            if retired is not None:
                await retired.close()
        gateway = self._gateways.get(endpoint)
        if gateway is None:
            gateway = self._gateways[endpoint] = self._milvus_factory(endpoint)
        return gateway


def _cached(cache: Mapping[K, Iterable[T]] | None, key: K) -> list[T] | None:
    """What a watch-fed cache holds under `key` (a list of its own), or None without a cache: LIST instead."""
    return None if cache is None else list(cache.get(key, ()))


class _Pass:
    """The state of one pass: `run` observes, plans and acts; the other methods are those steps."""

    def __init__(self, owner: PoolReconciler, namespace: str, name: str, report: PassReport) -> None:
        self.owner = owner
        self.kube = owner._kube
        self.metrics = owner.metrics
        self.namespace = namespace
        self.name = name
        self.report = report
        self.now = owner._clock()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) -> the object as read
        self.milvus: MilvusGateway | None = None
        self.pool = ObjectState(name, 0)
        self.group_states: list[ObjectState] = []

    @property
    def pool_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def run(self) -> PassOutcome:
        pool_obj = await self.kube.get_pool(self.namespace, self.name)
        if pool_obj is None:
            await self.act(reporting.orphan_actions(self.name, await self.orphans(), self.now))
            return PassOutcome(requeue_after=0, pool_gone=True)
        resync = float(pool_obj.get("spec", {}).get("resyncSeconds", DEFAULT_RESYNC_SECONDS))
        inputs, from_cache = await self.observe(pool_obj, cached=True)
        plan = plan_pass(inputs)
        if from_cache and (plan.removes_pods or plan.changes_group_lifecycle):
            # Decide on authoritative reads, not on a watch that may lag.
            inputs, _ = await self.observe(pool_obj, cached=False)
            plan = plan_pass(inputs)
        logger.debug("pool %s: plan %s", self.pool_key, [a.summary for a in plan.actions] or "empty")
        self.report.problems.extend(plan.problems)
        try:
            await self.act(plan.actions)
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise
        self.report.converged = plan.converged
        self.report.result = plan.result
        if self.metrics is not None and inputs.milvus is not None:
            self.metrics.pass_state(self.pool_key, [g.declared for g in inputs.groups if g.declared is not None],
                                    inputs.milvus, plan.drains, len(plan.unexpected_removals))
        return PassOutcome(requeue_after=resync if plan.requeue_after is None else plan.requeue_after)

    # --- observation ------------------------------------------------------------------------------

    async def observe(self, pool_obj: dict[str, Any], *, cached: bool) -> tuple[PassInputs, bool]:
        """Everything the plan needs, and whether any of it came from a watch-fed cache. Stops early when the
        rest cannot change the plan: a paused pool, a refused pool, a Milvus too old to work with."""
        self.objects[(POOL_KIND, self.name)] = pool_obj
        self.pool = object_state(pool_obj)
        cached_groups = self.cached_groups() if cached else None
        groups = self.observe_groups(cached_groups if cached_groups is not None else await self.listed_groups())
        base = PassInputs(pool_obj=self.pool, groups=groups, now=self.now)
        if pool_obj["metadata"].get("annotations", {}).get(ANNOTATION_PAUSED) == "true":
            return replace(base, paused=True), False
        try:
            spec, pool = pool_spec(pool_obj), declared_pool(pool_obj)
        except SpecError as exc:
            return replace(base, problems=(Problem(POOL_KIND, self.name, exc.field, str(exc)),)), False
        base = replace(base, pool=pool, drains=drain_records(pool_obj), removals=removal_records(pool_obj))
        self.owner._workloads[(self.namespace, pool.workload)] = self.name
        endpoint, problems = await read_endpoint(self.kube, self.namespace, self.name, spec)
        if endpoint is None:
            return replace(base, problems=tuple(problems)), False
        gateway = self.milvus = await self.owner.milvus_for((self.namespace, self.name), endpoint)
        try:
            support = versions.milvus_support(await gateway.server_version())
            if not support.supported:
                return replace(base, support=support), False
            observed = replace(await gateway.observe(), version=support.reported)
        except MilvusAuthError as exc:
            return replace(base, problems=(credentials_problem(self.namespace, self.name, spec, exc),)), False
        except MilvusTlsError as exc:
            return replace(base, problems=(tls_problem(self.name, exc),)), False
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise
        workload, pods, from_cache = await self.observe_workload(pool.workload, cached)
        own = []
        for group in groups:
            if group.declared is not None and group.declared.workload is not None:
                ref = group.declared.workload
                self.owner._workloads[(self.namespace, ref)] = self.name
                state, group_pods, cached_pods = await self.observe_workload(ref, cached)
                own.append(GroupWorkload(group.obj.name, ref, state, tuple(group_pods)))
                from_cache = from_cache or cached_pods
        all_pods = [*pods, *(p for w in own for p in w.pods)]
        inputs = replace(base, support=support, milvus=with_pod_hostnames(observed, all_pods), workload=workload,
                         can_create_statefulset=spec.template is not None, pods=pods, group_workloads=tuple(own))
        inputs = replace(inputs, milvus=await self.with_collections(inputs))
        return replace(inputs, milvus=await self.with_distribution(inputs)), from_cache or cached_groups is not None

    async def observe_workload(self, ref: WorkloadRef, cached: bool
                               ) -> tuple[WorkloadState | None, list[PodState], bool]:
        """The workload (None: not found), its pods, and whether they came from the watch-fed cache."""
        obj = await self.kube.get_workload(self.namespace, ref)
        pods = self.cached_pods(ref) if cached else None
        from_cache = pods is not None
        if pods is None:
            pods = await self.listed_pods(obj, ref)
        return (workload_state(ref, obj, pods) if obj is not None else None), pods, from_cache

    def cached_groups(self) -> list[dict[str, Any]] | None:
        return _cached(self.owner.group_cache, (self.namespace, self.name))

    async def listed_groups(self) -> list[dict[str, Any]]:
        return [g for g in await self.kube.list_groups(self.namespace) if g.get("spec", {}).get("pool") == self.name]

    def observe_groups(self, group_objs: Sequence[dict[str, Any]]) -> list[GroupInput]:
        """The pass's groups, as read (from the cache or a LIST): kept for its writes, then parsed."""
        for obj in group_objs:
            self.objects[(RESOURCE_GROUP_KIND, obj["metadata"]["name"])] = obj
        self.group_states = [object_state(g) for g in group_objs]
        return [group_input(obj) for obj in group_objs]

    def cached_pods(self, workload: WorkloadRef) -> list[PodState] | None:
        return _cached(self.owner.pod_cache, (self.namespace, workload))

    async def listed_pods(self, obj: Mapping[str, Any] | None, workload: WorkloadRef) -> list[PodState]:
        if obj is None:
            return []
        if workload.kind == MILVUS:  # milvus-operator's query-node pods, of both its blue/green Deployments
            selector = {"app.kubernetes.io/instance": workload.name, "app.kubernetes.io/component": "querynode"}
        else:
            selector = obj["spec"]["selector"].get("matchLabels", {})
        return [pod_state(p) for p in await self.kube.list_pods(self.namespace, selector)
                if workload in workload_keys(p)]

    async def with_collections(self, inputs: PassInputs) -> MilvusState:
        """Collections, replicas and segments (core.serving), read only when a group declares collections or
        holds replicas."""
        observed = inputs.milvus
        assert observed is not None and self.milvus is not None
        loaded = {c for g in observed.groups.values() for c, n in g.loaded_replicas.items() if n > 0}
        if not loaded and not any(g.declared is not None and g.declared.collections for g in inputs.groups):
            return observed
        try:
            return replace(observed, collections=await self.milvus.collections(loaded))
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise

    async def with_distribution(self, inputs: PassInputs) -> MilvusState:
        """Segment/channel counts (`distribution/get`), fetched only for nodes that may be leaving."""
        observed = inputs.milvus
        assert observed is not None and self.milvus is not None
        node_ids = leaving_nodes(inputs)
        if not observed.management_available or not node_ids:
            return observed
        nodes = dict(observed.nodes)
        try:
            for node_id in sorted(node_ids):
                dist = await self.milvus.distribution(node_id)
                nodes[node_id] = replace(nodes[node_id], segments=dist.segments, channels=dist.channels)
        except MilvusError as exc:
            await self.fail_milvus(exc)
            raise
        return replace(observed, nodes=nodes)

    async def orphans(self) -> list[ObjectState]:
        """Groups naming this pool while it does not exist."""
        orphans = await self.listed_groups()
        for obj in orphans:
            self.objects[(RESOURCE_GROUP_KIND, obj["metadata"]["name"])] = obj
        return [object_state(obj) for obj in orphans]

    # --- acting -----------------------------------------------------------------------------------

    async def act(self, actions: Sequence[core_actions.Action]) -> None:
        """Execute in order; consecutive pod label patches go out concurrently (bounded)."""
        labels: list[core_actions.LabelPod] = []
        for action in actions:
            if isinstance(action, core_actions.LabelPod):
                labels.append(action)
                continue
            await self.label_pods(labels)
            labels = []
            await self.execute(action)
        await self.label_pods(labels)

    async def label_pods(self, batch: Sequence[core_actions.LabelPod]) -> None:
        """A bounded number of workers take the patches in order (not a task per pod: 10,000 at once)."""
        queue = iter(batch)

        async def worker() -> None:
            for one in queue:
                await self.execute(one)

        await asyncio.gather(*(worker() for _ in range(min(LABEL_CONCURRENCY, len(batch)))))

    async def execute(self, action: core_actions.Action) -> None:
        if isinstance(action, core_actions.PostEvent):
            await self.event(action)
            return
        await self._perform(action)
        self.wrote(action)
        if isinstance(action, core_actions.MILVUS_ACTIONS):
            # A Normal event on the pool for each Milvus write: writes happen only on transitions.
            await self.event(core_actions.PostEvent(POOL_KIND, self.name, "Normal", _MILVUS_EVENT_REASONS[type(action)],
                                           f"{action.summary} ({action.reason})"))

    def wrote(self, action: core_actions.Action) -> None:
        logger.info("pool %s: %s (%s)", self.pool_key, action.summary, action.reason)
        self.report.writes.append(action.summary)
        self.report.actions.append(action)
        if self.metrics is not None:
            self.metrics.write(action.target, action.verb)

    @property
    def gateway(self) -> MilvusGateway:
        assert self.milvus is not None, "connected before any Milvus write is planned"
        return self.milvus

    async def _perform(self, action: core_actions.Action) -> None:
        match action:
            case core_actions.AddFinalizer(group=group):
                obj = self.objects[(RESOURCE_GROUP_KIND, group)]
                await self.kube.set_finalizers(RESOURCE_GROUP_PLURAL, obj,
                                               [*(obj["metadata"].get("finalizers") or []), FINALIZER])
            case core_actions.ReleaseGroup(group=group):
                obj = self.objects[(RESOURCE_GROUP_KIND, group)]
                await self.kube.set_finalizers(RESOURCE_GROUP_PLURAL, obj,
                                               [f for f in obj["metadata"].get("finalizers") or [] if f != FINALIZER])
            case core_actions.CreateGroup(name=name, config=config):
                await self.gateway.create_group(name, config)
            case core_actions.UpdateGroups(configs=configs_):
                await self.gateway.update_groups(configs_)
            case core_actions.DropGroup(name=name):
                await self.gateway.drop_group(name)
            case core_actions.CreateStatefulSet(name=name, replicas=replicas, group=None):
                pool_obj = self.objects[(POOL_KIND, self.name)]
                await self.kube.create_statefulset(self.namespace, statefulset_manifest(
                    pool_obj, pool_spec(pool_obj).template, self.namespace, name, replicas))
            case core_actions.CreateStatefulSet(name=name, replicas=replicas, group=str(group)):
                group_obj = self.objects[(RESOURCE_GROUP_KIND, group)]
                spec = group_spec(group_obj)
                await self.kube.create_statefulset(self.namespace, statefulset_manifest(
                    group_obj, spec.template, self.namespace, name, replicas,
                    group=spec.milvus_group_name(group)))
            case core_actions.RecordDrains(scale_down=scale_down):
                await self.kube.patch_status(POOL_PLURAL, self.namespace, self.name, {"scaleDown": dict(scale_down)})
            case core_actions.SuspendNode(node_id=node_id):
                await self.gateway.suspend_node(node_id)
            case core_actions.ResumeNode(node_id=node_id):
                await self.gateway.resume_node(node_id)
            case core_actions.TransferReplica(source_group=source, target_group=target, collection=collection,
                                              replicas=replicas):
                await self.gateway.transfer_replica(source, target, collection, replicas)
            case core_actions.LoadCollection(collection=collection, replicas=replicas, groups=groups):
                await self.gateway.load_collection(collection, replicas, groups)
            case core_actions.LoadBalance(collection=collection, source_node=source_node, target_node=target_node,
                                          segment=segment):
                await self.gateway.load_balance(collection, source_node, target_node, segment)
            case core_actions.LabelPod(pod=pod, patch=patch):
                await self.kube.patch_pod_metadata(self.namespace, pod, patch.labels, patch.annotations)
            case core_actions.ScaleWorkload(workload=workload, replicas=replicas):
                await self.kube.scale_workload(self.namespace, workload, replicas)
            case core_actions.WriteStatus(kind=kind, name=name, status=status):
                plural = POOL_PLURAL if kind == POOL_KIND else RESOURCE_GROUP_PLURAL
                await self.kube.patch_status(plural, self.namespace, name, dict(status))
            case _:
                raise TypeError(f"unknown action {action!r}")

    async def event(self, action: core_actions.PostEvent) -> None:
        obj = self.objects.get((action.kind, action.name))
        if obj is None:
            return
        try:
            await self.kube.post_event(obj, action.type, action.event_reason, action.message)
            self.wrote(action)
        except KubeError as exc:  # an event is best effort: never fail a pass for it
            logger.info("pool %s: could not post event %s: %s", self.pool_key, action.event_reason, exc)

    async def fail_milvus(self, exc: MilvusError) -> None:
        """Every object of the pool says why nothing happens, with one Warning event per transition. Best
        effort: the failure itself is what the pass reports."""
        reason = "MilvusUnavailable" if exc.unreachable else "MilvusError"
        if isinstance(exc, MilvusUnsupported):
            reason = "UnsupportedMilvusVersion"
        text = exc.message if exc.code is None else f"{exc.message} (code {exc.code})"
        if self.metrics is not None:
            self.metrics.milvus_error(milvus_error_code(exc))
        try:
            await self.act(reporting.milvus_failure_actions(self.pool, self.group_states, text, reason, self.now))
        except KubeError as kube_exc:
            logger.warning("pool %s: could not record the Milvus failure in status: %s", self.pool_key, kube_exc)


def group_input(obj: Mapping[str, Any]) -> GroupInput:
    state = object_state(obj)
    try:
        return GroupInput(state, declared_group(obj))
    except SpecError as exc:
        return GroupInput(state, None, (Problem(RESOURCE_GROUP_KIND, exc.name, exc.field, exc.reason),))


_MILVUS_EVENT_REASONS: Mapping[type, str] = {
    core_actions.CreateGroup: "GroupCreated", core_actions.UpdateGroups: "GroupsUpdated",
    core_actions.DropGroup: "GroupDropped", core_actions.SuspendNode: "NodeSuspended",
    core_actions.ResumeNode: "NodeResumed", core_actions.TransferReplica: "ReplicaTransferred",
    core_actions.LoadCollection: "CollectionLoaded", core_actions.LoadBalance: "SegmentMoved",
}

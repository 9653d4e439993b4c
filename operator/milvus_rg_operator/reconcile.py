"""One reconcile pass for one pool: observe -> plan (pure core, `core.plan`) -> act -> report.

`_Pass.observe` reads Kubernetes and Milvus into plain data, `core.plan.plan_pass` decides every write
with its reason, `_Pass.act` executes them in order: one INFO log line and one metric per write. Nothing
is written when the plan is empty: a steady state costs zero writes to Kubernetes and Milvus.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from milvus_rg_operator.adapters.kube import CONCURRENT_CALLS, GROUP_PLURAL, POOL_PLURAL, KubeError, KubeGateway
from milvus_rg_operator.adapters.milvus import (
    MilvusAuthError,
    MilvusError,
    MilvusGateway,
    MilvusUnsupported,
    PymilvusGateway,
)
from milvus_rg_operator.api.models import ANNOTATION_PAUSED, FINALIZER
from milvus_rg_operator.core import conditions as cond
from milvus_rg_operator.core import plan as core_plan
from milvus_rg_operator.core import versions
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.plan import GROUP_KIND, POOL_KIND, Action, GroupInput, ObjectState, PassInputs
from milvus_rg_operator.core.types import DeclaredPool, MilvusState, PodState, Problem, with_pod_hostnames
from milvus_rg_operator.logs import register_secret
from milvus_rg_operator.metrics import milvus_error_code
from milvus_rg_operator.scheduler import PassOutcome
from milvus_rg_operator.translate import (
    SpecError,
    declared_group,
    declared_pool,
    drain_records,
    object_state,
    owned_by,
    pod_state,
    pool_spec,
    statefulset_state,
)

if TYPE_CHECKING:
    from milvus_rg_operator.metrics import OperatorMetrics

logger = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_RETRY_DELAY = 2.0  # a failed pass is retried after 2, 4, 8, ... seconds
MAX_BACKOFF = 60.0
LABEL_CONCURRENCY = CONCURRENT_CALLS  # pod label patches in flight at once: as many as the kube gateway runs


@dataclass
class PassReport:
    """What one pass did: tests count writes with it, metrics and the scheduler read the outcome."""

    writes: list[str] = field(default_factory=list)
    converged: bool = False
    problems: list[Problem] = field(default_factory=list)
    result: str = "progressing"  # converged | progressing | invalid | paused | failed


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
                 clock: Callable[[], float] = time.time, metrics: OperatorMetrics | None = None,
                 first_retry_delay: float = FIRST_RETRY_DELAY) -> None:
        self._kube = kube
        self._first_retry_delay = first_retry_delay
        self._milvus_factory = milvus_factory
        self._clock = clock
        self.metrics = metrics
        self._gateways: dict[MilvusConnection, MilvusGateway] = {}
        self._statefulsets: dict[tuple[str, str], str] = {}  # (namespace, StatefulSet) -> pool
        self._failures: dict[tuple[str, str], tuple[int, str]] = {}  # pool -> (consecutive failures, last message)
        self.last_report: dict[tuple[str, str], PassReport] = {}
        # Pods by (namespace, StatefulSet), fed by a watch (the kopf index in handlers.py); None: LIST them.
        self.pod_cache: Mapping[tuple[str, str], Iterable[PodState]] | None = None
        # ResourceGroup objects by (namespace, pool), fed by a watch the same way; None: LIST them.
        self.group_cache: Mapping[tuple[str, str], Iterable[dict[str, Any]]] | None = None
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
            if self.metrics is not None:
                self.metrics.pass_finished(f"{namespace}/{name}", report.result, time.perf_counter() - started)
        if self._failures.pop(key, None) is not None:
            logger.info("pool %s/%s: recovered", namespace, name)
        if outcome.pool_gone and self.metrics is not None:
            self.metrics.forget_pool(f"{namespace}/{name}")
        return outcome

    def milvus_for(self, conn: MilvusConnection) -> MilvusGateway:
        gateway = self._gateways.get(conn)
        if gateway is None:
            gateway = self._gateways[conn] = self._milvus_factory(conn)
        return gateway


def _cached(cache: Mapping[tuple[str, str], Iterable[T]] | None, key: tuple[str, str]) -> list[T] | None:
    """What a watch-fed cache holds under `key` (a list of its own), or None without a cache: LIST instead."""
    return None if cache is None else list(cache.get(key, ()))


class _Pass:
    """The state of one pass; `run` is the sequence, the helpers are its steps."""

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

    @property
    def pool_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def run(self) -> PassOutcome:
        pool_obj = await self.kube.get_pool(self.namespace, self.name)
        if pool_obj is None:
            await self.report_missing_pool()
            return PassOutcome(requeue_after=0, pool_gone=True)
        self.objects[(POOL_KIND, self.name)] = pool_obj
        self.pool = object_state(pool_obj)
        cached_groups = self.cached_groups()
        groups = self.observe_groups(cached_groups if cached_groups is not None else await self.listed_groups())
        resync = float(pool_obj.get("spec", {}).get("resyncSeconds", 30))

        if pool_obj["metadata"].get("annotations", {}).get(ANNOTATION_PAUSED) == "true":
            self.report.result = "paused"
            await self.act(core_plan.status_write(
                POOL_KIND, self.pool, core_plan.conditions_status(
                    self.pool, cond.paused_pool_conditions(self.pool.generation), self.now),
                f"annotation {ANNOTATION_PAUSED}=true"))
            return PassOutcome(requeue_after=resync)

        try:
            pool = declared_pool(pool_obj)
        except SpecError as exc:
            return await self.refuse([Problem(POOL_KIND, self.name, exc.field, str(exc))], resync)
        self.owner._statefulsets[(self.namespace, pool.stateful_set_name)] = self.name

        conn, secret_problems = await self.milvus_connection()
        if secret_problems or conn is None:
            return await self.refuse(secret_problems, resync)
        milvus = self.milvus = self.owner.milvus_for(conn)
        try:
            version = await milvus.server_version()
            support = versions.milvus_support(version)
            if not support.supported:
                await self.fail_milvus(support.message, "UnsupportedMilvusVersion")
                self.report.result = "invalid"
                return PassOutcome(requeue_after=resync)
            observed = replace(await milvus.observe(), version=version)
        except MilvusAuthError as exc:
            return await self.refuse([self.credentials_problem(exc)], resync)
        except MilvusError as exc:
            await self.fail_milvus_error(exc)
            raise

        sts_obj = await self.kube.get_statefulset(self.namespace, pool.stateful_set_name)
        cached = self.cached_pods(pool)
        inputs = await self.pass_inputs(pool, groups, observed, sts_obj, cached, support)
        plan = core_plan.plan_pass(inputs)
        stale_pods = cached is not None and plan.removes_pods
        stale_groups = cached_groups is not None and plan.changes_group_lifecycle
        if stale_pods or stale_groups:
            # Decide on authoritative reads, not on a watch that may lag.
            if stale_groups:
                groups = self.observe_groups(await self.listed_groups())
            pods = None if stale_pods else cached
            inputs = await self.pass_inputs(pool, groups, observed, sts_obj, pods, support)
            plan = core_plan.plan_pass(inputs)
        logger.debug("pool %s: plan %s", self.pool_key, [a.summary for a in plan.actions] or "empty")
        self.report.problems.extend(plan.problems)
        try:
            await self.act(plan.actions)
        except MilvusError as exc:
            await self.fail_milvus_error(exc)
            raise
        self.report.converged = plan.converged
        self.report.result = "invalid" if plan.refused else "converged" if plan.converged else "progressing"
        if self.metrics is not None:
            self.report_metrics(inputs, plan)
        return PassOutcome(requeue_after=resync if plan.requeue_after is None else plan.requeue_after)

    # --- observation ------------------------------------------------------------------------------

    def cached_groups(self) -> list[dict[str, Any]] | None:
        return _cached(self.owner.group_cache, (self.namespace, self.name))

    async def listed_groups(self) -> list[dict[str, Any]]:
        return [g for g in await self.kube.list_groups(self.namespace) if g.get("spec", {}).get("pool") == self.name]

    def observe_groups(self, group_objs: Sequence[dict[str, Any]]) -> list[GroupInput]:
        """The pass's groups, as read (from the cache or a LIST): kept for its writes, then validated."""
        for obj in group_objs:
            self.objects[(GROUP_KIND, obj["metadata"]["name"])] = obj
        self.group_states = [object_state(g) for g in group_objs]
        return [self.group_input(obj) for obj in group_objs]

    def cached_pods(self, pool: DeclaredPool) -> list[PodState] | None:
        return _cached(self.owner.pod_cache, (self.namespace, pool.stateful_set_name))

    async def pass_inputs(self, pool: DeclaredPool, groups: Sequence[GroupInput], observed: MilvusState,
                          sts_obj: Mapping[str, Any] | None, pods: list[PodState] | None,
                          support: versions.MilvusSupport) -> PassInputs:
        """Everything the plan needs; pods from the watch-fed cache when given, else LISTed."""
        pool_obj = self.objects[(POOL_KIND, self.name)]
        if pods is None:
            pods = []
            if sts_obj is not None:
                selector = sts_obj["spec"]["selector"].get("matchLabels", {})
                pods = [pod_state(p) for p in await self.kube.list_pods(self.namespace, selector)
                        if owned_by(p, pool.stateful_set_name)]
        drains = drain_records(pool_obj)
        observed = with_pod_hostnames(observed, pods)
        declared = [g.declared for g in groups if g.declared is not None]
        try:
            observed = await self.with_distribution(
                self.gateway, observed, core_plan.leaving_nodes(pool, declared, observed, pods, drains))
        except MilvusError as exc:
            await self.fail_milvus_error(exc)
            raise
        return PassInputs(
            pool=pool, pool_obj=self.pool, groups=groups, milvus=observed,
            sts=statefulset_state(sts_obj) if sts_obj is not None else None,
            can_create_statefulset=pool_spec(pool_obj).template is not None, pods=pods, drains=drains,
            now=self.now, drain_unsupported=None if support.suspend_leaves_group else support.message,
        )

    @property
    def gateway(self) -> MilvusGateway:
        assert self.milvus is not None, "connected before observing"
        return self.milvus

    def group_input(self, obj: Mapping[str, Any]) -> GroupInput:
        state = object_state(obj)
        try:
            return GroupInput(state, declared_group(obj))
        except SpecError as exc:
            return GroupInput(state, None, (Problem(GROUP_KIND, exc.name, exc.field, exc.reason),))

    async def milvus_connection(self) -> tuple[MilvusConnection | None, list[Problem]]:
        milvus = pool_spec(self.objects[(POOL_KIND, self.name)]).milvus
        token = ""
        ref = milvus.secret_ref
        if ref is not None:
            secret = await self.kube.read_secret(self.namespace, ref.name)
            if secret is None:
                return None, [Problem(POOL_KIND, self.name, "spec.milvus.secretRef.name",
                                      f"Secret {self.namespace}/{ref.name} not found")]
            if ref.key not in secret:
                return None, [Problem(POOL_KIND, self.name, "spec.milvus.secretRef.key",
                                      f"Secret {ref.name} has no key {ref.key!r}")]
            token = secret[ref.key].strip()
            register_secret(token)  # tokens never reach a log line
        return MilvusConnection(milvus.uri, token, milvus.management_uri, float(milvus.timeout_seconds)), []

    def credentials_problem(self, exc: MilvusAuthError) -> Problem:
        ref = pool_spec(self.objects[(POOL_KIND, self.name)]).milvus.secret_ref
        where = (f"the credentials in Secret {self.namespace}/{ref.name} (key {ref.key!r})"
                 if ref else "no credentials (Milvus requires authentication: set spec.milvus.secretRef)")
        return Problem(POOL_KIND, self.name, "spec.milvus.secretRef", f"Milvus refused {where}: {exc.message}")

    async def with_distribution(self, milvus: MilvusGateway, observed: MilvusState,
                                node_ids: set[int]) -> MilvusState:
        """Segment/channel counts (`distribution/get`), fetched only for nodes that may be leaving."""
        if not observed.management_available or not node_ids:
            return observed
        nodes = dict(observed.nodes)
        for node_id in sorted(node_ids):
            dist = await milvus.distribution(node_id)
            node = nodes[node_id]
            nodes[node_id] = type(node)(node.node_id, node.hostname, node.address, node.state,
                                        segments=dist.segments, channels=dist.channels)
        return MilvusState(groups=observed.groups, nodes=nodes, management_available=True,
                           version=observed.version)

    # --- acting -----------------------------------------------------------------------------------

    async def act(self, actions: Sequence[Action]) -> None:
        """Execute in order; consecutive pod label patches go out concurrently (bounded)."""
        labels: list[core_plan.LabelPod] = []
        for action in actions:
            if isinstance(action, core_plan.LabelPod):
                labels.append(action)
                continue
            await self.label_pods(labels)
            labels = []
            await self.execute(action)
        await self.label_pods(labels)

    async def label_pods(self, batch: Sequence[core_plan.LabelPod]) -> None:
        """A bounded number of workers take the patches in order (not a task per pod: 10,000 at once)."""
        queue = iter(batch)

        async def worker() -> None:
            for one in queue:
                await self.execute(one)

        await asyncio.gather(*(worker() for _ in range(min(LABEL_CONCURRENCY, len(batch)))))

    async def execute(self, action: Action) -> None:
        if isinstance(action, core_plan.PostEvent):
            await self.event(action)
            return
        await self._perform(action)
        self.wrote(action)
        if isinstance(action, core_plan.MILVUS_ACTIONS):
            # A Normal event on the pool for each Milvus write: writes happen only on transitions.
            await self.event(core_plan.PostEvent(POOL_KIND, self.name, "Normal", _MILVUS_EVENT_REASONS[type(action)],
                                                 f"{action.summary} ({action.reason})"))

    def wrote(self, action: Action) -> None:
        logger.info("pool %s: %s (%s)", self.pool_key, action.summary, action.reason)
        self.report.writes.append(action.summary)
        if self.metrics is not None:
            self.metrics.write(action.target, action.verb)

    async def _perform(self, action: Action) -> None:
        match action:
            case core_plan.AddFinalizer(group=group):
                obj = self.objects[(GROUP_KIND, group)]
                await self.kube.set_finalizers(GROUP_PLURAL, obj, [*(obj["metadata"].get("finalizers") or []),
                                                                   FINALIZER])
            case core_plan.ReleaseGroup(group=group):
                obj = self.objects[(GROUP_KIND, group)]
                await self.kube.set_finalizers(GROUP_PLURAL, obj, [f for f in obj["metadata"].get("finalizers") or []
                                                                   if f != FINALIZER])
            case core_plan.CreateGroup(name=name, config=config):
                await self.gateway.create_group(name, config)
            case core_plan.UpdateGroups(configs=configs_):
                await self.gateway.update_groups(configs_)
            case core_plan.DropGroup(name=name):
                await self.gateway.drop_group(name)
            case core_plan.CreateStatefulSet(name=name, replicas=replicas):
                await self.kube.create_statefulset(self.namespace, self.statefulset_manifest(name, replicas))
            case core_plan.RecordDrains(scale_down=scale_down):
                await self.kube.patch_status(POOL_PLURAL, self.namespace, self.name, {"scaleDown": dict(scale_down)})
            case core_plan.SuspendNode(node_id=node_id):
                await self.gateway.suspend_node(node_id)
            case core_plan.ResumeNode(node_id=node_id):
                await self.gateway.resume_node(node_id)
            case core_plan.LabelPod(pod=pod, patch=patch):
                await self.kube.patch_pod_metadata(self.namespace, pod, patch.labels, patch.annotations)
            case core_plan.ScaleStatefulSet(name=name, replicas=replicas):
                await self.kube.scale_statefulset(self.namespace, name, replicas)
            case core_plan.WriteStatus(kind=kind, name=name, status=status):
                plural = POOL_PLURAL if kind == POOL_KIND else GROUP_PLURAL
                await self.kube.patch_status(plural, self.namespace, name, dict(status))
            case _:
                raise TypeError(f"unknown action {action!r}")

    async def event(self, action: core_plan.PostEvent) -> None:
        obj = self.objects.get((action.kind, action.name))
        if obj is None:
            return
        try:
            await self.kube.post_event(obj, action.type, action.event_reason, action.message)
            self.wrote(action)
        except KubeError as exc:  # an event is best effort: never fail a pass for it
            logger.info("pool %s: could not post event %s: %s", self.pool_key, action.event_reason, exc)

    def statefulset_manifest(self, name: str, replicas: int) -> dict[str, Any]:
        pool_obj = self.objects[(POOL_KIND, self.name)]
        template = pool_spec(pool_obj).template
        template_meta = (template.metadata.model_dump(exclude_none=True) if template and template.metadata
                         else {})
        labels_ = dict(template_meta.get("labels") or {}) or {
            "app.kubernetes.io/name": "milvus", "app.kubernetes.io/component": "querynode"}
        meta = pool_obj["metadata"]
        return {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {
                "name": name, "namespace": self.namespace, "labels": labels_,
                "ownerReferences": [{"apiVersion": pool_obj["apiVersion"], "kind": POOL_KIND,
                                     "name": meta["name"], "uid": meta["uid"], "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels_},
                "template": {"metadata": {**template_meta, "labels": labels_},
                             "spec": template.spec if template else {}},
            },
        }

    # --- problems ---------------------------------------------------------------------------------

    async def refuse(self, problems: Sequence[Problem], resync: float) -> PassOutcome:
        """Bad input: Degraded + a Warning event naming each field; nothing is applied to Milvus or the cluster."""
        self.report.problems.extend(problems)
        self.report.result = "invalid"
        await self.act(core_plan.validation_actions(self.pool, self.group_states, problems, self.now))
        return PassOutcome(requeue_after=resync)

    async def fail_milvus_error(self, exc: MilvusError) -> None:
        reason = "MilvusUnavailable" if exc.unreachable else "MilvusError"
        if isinstance(exc, MilvusUnsupported):
            reason = "UnsupportedMilvusVersion"
        text = exc.message if exc.code is None else f"{exc.message} (code {exc.code})"
        if self.metrics is not None:
            self.metrics.milvus_error(milvus_error_code(exc))
        await self.fail_milvus(text, reason)

    async def fail_milvus(self, text: str, reason: str) -> None:
        """Every object of the pool says why nothing happens (a deleting group: why its deletion waits), with
        one Warning event per transition. Best effort: the failure itself is what the pass reports."""
        pool_conditions = cond.milvus_failed_conditions(text, reason, self.pool.generation)
        group_conditions = {
            g.name: cond.blocked_group_conditions(
                reason, f"deletion waits: Milvus cannot be updated: {text}" if g.deleting
                else f"the pool cannot reach a working Milvus: {text}", g.generation)
            for g in self.group_states}
        try:
            await self.act(core_plan.problem_actions(self.pool, self.group_states, pool_conditions,
                                                     group_conditions, reason, self.now))
        except KubeError as kube_exc:
            logger.warning("pool %s: could not record the Milvus failure in status: %s", self.pool_key, kube_exc)

    async def report_missing_pool(self) -> None:
        """Groups naming this pool while it does not exist: Degraded + a Warning event naming spec.pool."""
        orphans = await self.listed_groups()
        self.pool = ObjectState(self.name, 0)
        for obj in orphans:
            state = object_state(obj)
            self.objects[(GROUP_KIND, state.name)] = obj
            if state.deleting and state.finalized:
                # Without its pool there is no Milvus to empty the group in: let the object go.
                await self.act([core_plan.ReleaseGroup(state.name, f"QueryNodePool {self.name} does not exist")])
                continue
            problem = Problem(GROUP_KIND, state.name, "spec.pool",
                              f"QueryNodePool {self.name!r} does not exist in this namespace")
            await self.act(core_plan.frozen_group_actions([GroupInput(state, None, (problem,))], [problem], self.now))

    def report_metrics(self, inputs: PassInputs, plan: core_plan.PassPlan) -> None:
        assert self.metrics is not None
        phases = collections.Counter(d.phase for d in plan.drains)
        self.metrics.drains(self.pool_key, phases)
        shown = []
        for g in inputs.groups:
            if g.declared is None or g.declared.deleting:
                continue
            name = resolve_group_name(g.declared)
            found = inputs.milvus.groups.get(name)
            self.metrics.group_nodes(self.pool_key, name, g.declared.requests, len(found.node_ids) if found else 0)
            shown.append(name)
        self.metrics.retain_groups(self.pool_key, shown)


_MILVUS_EVENT_REASONS: Mapping[type, str] = {
    core_plan.CreateGroup: "GroupCreated", core_plan.UpdateGroups: "GroupsUpdated", core_plan.DropGroup: "GroupDropped",
    core_plan.SuspendNode: "NodeSuspended", core_plan.ResumeNode: "NodeResumed",
}

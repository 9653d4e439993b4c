"""The real operator (kopf + kubernetes client + pymilvus) against a fresh sandbox, over HTTP and gRPC.

`OperatorHarness` installs the CRDs through the API, creates a query-node StatefulSet, runs the
operator in the test's event loop (as `milvus-rg-operator run` would), and offers ways to apply
manifests, wait on conditions, restart the operator and read Milvus directly over pymilvus.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kopf._cogs.aiokits import aiotasks as kopf_aiotasks
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pymilvus import AsyncMilvusClient

from milvus_rg_operator.adapters.kube import (
    OPERATOR_NAME,
    POOL_PLURAL,
    RESOURCE_GROUP_PLURAL,
    USER_AGENT,
    KubernetesClientGateway,
    new_api_client,
)
from milvus_rg_operator.api.crds import render_crds
from milvus_rg_operator.api.models import (
    API_GROUP,
    DEFAULT_PENDING_GROUP,
    LABEL_NODE_ID,
    LABEL_RESOURCE_GROUP,
    LABEL_STATE,
    VERSION,
)
from milvus_rg_operator.core.names import label_value
from milvus_rg_operator.leader import LeaderElector, LeaseSettings, run_leading
from milvus_rg_operator.manifests import apply_manifests
from milvus_rg_operator.metrics import OperatorMetrics
from milvus_rg_operator.reconcile import PassReport, PoolReconciler
from milvus_rg_operator.runner import run_operator
from milvus_rg_operator.scheduler import PassOutcome, PoolScheduler
from tests.support import wait_for

NAMESPACE = "default"
# Failed passes are retried after 0.25, 0.5, 1, ... s here (2, 4, 8, ... s in production: see
# test_a_failed_pass_is_retried_with_exponential_backoff): the fault tests wait through several retries.
TEST_RETRY_DELAY = 0.25
TEST_USER_AGENT = "milvus-rg-operator-tests"
STATEFULSET = "milvus-querynode"
RELEASE = "my-release"  # the Helm chart's and milvus-operator's shapes (milvus_rg_sandbox.shapes)


@dataclass(frozen=True)
class Shape:
    """Where the test's query nodes run: the workload a pool names and the selector of its pods."""

    name: str  # statefulset | deployment | milvus-operator
    kind: str
    workload: str
    pods: str  # label selector

    def scale_target(self) -> dict[str, str]:
        return {"apiVersion": "milvus.io/v1beta1" if self.kind == "Milvus" else "apps/v1", "kind": self.kind,
                "name": self.workload}


SHAPES = {
    "statefulset": Shape("statefulset", "StatefulSet", STATEFULSET, f"app.kubernetes.io/instance={STATEFULSET}"),
    "deployment": Shape("deployment", "Deployment", f"{RELEASE}-milvus-querynode",
                        f"app.kubernetes.io/instance={RELEASE},component=querynode"),
    "milvus-operator": Shape("milvus-operator", "Milvus", RELEASE,
                             f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=querynode"),
}
PENDING_GROUP = DEFAULT_PENDING_GROUP

# kopf, when stopped or cancelled, cancels *every* task created in the loop since it started ("hung
# tasks"): here those include the sandbox's own (gRPC and HTTP request handlers, pod lifecycles), which
# broke Milvus's gRPC server after `kill_operator`. Tasks spawned inside the operator's context are
# tagged, and kopf only ever sees those: stopping or killing it leaves the sandbox alone, as killing a
# real operator process would.
_IN_OPERATOR: contextvars.ContextVar[bool] = contextvars.ContextVar("in_operator", default=False)
_OPERATOR_TASKS: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
_kopf_all_tasks = kopf_aiotasks.all_tasks


async def _operator_tasks_only(ignored: Any = frozenset()) -> Any:
    return {task for task in await _kopf_all_tasks(ignored=ignored) if task in _OPERATOR_TASKS}


kopf_aiotasks.all_tasks = _operator_tasks_only


def _tag_operator_tasks(loop: asyncio.AbstractEventLoop) -> None:
    previous = loop.get_task_factory()
    if getattr(previous, "tags_operator_tasks", False):
        return

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        task = previous(loop, coro, **kwargs) if previous else asyncio.Task(coro, loop=loop, **kwargs)
        if _IN_OPERATOR.get():
            _OPERATOR_TASKS.add(task)
        return task

    factory.tags_operator_tasks = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)


def _in_operator_context() -> contextvars.Context:
    """A context whose tasks kopf may cancel (see _IN_OPERATOR)."""
    _tag_operator_tasks(asyncio.get_running_loop())
    context = contextvars.copy_context()
    context.run(_IN_OPERATOR.set, True)
    return context


@dataclass
class Replica:
    """One operator replica of `OperatorHarness.start_replicas`, as a process of its own would be: its own API
    client (user agent `milvus-rg-operator/<version> <name>`, so the API's write log tells the replicas' writes
    apart), reconciler and scheduler; with leader election, its own candidate for the Lease."""

    name: str
    api: ApiClient
    reconciler: PoolReconciler
    elector: LeaderElector | None  # None: no leader election (the replica runs kopf at once)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    first_pass_at: float | None = None  # time.time() when its first reconcile pass began
    scheduler: PoolScheduler = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = PoolScheduler(self._reconcile)

    async def _reconcile(self, namespace: str, name: str) -> PassOutcome:
        if self.first_pass_at is None:
            self.first_pass_at = time.time()
        return await self.reconciler.reconcile(namespace, name)

    @property
    def user_agent(self) -> str:
        return str(self.api.user_agent)

    @property
    def leading(self) -> bool:
        return self.elector is not None and self.elector.leading

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()


def pool_manifest(name: str = "milvus", **spec: Any) -> dict[str, Any]:
    # Resync every 5 s (the least allowed): Milvus moves nodes by itself (a crashed node's group refilled) and the
    # labels that say where follow at the next resync; the tests wait less than the 30 s default for it.
    body = {"milvus": {"uri": "placeholder"}, "statefulSetName": STATEFULSET, "resyncSeconds": 5, **spec}
    if "scaleTargetRef" in spec:
        body.pop("statefulSetName")
    return {"apiVersion": f"{API_GROUP}/{VERSION}", "kind": "QueryNodePool", "metadata": {"name": name},
            "spec": body}


def group_manifest(name: str, requests: int, pool: str = "milvus", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{API_GROUP}/{VERSION}", "kind": "ResourceGroup", "metadata": {"name": name},
            "spec": {"pool": pool, "requests": {"nodeNum": requests}, **spec}}


@dataclass
class OperatorHarness:
    sandbox: Any
    api: ApiClient = field(init=False)
    reconciler: PoolReconciler | None = None
    scheduler: PoolScheduler | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        os.environ["KUBECONFIG"] = str(self.sandbox.kubeconfig_path)
        self.api = new_api_client(user_agent=TEST_USER_AGENT)
        self.operator_api: ApiClient | None = None
        self.custom = CustomObjectsApi(self.api)
        self.core = CoreV1Api(self.api)
        self.apps = AppsV1Api(self.api)
        self.reports: list[tuple[tuple[str, str], PassReport]] = []  # every pass of the operator, in order
        self.operator_replicas: list[Replica] = []
        # A Lease of this harness alone: tests leave Leases behind on the shared control plane.
        self.lease_name = f"{OPERATOR_NAME}-{uuid.uuid4().hex[:8]}"
        self.shape = SHAPES["statefulset"]

    # --- setup --------------------------------------------------------------------------------

    async def install(self, replicas: int = 1, env: Mapping[str, str] | None = None,
                      shape: str = "statefulset") -> None:
        """The CRDs and `replicas` query nodes in `shape` (milvus-operator's: with its stand-in running)."""
        await apply_manifests(self.api, render_crds())
        self.shape = SHAPES[shape]
        if shape == "milvus-operator":
            await self.sandbox.start_milvus_operator(sync_interval=0.2, min_ready_seconds=0)
        await self.sandbox.create_query_nodes(shape, replicas=replicas, namespace=NAMESPACE, env=env)
        await wait_for(lambda: self.milvus_node_count() == replicas, timeout=10,
                       message=f"{replicas} query nodes registered in Milvus")

    def milvus_node_count(self) -> int:
        """Query nodes registered in Milvus (2.6: the query nodes embedded in streaming nodes left out)."""
        return sum(not node.embedded for node in self.sandbox.milvus.rm.nodes.values())

    async def start_operator(self, metrics: OperatorMetrics | None = None) -> None:
        # The operator's own client (its user agent tells its writes from the test's in the API's log).
        self.operator_api = new_api_client()
        self.reconciler = PoolReconciler(KubernetesClientGateway(self.operator_api), metrics=metrics,
                                         first_retry_delay=TEST_RETRY_DELAY,
                                         on_pass=lambda key, report: self.reports.append((key, report)))
        self.scheduler = PoolScheduler(self.reconciler.reconcile)
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        self._task = asyncio.create_task(run_operator(
            namespace=NAMESPACE, stop_flag=self._stop, ready_flag=ready,
            memo={"reconciler": self.reconciler, "scheduler": self.scheduler, "embedded": True}),
            context=_in_operator_context())
        async with asyncio.timeout(15):
            await ready.wait()

    async def stop_operator(self) -> None:
        if self._task is not None and self._stop is not None:
            self._stop.set()
            # pytest-asyncio may already have cancelled it at the end of the test: never re-raise that.
            await asyncio.wait({self._task}, timeout=30)
        self._task = None

    async def kill_operator(self) -> None:
        """Like kill -9: no cleanup handlers, in-memory state is lost."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=30)  # never raises the operator's own cancellation
        self._task = None

    # --- replicas with leader election -------------------------------------------------------

    async def start_replicas(self, count: int = 2, *, leader_election: bool = True, lease_duration: float = 4,
                             renew_deadline: float = 3, retry_period: float = 0.5) -> list[Replica]:
        """`count` operators at once, as the chart's replicas: each waits for the Lease and runs kopf only while
        it leads. Without
        `leader_election` each runs kopf at once, as two operators did before leader election."""
        started = []
        for index in range(count):
            name = f"replica-{len(self.operator_replicas) + index}"
            api = new_api_client(user_agent=f"{USER_AGENT} {name}")
            lease = LeaseSettings(namespace=NAMESPACE, identity=f"{name}_{uuid.uuid4().hex[:6]}", name=self.lease_name,
                                  lease_duration=lease_duration, renew_deadline=renew_deadline,
                                  retry_period=retry_period)
            replica = Replica(name, api, PoolReconciler(
                KubernetesClientGateway(api), first_retry_delay=TEST_RETRY_DELAY,
                on_pass=lambda key, report: self.reports.append((key, report))),
                LeaderElector(api, lease) if leader_election else None)
            memo = {"reconciler": replica.reconciler, "scheduler": replica.scheduler, "embedded": True}

            def operate(stop: asyncio.Event, memo: dict[str, Any] = memo) -> Any:
                return run_operator(namespace=NAMESPACE, stop_flag=stop, memo=memo)

            elector = replica.elector
            run = operate(replica.stop) if elector is None else run_leading(elector, operate, replica.stop)
            replica.task = asyncio.create_task(run, name=name, context=_in_operator_context())
            started.append(replica)
        self.operator_replicas.extend(started)
        return started

    async def leader(self, timeout: float = 30) -> Replica:
        """The one live replica that leads, once there is one (never two: asserted)."""
        def leading() -> list[Replica]:
            return [r for r in self.operator_replicas if r.alive and r.leading]

        await wait_for(leading, timeout=timeout, interval=0.05, message="a replica leading")
        (found,) = leading()
        return found

    async def kill_replica(self, replica: Replica) -> None:
        """Like kill -9 of its process: no cleanup, the Lease is not released."""
        if replica.task is not None:
            replica.task.cancel()
            await asyncio.wait({replica.task}, timeout=30)

    async def stop_replica(self, replica: Replica) -> None:
        """A clean stop (SIGTERM): kopf stops, then the Lease is released."""
        replica.stop.set()
        if replica.task is not None:
            await asyncio.wait({replica.task}, timeout=30)

    def writes_by_replica(self) -> dict[str, list[Any]]:
        """Replica name -> the writes the API server accepted from it (its log, by user agent), in order. A
        write it refused (a candidate's Lease create that lost the race: 409) changed nothing."""
        names = {r.user_agent: r.name for r in self.operator_replicas}
        writes: dict[str, list[Any]] = {}
        for write in self.sandbox.kube.mutations:
            if write.user_agent in names and write.status < 400:
                writes.setdefault(names[write.user_agent], []).append(write)
        return writes

    # --- objects ------------------------------------------------------------------------------

    def point_at_sandbox(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        if obj["kind"] == "QueryNodePool":
            milvus = obj["spec"].setdefault("milvus", {})
            if milvus.get("uri") == "placeholder":
                milvus["uri"] = self.sandbox.milvus.uri
                milvus.setdefault("managementUri", self.sandbox.milvus.management_url)
        return obj

    async def apply(self, *objects: dict[str, Any]) -> list[str]:
        return await apply_manifests(self.api, [self.point_at_sandbox(o) for o in objects], NAMESPACE)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create and return the API server's answer; raises ApiException on admission errors."""
        obj = self.point_at_sandbox(obj)
        plural = POOL_PLURAL if obj["kind"] == "QueryNodePool" else RESOURCE_GROUP_PLURAL
        return dict(await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE, plural, obj))

    async def patch(self, kind_plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE, kind_plural, name, patch))

    async def delete(self, kind_plural: str, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE, kind_plural, name)

    async def get(self, kind_plural: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(await asyncio.to_thread(
                self.custom.get_namespaced_custom_object, API_GROUP, VERSION, NAMESPACE, kind_plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def condition(self, kind_plural: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = await self.get(kind_plural, name)
        for c in ((obj or {}).get("status") or {}).get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        return None

    async def true_condition(self, type_: str, reasons: tuple[str, ...] = (), kind_plural: str = POOL_PLURAL,
                             name: str = "milvus") -> dict[str, Any] | None:
        """The condition if its status is True (and its reason one of `reasons`, when given); a probe for
        `wait_for`."""
        found = await self.condition(kind_plural, name, type_)
        if found and found["status"] == "True" and (not reasons or found["reason"] in reasons):
            return found
        return None

    async def events(self, reason: str | None = None) -> list[Any]:
        events = (await asyncio.to_thread(self.core.list_namespaced_event, NAMESPACE)).items
        return [e for e in events if reason is None or e.reason == reason]

    # --- Milvus, read over real pymilvus ------------------------------------------------------

    def milvus_client(self) -> AsyncMilvusClient:
        """A pymilvus client with the sandbox's own token (when it requires one) and, over TLS, its generated CA
        and client certificate."""
        tls: dict[str, str] = {}
        if self.sandbox.config.tls != "off":
            files = {name: str(self.sandbox.tls_dir / f"{name}") for name in ("ca.pem", "client.pem", "client.key")}
            tls = {"ca_pem_path": files["ca.pem"], "client_pem_path": files["client.pem"],
                   "client_key_path": files["client.key"]}
        return AsyncMilvusClient(uri=self.sandbox.milvus.uri, token=self.sandbox.config.token or "", **tls)

    async def placement(self) -> dict[str, list[str]]:
        """Milvus group -> hostnames (pod names) of its nodes."""
        client = self.milvus_client()
        try:
            result = {}
            for name in await client.list_resource_groups(timeout=5):
                info = await client.describe_resource_group(name, timeout=5)
                result[name] = sorted(node.hostname for node in info.nodes)
            return result
        finally:
            await client.close()

    async def node_placement(self) -> dict[str, tuple[str, int]]:
        """Pod name (a node's hostname) -> (Milvus group, node id) of the pod's newest node in a group (a
        restarted process registers a new, higher id; the old one may linger until its session expires)."""
        client = self.milvus_client()
        try:
            result: dict[str, tuple[str, int]] = {}
            for name in await client.list_resource_groups(timeout=5):
                for node in (await client.describe_resource_group(name, timeout=5)).nodes:
                    known = result.get(node.hostname)
                    if known is None or node.node_id > known[1]:
                        result[node.hostname] = (name, node.node_id)
            return result
        finally:
            await client.close()

    async def placement_of(self, group: str, nodes: int) -> bool:
        """A probe: Milvus places exactly `nodes` nodes in `group`."""
        return len((await self.placement()).get(group, [])) == nodes

    async def group_config(self, name: str) -> Any:
        client = self.milvus_client()
        try:
            return (await client.describe_resource_group(name, timeout=5)).config
        finally:
            await client.close()

    async def pods(self) -> list[Any]:
        pods = await asyncio.to_thread(self.core.list_namespaced_pod, NAMESPACE, label_selector=self.shape.pods)
        return sorted(pods.items, key=lambda p: p.metadata.name)

    async def label_pod(self, name: str, labels: Mapping[str, str | None]) -> None:
        await asyncio.to_thread(self.core.patch_namespaced_pod, name, NAMESPACE, {"metadata": {"labels": dict(labels)}})

    async def replicas(self) -> int:
        """The workload's replicas as written (a Milvus: its query-node replicas)."""
        if self.shape.kind == "Milvus":
            milvus = await asyncio.to_thread(self.custom.get_namespaced_custom_object, "milvus.io", "v1beta1",
                                             NAMESPACE, "milvuses", self.shape.workload)
            return int(milvus["spec"]["components"]["queryNode"]["replicas"])
        read = (self.apps.read_namespaced_stateful_set if self.shape.kind == "StatefulSet"
                else self.apps.read_namespaced_deployment)
        return int((await asyncio.to_thread(read, self.shape.workload, NAMESPACE)).spec.replicas)

    def pool(self, **spec: Any) -> dict[str, Any]:
        """A pool naming this harness's workload."""
        return pool_manifest(scaleTargetRef=self.shape.scale_target(), **spec)

    async def converged(self, sizes: Mapping[str, int], replicas: int) -> bool:
        """Milvus's own placement matches `sizes`, the StatefulSet has `replicas` ready pods, each labelled
        with what Milvus says of it (`mislabelled` is empty), and the pool reports Ready."""
        placement = await self.placement()
        if any(len(placement.get(group, [])) != n for group, n in sizes.items()):
            return False
        pods = [p for p in await self.pods() if not p.metadata.deletion_timestamp]
        if len(pods) != replicas or await self.replicas() != replicas:
            return False
        if await self.mislabelled(pods):
            return False
        ready = await self.condition(POOL_PLURAL, "milvus", "Ready")
        return bool(ready and ready["status"] == "True")

    async def mislabelled(self, pods: list[Any] | None = None, pending_group: str = PENDING_GROUP) -> dict[str, str]:
        """Pod -> what is wrong with its milvusrg.io labels, compared by value with Milvus's own placement (asked
        over pymilvus): the group's label value and exact name, the newest node id, serving or pending."""
        placement = await self.node_placement()
        wrong = {}
        for pod in pods if pods is not None else await self.pods():
            name, labels = pod.metadata.name, pod.metadata.labels or {}
            if name not in placement:
                wrong[name] = "in no Milvus group"
                continue
            group, node_id = placement[name]
            expected = {LABEL_RESOURCE_GROUP: label_value(group), LABEL_NODE_ID: str(node_id),
                        LABEL_STATE: "pending" if group == pending_group else "serving"}
            actual = {key: labels.get(key) for key in expected}
            exact = (pod.metadata.annotations or {}).get(LABEL_RESOURCE_GROUP)
            if actual != expected or exact != group:
                wrong[name] = f"labels {actual} and annotation {exact!r}, Milvus says {expected} in {group!r}"
        return wrong

    async def wait_converged(self, sizes: Mapping[str, int], replicas: int, timeout: float = 30) -> None:
        async def probe() -> bool:
            return await self.converged(sizes, replicas)

        try:
            await wait_for(probe, timeout=timeout, interval=0.1, message=f"convergence to {sizes}, {replicas}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nplacement={await self.placement()}\nmislabelled={await self.mislabelled()}"
                                 f"\npool={await self.get(POOL_PLURAL, 'milvus')}") from None

    def kube_writes(self) -> int:
        """Write requests the API server has answered (on the real backend: from its audit log, without the
        control plane's own controllers, scheduler and kwok)."""
        return len(self.sandbox.kube.mutations)

    def operator_lists(self) -> list[str]:
        """The paths the operator's own client LISTed (kopf's watches and their initial LISTs left out)."""
        return [m.path for m in self.sandbox.kube.lists if m.user_agent.startswith(f"{OPERATOR_NAME}/")]

    def milvus_writes(self) -> int:
        return sum(self.sandbox.milvus.write_rpcs.values())

    async def resync_passes(self, count: int = 2, pool: str = "milvus") -> None:
        """Make the operator run `count` full passes now and wait until they are done."""
        assert self.reconciler is not None and self.scheduler is not None
        passes = self.reconciler.passes
        for _ in range(count):
            done = passes[(NAMESPACE, pool)]
            self.scheduler.trigger(NAMESPACE, pool)
            await wait_for(lambda done=done: passes[(NAMESPACE, pool)] > done, timeout=10, message="a reconcile pass")

    async def close(self) -> None:
        await self.stop_operator()
        for replica in self.operator_replicas:
            await self.kill_replica(replica)
            await replica.reconciler.close()
            if replica.elector is not None:
                replica.elector.close()
            replica.api.close()
        if self.reconciler is not None:
            await self.reconciler.close()
        if self.operator_api is not None:
            self.operator_api.close()
        self.api.close()


@contextlib.asynccontextmanager
async def operator_on_sandbox(sandbox_factory: Any, replicas: int = 1, metrics: OperatorMetrics | None = None,
                              shape: str = "statefulset", env: Mapping[str, str] | None = None,
                              operator: bool = True, **overrides: Any) -> AsyncIterator[OperatorHarness]:
    """A fresh sandbox with `replicas` query nodes (in `shape`; `env`: their containers' environment), the CRDs
    installed and the operator running (unless not `operator`: the test starts its own, e.g. `start_replicas`).

    A context manager inside the test rather than a fixture, so that the operator starts and stops in
    the test's own task (pytest-asyncio cancels tasks left behind by an async fixture's setup)."""
    sandbox = await sandbox_factory(**{"seed": 7, **overrides})
    harness = OperatorHarness(sandbox)
    try:
        await harness.install(replicas=replicas, env=env, shape=shape)
        if operator:
            await harness.start_operator(metrics)
        yield harness
    finally:
        await harness.close()

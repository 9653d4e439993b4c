"""Leader election on a `coordination.k8s.io/v1` Lease: of the operator's replicas, only the leader runs kopf.

The protocol is client-go's (`tools/leaderelection/leaderelection.go`), which controller-runtime uses:

- The Lease's spec is the record: `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`,
  `leaseTransitions`. Every write is a compare-and-swap on the Lease's resourceVersion (a PUT of the object as
  read, or a create when there is none), so of two replicas writing at once one gets 409 and stays a follower.
- A follower polls every retry period (jittered by up to 1.2x, as `wait.JitterUntil`) and takes the Lease over
  once it is expired: when the record has not changed for `leaseDurationSeconds` *as measured on the follower's
  own clock* since it last saw it change (timestamps written by other machines are never compared with ours),
  or at once when its holder is empty (released).
- The leader renews every retry period. A renewal that has not succeeded within the renew deadline (shorter
  than the lease duration) ends the leadership, as does seeing another holder in the Lease: the replica then
  stops everything at once (crash-only; its restart makes it a follower), before any follower can consider the
  Lease expired.
- A clean stop releases the Lease (empty holder, duration 1 s): the next replica takes over at its next poll
  instead of waiting for the expiry.

Every write to the Lease is one INFO line with its reason. A follower serves the liveness endpoint and the
metrics too (`milvusrg_leader` 0), so the kubelet keeps it and Prometheus sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import os
import random
import signal
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp.web
import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from milvus_rg_operator.adapters.kube import KubeError, new_api_client, request_json
from milvus_rg_operator.constants import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
)
from milvus_rg_operator.metrics import OperatorMetrics, serve
from milvus_rg_operator.runner import run_operator

logger = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go's leaderelection.JitterFactor
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime, as the Lease's acquireTime and renewTime are written


class LeadershipLost(Exception):
    """The Lease could not be renewed in time, or another replica holds it: this replica must stop acting."""


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    lease_duration: float = DEFAULT_LEASE_DURATION  # whole seconds: the Lease stores an integer
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        # client-go's NewLeaderElector checks: a leader must give up before a follower may take over.
        if self.lease_duration < 1 or self.lease_duration != int(self.lease_duration):
            raise ValueError(f"the lease duration must be a whole number of seconds >= 1, not {self.lease_duration}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(f"the renew deadline must be longer than {JITTER_FACTOR} x the retry period")
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"


def default_identity() -> str:
    """The pod's name (POD_NAME from the downward API, else HOSTNAME) and a random suffix: a restarted
    container in the same pod is a new candidate, never the holder its predecessor was."""
    pod = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{pod}_{uuid.uuid4().hex[:10]}"


def default_lease_namespace() -> str:
    """In a pod: its own namespace (the service account's); elsewhere the kubeconfig context's, else default."""
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    with contextlib.suppress(Exception):  # no kubeconfig, or one without a current context
        _, current = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig.split(os.pathsep)[0])
        return str(current["context"].get("namespace") or "default")
    return "default"


def micro_time(moment: datetime.datetime | None = None) -> str:
    return (moment or datetime.datetime.now(datetime.UTC)).strftime(MICRO_TIME)


@dataclass
class LeaderElector:
    """One candidate's view of the Lease. `acquire` returns once this replica leads; `hold` renews until it can
    no more (then raises LeadershipLost); `release` gives the Lease up."""

    api_client: ApiClient
    settings: LeaseSettings
    metrics: OperatorMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    leading: bool = False
    _lease: dict[str, Any] | None = None  # the Lease as last read or written
    _observed_spec: dict[str, Any] | None = None
    _observed_at: float = 0.0  # our clock when the record last changed (client-go's observedTime)
    _threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease"))

    @property
    def holder(self) -> str:
        """The holder of the Lease as last seen ("" when released or never seen)."""
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Poll until this replica holds the Lease (True), or until `stop` is set (False)."""
        logger.info("lease %s: candidate %s, waiting to lead", self.settings.lease, self.settings.identity)
        while True:
            timeout = self.settings.renew_deadline
            try:
                async with asyncio.timeout(timeout):
                    if await self.try_acquire_or_renew(timeout):
                        return True
            except KubeError as exc:
                if exc.conflict:  # another candidate wrote it between our read and our write
                    logger.info("lease %s: another candidate wrote it first", self.settings.lease)
                else:
                    logger.warning("lease %s: could not read or write it: %s", self.settings.lease, exc)
            except TimeoutError:
                logger.warning("lease %s: no answer within %g s", self.settings.lease, timeout)
            delay = self.settings.retry_period * (1 + random.random() * JITTER_FACTOR)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
                    return False

    async def hold(self) -> None:
        """Renew every retry period while leading; raise LeadershipLost once a renewal has not succeeded within
        the renew deadline, or at once when the Lease names another holder."""
        while True:
            await asyncio.sleep(self.settings.retry_period)
            deadline = self.clock() + self.settings.renew_deadline
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self._lose(f"not renewed within the {self.settings.renew_deadline:g} s renew deadline")
                try:
                    async with asyncio.timeout(remaining):
                        if await self.try_acquire_or_renew(remaining):
                            break
                except (KubeError, TimeoutError) as exc:
                    logger.warning("lease %s: renewal failed: %s", self.settings.lease, exc or "timed out")
                if self.holder not in ("", self.settings.identity):
                    self._lose(f"now held by {self.holder}")
                await asyncio.sleep(min(self.settings.retry_period, max(deadline - self.clock(), 0)))

    async def try_acquire_or_renew(self, timeout: float) -> bool:
        """One round of client-go's tryAcquireOrRenew: True when this replica holds the Lease afterwards."""
        now = micro_time()
        if self.leading and self._lease is not None:
            # The fast path of a leader: update the Lease as last written, without reading it first.
            with contextlib.suppress(KubeError):
                await self._update(self._renewed(self._lease, now), "renew", "keep leadership", timeout)
                return True
        lease = await self._get(timeout)
        if lease is None:
            spec = self._record(now, acquired=now, transitions=0)
            created = await self._write("create", "POST", self._collection(), timeout, body={
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.settings.name, "namespace": self.settings.namespace}, "spec": spec},
                reason="no lease yet")
            self._observe(created)
            self._start_leading()
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = self.holder
        if holder == self.settings.identity:
            await self._update(self._renewed(lease, now), "renew", "keep leadership", timeout)
            return True
        held_for = float(spec.get("leaseDurationSeconds") or 0)
        if self.leading:
            return False  # another replica holds it: `hold` stops this one
        if holder and self.clock() < self._observed_at + held_for:
            return False  # held, and renewed within its duration as far as this replica has seen
        reason = f"the lease of {holder} expired: unchanged for {held_for:g} s" if holder else "released"
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        body = {**lease, "spec": self._record(now, acquired=now, transitions=transitions)}
        await self._update(body, "acquire", reason, timeout)
        self._start_leading()
        return True

    async def release(self) -> None:
        """Give the Lease up (a clean stop): the holder emptied, as client-go's release does."""
        if not self.leading or self._lease is None:
            return
        now = micro_time()
        spec = {**(self._lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                "acquireTime": now, "renewTime": now}
        try:
            async with asyncio.timeout(self.settings.renew_deadline):
                await self._update({**self._lease, "spec": spec}, "release",
                                   "clean stop: the next replica need not wait for the lease to expire",
                                   self.settings.renew_deadline)
        except (KubeError, TimeoutError) as exc:
            logger.warning("lease %s: could not release it (it expires in %g s): %s", self.settings.lease,
                           self.settings.lease_duration, exc or "timed out")
        finally:
            self._stop_leading()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _record(self, now: str, *, acquired: str, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.settings.identity, "leaseDurationSeconds": int(self.settings.lease_duration),
                "acquireTime": acquired, "renewTime": now, "leaseTransitions": transitions}

    def _renewed(self, lease: dict[str, Any], now: str) -> dict[str, Any]:
        spec = lease.get("spec") or {}
        record = self._record(now, acquired=spec.get("acquireTime") or now,
                              transitions=int(spec.get("leaseTransitions") or 0))
        return {**lease, "spec": record}

    def _observe(self, lease: dict[str, Any]) -> None:
        self._lease = lease
        spec = dict(lease.get("spec") or {})
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self.clock()

    def _start_leading(self) -> None:
        if not self.leading:
            logger.info("lease %s: %s leads", self.settings.lease, self.settings.identity)
        self.leading = True
        if self.metrics is not None:
            self.metrics.leader.set(1)

    def _lose(self, why: str) -> NoReturn:
        self._stop_leading()
        logger.error("lease %s: %s stops leading: %s", self.settings.lease, self.settings.identity, why)
        raise LeadershipLost(f"lease {self.settings.lease} lost: {why}")

    def _stop_leading(self) -> None:
        self.leading = False
        if self.metrics is not None:
            self.metrics.leader.set(0)

    def _collection(self) -> str:
        return LEASES.format(namespace=urllib.parse.quote(self.settings.namespace, safe=""))

    def _path(self) -> str:
        return f"{self._collection()}/{urllib.parse.quote(self.settings.name, safe='')}"

    async def _get(self, timeout: float) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = await self._call("GET", self._path(), timeout)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return lease

    async def _update(self, body: dict[str, Any], verb: str, reason: str, timeout: float) -> None:
        """A PUT carrying the resourceVersion read: 409 when another replica wrote in between."""
        self._observe(await self._write(verb, "PUT", self._path(), timeout, body=body, reason=reason))

    async def _write(self, verb: str, method: str, path: str, timeout: float, *, body: dict[str, Any],
                     reason: str) -> dict[str, Any]:
        logger.info("lease %s: %s for %s (%s)", self.settings.lease, verb, self.settings.identity, reason)
        written: dict[str, Any] = await self._call(method, path, timeout, body=body)
        return written

    async def _call(self, method: str, path: str, timeout: float, body: Any = None) -> Any:
        call = functools.partial(request_json, self.api_client, method, path, body=body, timeout=timeout)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except ApiException as exc:
            raise KubeError(f"{method} {path}: HTTP {exc.status} {exc.reason}", exc.status or 0) from exc
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise KubeError(f"{method} {path}: Kubernetes API unreachable: {exc}") from exc


Operate = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""Runs the operator until the event it is given is set (`run_operator` with that event as its stop flag)."""


async def run_leading(elector: LeaderElector, operate: Operate, stop_flag: asyncio.Event | None = None) -> None:
    """Wait for the Lease, then run `operate` while holding it.

    - `stop_flag` set: `operate` is asked to stop (kopf's graceful stop) while the Lease is still renewed, then
      the Lease is released. Set while following: return at once.
    - `operate` returns or fails on its own (kopf stopped by a signal): the Lease is released, its error raised.
    - Leadership lost: `operate` is cancelled at once, no cleanup (as a crash), and LeadershipLost is raised.
    - Cancelled (the process killed): everything stops and the Lease is left to expire."""
    stop = stop_flag or asyncio.Event()
    if not await elector.acquire(stop):
        return
    operator_stop = asyncio.Event()
    holding = asyncio.create_task(elector.hold(), name="lease renewal")
    operating = asyncio.create_task(operate(operator_stop), name="operator")
    stopping = asyncio.create_task(stop.wait(), name="stop flag")
    try:
        await asyncio.wait({holding, operating, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            operator_stop.set()
            await asyncio.wait({holding, operating}, return_when=asyncio.FIRST_COMPLETED)
        if holding.done():
            operating.cancel()
            await asyncio.wait({operating}, timeout=elector.settings.renew_deadline)
            holding.result()  # LeadershipLost
        await elector.release()
        operating.result()
    finally:
        for task in (holding, operating, stopping):
            task.cancel()
        await asyncio.gather(holding, operating, stopping, return_exceptions=True)


async def serve_health(endpoint: str, status: Callable[[], Mapping[str, Any]]) -> aiohttp.web.AppRunner:
    """Answer GET on `endpoint` (e.g. http://0.0.0.0:8081/healthz) with 200 and `status()` as JSON while the
    event loop runs: kopf's liveness endpoint runs only in the leader, and a follower must stay alive and
    Ready (a rolling update waits for the new pods to be Ready)."""
    url = urllib.parse.urlsplit(endpoint)

    async def health(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(dict(status()))

    app = aiohttp.web.Application()
    app.router.add_get(url.path or "/", health)
    runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, url.hostname, url.port or 80).start()
    return runner


async def run_operator_elected(lease: LeaseSettings, *, namespace: str | None = None,
                               liveness_endpoint: str | None = None, metrics_port: int | None = None,
                               metrics_host: str = "0.0.0.0", stop_flag: asyncio.Event | None = None) -> None:
    """`milvus-rg-operator run` with leader election: the liveness endpoint and the metrics are served for the
    whole life of the process, leader or not; kopf runs only while this replica leads. SIGTERM or SIGINT before
    leading ends the wait; once leading, kopf handles them and the Lease is released after its graceful stop.
    Raises LeadershipLost when the Lease is lost: the caller exits, and Kubernetes restarts it as a follower."""
    stop = stop_flag or asyncio.Event()
    _stop_on_signals(stop)
    metrics = OperatorMetrics() if metrics_port else None
    metrics_server = serve(metrics, metrics_port, metrics_host) if metrics is not None and metrics_port else None
    if metrics_server is not None:
        logger.info("metrics at http://%s:%d/metrics", metrics_host, metrics_server.port)
    api_client = new_api_client()
    elector = LeaderElector(api_client, lease, metrics=metrics)
    health = None
    try:
        if liveness_endpoint:
            health = await serve_health(liveness_endpoint, lambda: {"leading": elector.leading})
        await run_leading(elector, functools.partial(_operate, namespace, metrics, stop), stop)
    finally:
        if health is not None:
            await health.cleanup()
        if metrics_server is not None:
            metrics_server.stop()
        elector.close()
        api_client.close()


def _stop_on_signals(stop: asyncio.Event) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread, or not on Unix
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)


async def _operate(namespace: str | None, metrics: OperatorMetrics | None, process_stop: asyncio.Event,
                   operator_stop: asyncio.Event) -> None:
    """kopf until `operator_stop`. kopf installs its own SIGINT and SIGTERM handlers as it starts; once it has,
    ours take the signals back, so that a signal stops kopf through its stop flag. Stopped by a signal of its own,
    kopf would wait 5 s for the task watching its stop flag (which it leaves running) before it returns, and the
    Lease would be released that much later."""
    started = asyncio.Event()

    async def take_signals_back() -> None:
        await started.wait()
        _stop_on_signals(process_stop)

    taking = asyncio.create_task(take_signals_back())
    try:
        await run_operator(namespace=namespace, stop_flag=operator_stop, ready_flag=started, metrics=metrics)
    finally:
        taking.cancel()

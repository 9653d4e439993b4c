"""A Milvus simulator: real gRPC (pymilvus' proto) + the proxy management HTTP API over one `ResourceManager`.

gRPC aio handlers, aiohttp handlers and the timing loop run in the event loop the simulator was started
in; the node lifecycle methods may also be called from other threads (every RM access holds
`controls.lock`).

Timing: the loop fires the resource manager's timed events when they fall due (resource-observer ticks
every `check_interval`, session expiries, balance steps, loads), and runs an observer pass soon after a
config change (create, update, drop), as querycoord's `ResourceObserver` wakes on `rgChangedNotifier`.
Node up/stop/crash/suspend never wake the observer. With a `ManualClock` nothing happens by itself:
`await advance(seconds)` moves time and fires what falls due, `tick()` runs an observer pass now.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from collections.abc import Callable, Iterable, Mapping

import grpc
from aiohttp import web

from milvus_rg_sandbox.tls import ServerTls

from .grpc_server import MilvusServicer, ServerControls, start_grpc_server
from .management import ManagementApi, build_app
from .resource_manager import (
    BALANCE_CHECK_INTERVAL,
    CHECK_NODE_IN_REPLICA_INTERVAL,
    DIST_PULL_INTERVAL,
    GRACEFUL_STOP_TIMEOUT,
    SESSION_TTL,
    ResourceManager,
)

DEFAULT_VERSION = "v2.5.16"
SEGMENT_TASK_TIMEOUT = 120.0  # queryCoord.segmentTaskTimeout: 120000 ms
STREAMING_NODE_PORT = 22222  # the Helm chart's streaming node port


def management_ssl_context(tls: ServerTls) -> ssl.SSLContext:
    """TLS for the management HTTP port; a client certificate from `tls.client_ca` is required when mutual."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(tls.client_ca)
    return context


class ManualClock:
    """A clock that moves only when told to (deterministic tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class MilvusSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        grpc_port: int = 19530,
        management_port: int = 9091,
        seed: int | None = None,
        check_interval: float = 10.0,
        session_ttl: float = SESSION_TTL,
        balance_delay: float = 1.0,
        load_time: float = 5.0,
        version: str = DEFAULT_VERSION,
        token: str | None = None,
        clock: Callable[[], float] | None = None,
        segments_per_collection: int = 4,
        channels_per_collection: int = 2,
        dist_pull_interval: float = DIST_PULL_INTERVAL,
        replica_check_interval: float = CHECK_NODE_IN_REPLICA_INTERVAL,
        graceful_stop_timeout: float = GRACEFUL_STOP_TIMEOUT,
        streaming_nodes: int | None = None,
        streaming_strict_rg_isolation: bool = False,
        tls: ServerTls | None = None,
        balance_check_interval: float = BALANCE_CHECK_INTERVAL,
        auto_balance: bool = True,
        segment_task_timeout: float = SEGMENT_TASK_TIMEOUT,
    ) -> None:
        """`streaming_nodes`: streaming nodes simulated in-process (no pod), from 2.6 (None: 1 on 2.6+, 0 before);
        pods running `milvus run streamingnode` add more through the wiring. `tls`: serve gRPC and the
        management API over TLS (mutual when it names a client CA)."""
        self.tls = tls
        self.host = host
        self.check_interval = check_interval
        self.clock: Callable[[], float] = clock or time.monotonic
        self.manual_clock = clock if isinstance(clock, ManualClock) else None
        self.rm = ResourceManager(
            seed=seed, version=version, session_ttl=session_ttl, balance_delay=balance_delay, load_time=load_time,
            check_interval=check_interval, clock=self.clock, num_channels=channels_per_collection,
            num_segments=segments_per_collection, dist_pull_interval=dist_pull_interval,
            check_node_in_replica_interval=replica_check_interval, graceful_stop_timeout=graceful_stop_timeout,
            streaming_strict_rg_isolation=streaming_strict_rg_isolation,
            balance_check_interval=balance_check_interval, auto_balance=auto_balance,
        )
        if streaming_nodes is None:
            streaming_nodes = 1 if self.rm.milvus_version.streaming else 0
        for index in range(streaming_nodes):
            if self.rm.add_streaming_node(f"streamingnode-{index}", f"127.0.0.1:{STREAMING_NODE_PORT + index}") is None:
                raise ValueError(f"Milvus {version} has no streaming nodes (they serve channels from 2.6)")
        self.controls = ServerControls(version=version, token=token, on_change=self._wake,
                                       segment_task_timeout=segment_task_timeout)
        self._requested_ports = (grpc_port, management_port)
        self.grpc_port = grpc_port
        self.management_port = management_port
        self._grpc_server: grpc.aio.Server | None = None
        self._http_runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        grpc_port, management_port = self._requested_ports
        servicer = MilvusServicer(self.rm, self.controls)
        self._grpc_server, self.grpc_port = await start_grpc_server(servicer, self.host, grpc_port, self.tls)
        self._http_runner = web.AppRunner(build_app(ManagementApi(self.rm, self.controls)))
        await self._http_runner.setup()
        ssl_context = None if self.tls is None else management_ssl_context(self.tls)
        site = web.TCPSite(self._http_runner, self.host, management_port, ssl_context=ssl_context)
        await site.start()
        self.management_port = int(self._http_runner.addresses[0][1])
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_task = asyncio.create_task(self._timing_loop(), name="milvus-sim-timing")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._grpc_server is not None:
            try:
                await self._grpc_server.stop(grace=0.2)
            except asyncio.CancelledError:
                # grpc.aio re-raises the cancellation of a client call that was abandoned mid-flight
                # (a client cancelled by its own timeout); only a cancellation of this task must propagate.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            self._grpc_server = None
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None

    async def __aenter__(self) -> MilvusSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.host}:{self.grpc_port}"

    @property
    def management_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.management_port}"

    @property
    def write_rpcs(self) -> collections.Counter[str]:
        return self.controls.write_rpcs

    # ------------------------------------------------------------------ timing
    def _wake(self) -> None:
        """A config change (observer pass due) or a new timed event: let the loop look again."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _next_wait(self) -> float | None:
        if self.manual_clock is not None:
            return None  # manual time: only `advance` moves it
        deadline = self.rm.next_timed_event()
        return None if deadline is None else max(0.0, deadline - self.clock())

    async def _timing_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wait()):
                    await self._wakeup.wait()
            self._wakeup.clear()
            with self.controls.lock:
                if self.rm.rg_changed:
                    self.rm.recover()  # resource_observer.go: woken by rgChangedNotifier
                else:
                    self.rm.advance()

    def tick(self) -> bool:
        """Run a resource-observer pass now, as when the check interval elapses; True if anything changed."""
        with self.controls.lock:
            return self.rm.recover()

    run_observer_now = tick

    async def recover_now(self) -> bool:
        """`tick()` for async callers."""
        return self.tick()

    async def advance(self, seconds: float) -> None:
        """Manual clock only: move time forward and fire every event that falls due, in order."""
        if self.manual_clock is None:
            raise RuntimeError("advance() needs a simulator built with clock=ManualClock()")
        with self.controls.lock:
            self.manual_clock.now += seconds
            self.rm.advance()

    # ------------------------------------------------------------------ fault injection
    def set_unavailable(self, flag: bool) -> None:
        self.controls.unavailable = flag

    def set_management_enabled(self, flag: bool) -> None:
        self.controls.management_enabled = flag

    def restart_querycoord(self, failed_pulls: Mapping[int, float] | None = None) -> None:
        """The query coordinator restarts: suspension and balance suspension are forgotten, suspended nodes
        go back into groups (CheckNodesInResourceGroup). `failed_pulls` {node id: seconds}: its pulls of
        those nodes' distributions fail that long, so it reports nothing on them meanwhile (see
        `ResourceManager.restart_querycoord`)."""
        with self.controls.lock:
            self.rm.restart_querycoord(failed_pulls)
        self._wake()

    # ------------------------------------------------------------------ data
    def load_collection(
        self, name: str, replica_number: int = 1, resource_groups: Iterable[str] = (),
        segments: int | None = None, channels: int | None = None,
    ) -> int:
        """Create `name` (with `segments` sealed segments and `channels` shards) if needed and load it with
        `replica_number` replicas into `resource_groups`; returns the collection id. Raises MilvusError
        like the LoadCollection RPC."""
        with self.controls.lock:
            collection_id = self.rm.create_collection(name, segments=segments, channels=channels)
            self.rm.load_collection(name, replica_number, resource_groups)
        self._wake()
        return collection_id

    def create_collection(self, name: str, segments: int | None = None, channels: int | None = None) -> int:
        """Create `name` (released) with `segments` sealed segments and `channels` shards; returns its id."""
        with self.controls.lock:
            return self.rm.create_collection(name, segments=segments, channels=channels)

    def unserved_segment_seconds(self) -> float:
        with self.controls.lock:
            return self.rm.unserved_segment_seconds()

    def unserved_channel_seconds(self) -> float:
        with self.controls.lock:
            return self.rm.unserved_channel_seconds()

    def unserved_segments(self) -> list[tuple[str, int, int]]:
        with self.controls.lock:
            return self.rm.unserved_segments()

    def segments_served_nowhere(self) -> list[tuple[str, int]]:
        with self.controls.lock:
            self.rm.advance()
            return self.rm.segments_served_nowhere()

    def held_by(self, node_id: int) -> tuple[list[str], list[int]]:
        """(channels, segments) the node's process really holds, whatever querycoord's distribution says."""
        with self.controls.lock:
            return self.rm.held_by(node_id)

    # ------------------------------------------------------------------ node lifecycle
    def add_node(self, hostname: str, address: str, env: Mapping[str, str] | None = None) -> int:
        with self.controls.lock:
            node_id = self.rm.add_node(hostname, address, env)
        self._wake()
        return node_id

    def add_streaming_node(self, hostname: str, address: str, env: Mapping[str, str] | None = None) -> int | None:
        """A streaming node (2.6+) with its embedded query node; None before 2.6 (nothing registers)."""
        with self.controls.lock:
            node_id = self.rm.add_streaming_node(hostname, address, env)
        self._wake()
        return node_id

    def stop_node(self, node_id: int) -> None:
        with self.controls.lock:
            self.rm.stop_node(node_id)
        self._wake()

    def crash_node(self, node_id: int) -> None:
        with self.controls.lock:
            self.rm.crash_node(node_id)
        self._wake()

    def suspend_node(self, node_id: int) -> None:
        with self.controls.lock:
            self.rm.suspend_node(node_id)
        self._wake()

    def resume_node(self, node_id: int) -> None:
        with self.controls.lock:
            self.rm.resume_node(node_id)
        self._wake()

    def node_gone(self, node_id: int) -> bool:
        with self.controls.lock:
            return self.rm.node_gone(node_id)

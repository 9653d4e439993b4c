"""A Milvus >= 2.4 simulator: real gRPC (pymilvus' proto) + the proxy management HTTP API.

All state lives in one `ResourceManager`. gRPC aio handlers, aiohttp handlers and the recovery
loop run in the event loop the simulator was started in; the node lifecycle methods may also be
called from other threads (every RM access holds `controls.lock`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Mapping

import grpc
from aiohttp import web

from .grpc_server import MilvusServicer, ServerControls, start_grpc_server
from .management import ManagementApi, build_app
from .resource_manager import ResourceManager


class MilvusSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        grpc_port: int = 19530,
        management_port: int = 9091,
        seed: int | None = None,
        check_interval: float = 10.0,
        session_ttl: float = 30.0,
        balance_delay: float = 0.0,
        version: str = "v2.5.4",
        token: str | None = None,
    ) -> None:
        self.host = host
        self.check_interval = check_interval
        self.rm = ResourceManager(
            seed=seed, version=version, session_ttl=session_ttl, balance_delay=balance_delay
        )
        self.controls = ServerControls(version=version, token=token, on_change=self._wake)
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
        self._grpc_server, self.grpc_port = await start_grpc_server(servicer, self.host, grpc_port)
        self._http_runner = web.AppRunner(build_app(ManagementApi(self.rm, self.controls)))
        await self._http_runner.setup()
        site = web.TCPSite(self._http_runner, self.host, management_port)
        await site.start()
        self.management_port = int(self._http_runner.addresses[0][1])
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_task = asyncio.create_task(self._recovery_loop(), name="milvus-sim-recovery")

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
    def uri(self) -> str:
        return f"http://{self.host}:{self.grpc_port}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    @property
    def write_rpcs(self) -> collections.Counter[str]:
        return self.controls.write_rpcs

    # ------------------------------------------------------------------ recovery loop
    def _wake(self) -> None:
        """Config or node change: querycoord's observers are notified and run soon (asynchronously)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _next_wait(self) -> float:
        """Sleep until the interval, or sooner when a session TTL or balance delay falls due."""
        deadline = self.rm.next_timed_event()
        if deadline is None:
            return self.check_interval
        return max(0.0, min(self.check_interval, deadline - time.monotonic()))

    async def _recovery_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._next_wait())
            self._wakeup.clear()
            with self.controls.lock:
                self.rm.recover()

    async def recover_now(self) -> bool:
        """Run one loop pass now; True if it changed anything."""
        with self.controls.lock:
            return self.rm.recover()

    # ------------------------------------------------------------------ fault injection
    def set_unavailable(self, flag: bool) -> None:
        self.controls.unavailable = flag

    def set_management_enabled(self, flag: bool) -> None:
        self.controls.management_enabled = flag

    # ------------------------------------------------------------------ node lifecycle
    def add_node(self, hostname: str, address: str, env: Mapping[str, str] | None = None) -> int:
        with self.controls.lock:
            node_id = self.rm.add_node(hostname, address, env)
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

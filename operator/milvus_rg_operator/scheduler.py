"""One worker per pool: reconciles run one at a time per pool, triggers coalesce, failures back off.

All groups of a pool are planned together (a Milvus update is one atomic batch), so the pool is the
unit of work. Watch events only *trigger*; the worker re-reads everything it needs, so a burst of
events costs one pass and a missed event is repaired by the periodic resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PoolKey = tuple[str, str]  # (namespace, name)
# Long enough for a `kubectl apply` of several objects to land in one pass, short enough to add little to
# the latency from a change to Milvus (bench/latency.py).
BATCH_WINDOW = 0.05


@dataclass(frozen=True)
class PassOutcome:
    """What a reconcile pass tells the scheduler: come back after `requeue_after`, or stop (pool gone)."""

    requeue_after: float
    pool_gone: bool = False


ReconcileFn = Callable[[str, str], Awaitable[PassOutcome]]


class PoolScheduler:
    def __init__(self, reconcile: ReconcileFn, *, batch_window: float = BATCH_WINDOW,
                 initial_backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self._reconcile = reconcile
        self._batch_window = batch_window
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._triggers: dict[PoolKey, asyncio.Event] = {}
        self._workers: dict[PoolKey, asyncio.Task[None]] = {}
        self._stopping = False

    def trigger(self, namespace: str, name: str) -> None:
        if self._stopping or not name:
            return
        key = (namespace, name)
        event = self._triggers.setdefault(key, asyncio.Event())
        event.set()
        worker = self._workers.get(key)
        if worker is None or worker.done():
            self._workers[key] = asyncio.create_task(self._work(key, event), name=f"pool {namespace}/{name}")

    @property
    def pools(self) -> list[PoolKey]:
        return [key for key, task in self._workers.items() if not task.done()]

    async def _work(self, key: PoolKey, event: asyncio.Event) -> None:
        backoff = self._initial_backoff
        while not self._stopping:
            await asyncio.sleep(self._batch_window)  # let a burst of watch events collapse into one pass
            event.clear()
            try:
                outcome = await self._reconcile(*key)
                backoff = self._initial_backoff
                delay = outcome.requeue_after
                if outcome.pool_gone:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reconcile of pool %s/%s failed; retrying in %.0fs", *key, backoff)
                delay = backoff
                backoff = min(backoff * 2, self._max_backoff)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await event.wait()

    async def stop(self) -> None:
        self._stopping = True
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

"""Waiting helpers for tests: poll a condition with a deadline, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def wait_for(probe: Callable[[], Awaitable[T]], timeout: float = ..., interval: float = ...,
                   message: str = ...) -> T: ...


@overload
async def wait_for(probe: Callable[[], T], timeout: float = ..., interval: float = ...,
                   message: str = ...) -> T: ...


async def wait_for(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Return the first truthy value of `probe()`; fail the test with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        result = probe()
        value = await result if asyncio.iscoroutine(result) else result
        if value:
            return value  # type: ignore[return-value]
        last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")
        await asyncio.sleep(interval)

"""pytest fixtures: a fresh sandbox per test, on OS-assigned ports, with fast timings.

Register with `pytest_plugins = ["milvus_rg_sandbox.pytest_plugin"]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

SandboxFactory = Callable[..., Awaitable[Sandbox]]

FAST_TIMINGS: dict[str, Any] = {"pod_start_delay": 0.05, "check_interval": 0.2, "session_ttl": 1.0}


@pytest.fixture
async def sandbox_factory(tmp_path: Path) -> AsyncIterator[SandboxFactory]:
    """`await sandbox_factory(**SandboxConfig overrides)` -> a started Sandbox, stopped after the test."""
    started: list[Sandbox] = []

    async def make(**overrides: Any) -> Sandbox:
        settings: dict[str, Any] = {"kube_port": 0, "milvus_port": 0, "management_port": 0,
                                    "workdir": tmp_path / f"sandbox-{len(started)}", **FAST_TIMINGS}
        settings.update(overrides)
        sandbox = Sandbox(SandboxConfig(**settings))
        await sandbox.start()
        started.append(sandbox)
        return sandbox

    try:
        yield make
    finally:
        for sandbox in reversed(started):
            await sandbox.stop()


@pytest.fixture
async def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A started sandbox (ports 0, tmp workdir, fast timings)."""
    return await sandbox_factory()

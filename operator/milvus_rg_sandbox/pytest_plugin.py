"""pytest fixtures: a fresh sandbox per test, on OS-assigned ports, with fast timings.

Register with `pytest_plugins = ["milvus_rg_sandbox.pytest_plugin"]`.

Kubernetes backends: the `kube_backend` fixture says which one `sandbox_factory` starts ("embedded", the
default, or "real": etcd + kube-apiserver + controllers + kwok, docs/real-kubernetes.md). A test (or module)
marked `kube_backends` runs once per backend chosen with `--kube-backend=embedded|real|both` (default: both).
The real backend is skipped when its binaries are not built, except under CI (`CI` set), where that fails.
A fault the real cluster cannot express (`EmbeddedOnly`) skips that test's real run with the reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_sandbox.realkube import ControlPlaneUnavailable, EmbeddedOnly, RealControlPlane, find_binaries
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig

SandboxFactory = Callable[..., Awaitable[Sandbox]]

# Milvus's timing scaled down by 50: check interval 10 s, session TTL 30 s (-> 0.6), ~1 s per moved item, ~5 s load,
# distribution pulls every 0.5 s, replica observer every 60 s, graceful stop timeout 1800 s, balance checker every
# 3 s, segment task timeout 120 s.
FAST_TIMINGS: dict[str, Any] = {"pod_start_delay": 0.05, "check_interval": 0.2, "session_ttl": 0.6,
                                "balance_delay": 0.02, "load_time": 0.1, "dist_pull_interval": 0.01,
                                "replica_check_interval": 1.2, "graceful_stop_timeout": 36.0,
                                "balance_check_interval": 0.06, "segment_task_timeout": 2.4}
# The HPA controller every second, scaling down as soon as a metric asks (defaults 15 s, a 5 min window).
FAST_HPA_SYNC_PERIOD = 1.0
FAST_HPA_DOWNSCALE_STABILIZATION = 0.0
BACKENDS = ("embedded", "real")
MARKER = "kube_backends"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kube-backend", choices=(*BACKENDS, "both"), default="both",
                     help="Kubernetes backend(s) for tests marked kube_backends (default: both)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: run once per Kubernetes backend (--kube-backend)")
    config.addinivalue_line("markers", "real_kube: needs the real control plane (skipped without its build)")
    config.addinivalue_line("markers", "embedded_only(reason): the test needs the embedded API's internals")
    # The real API server's certificate is self-signed and its kubeconfig skips verification, like the
    # embedded sandbox's plain HTTP: the kubernetes client's warning about it says nothing new.
    config.addinivalue_line("filterwarnings", "ignore:Unverified HTTPS request")


def selected_backends(config: pytest.Config) -> tuple[str, ...]:
    choice = str(config.getoption("--kube-backend"))
    return BACKENDS if choice == "both" else (choice,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kube_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(MARKER):
        metafunc.parametrize("kube_backend", selected_backends(metafunc.config), indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except EmbeddedOnly as error:
        pytest.skip(f"embedded sandbox only: {error}")


def require_real_kubernetes() -> Path:
    """The control plane's bin directory, or skip (fail under CI) with the reason."""
    try:
        return find_binaries()
    except ControlPlaneUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real Kubernetes tier: {error}")
        pytest.skip(str(error))


@pytest.fixture
def kube_backend(request: pytest.FixtureRequest) -> str:
    """"embedded" unless the test is parametrized over backends (marker `kube_backends`)."""
    backend = str(getattr(request, "param", "embedded"))
    if backend == "real":
        require_real_kubernetes()
    return backend


@pytest.fixture(scope="session")
def real_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealControlPlane]:
    """One real control plane for the session (started on first use); sandboxes borrow it and reset it.

    A plain fixture, so that async fixtures can ask for it on demand (`request.getfixturevalue`): it starts
    the control plane in a thread with a loop of its own (its processes are bound to no loop; its client
    session is closed there and opens again in the test's loop) and ends the processes by pid."""
    control_plane = RealControlPlane(workdir=tmp_path_factory.mktemp("control-plane"),
                                     bin_dir=require_real_kubernetes(), hpa_sync_period=FAST_HPA_SYNC_PERIOD,
                                     hpa_downscale_stabilization=FAST_HPA_DOWNSCALE_STABILIZATION)

    async def start() -> None:
        try:
            await control_plane.start()
        finally:
            await control_plane.client.close()

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, start()).result()
    try:
        yield control_plane
    finally:
        control_plane.stop_processes()


@pytest.fixture
async def sandbox_factory(tmp_path: Path, kube_backend: str,
                          request: pytest.FixtureRequest) -> AsyncIterator[SandboxFactory]:
    """`await sandbox_factory(**SandboxConfig overrides)` -> a started Sandbox, stopped after the test.
    On the real backend the sandboxes borrow the session's control plane (reset when they stop)."""
    started: list[Sandbox] = []
    shared = request.getfixturevalue("real_control_plane") if kube_backend == "real" else None

    async def make(**overrides: Any) -> Sandbox:
        if shared is not None:  # one cluster: the sandbox made before gives it back (reset) first
            for previous in started:
                await previous.stop()
        settings: dict[str, Any] = {"kube_port": 0, "milvus_port": 0, "management_port": 0,
                                    "workdir": tmp_path / f"sandbox-{len(started)}", "kubernetes": kube_backend,
                                    **FAST_TIMINGS}
        settings.update(overrides)
        sandbox = Sandbox(SandboxConfig(**settings), control_plane=shared)
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

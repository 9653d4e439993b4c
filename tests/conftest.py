"""Shared pytest setup: the sandbox fixtures (a fresh Kubernetes API + Milvus simulator per test).

The integration suite runs once per Kubernetes backend (`--kube-backend=embedded|real|both`, default both):
its modules get the `kube_backends` marker here, before their tests are generated."""

from pathlib import Path

import pytest

pytest_plugins = ["milvus_rg_sandbox.pytest_plugin"]

BOTH_BACKENDS = (Path(__file__).parent / "integration",)


def pytest_collectstart(collector: pytest.Collector) -> None:
    if isinstance(collector, pytest.Module) and any(root in collector.path.parents for root in BOTH_BACKENDS):
        collector.add_marker("kube_backends")  # milvus_rg_sandbox.pytest_plugin.MARKER

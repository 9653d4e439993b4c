"""Shared pytest setup: the sandbox fixtures (a fresh Kubernetes API + Milvus simulator per test).

The integration suite runs once per Kubernetes backend (`--kube-backend=embedded|real|both`, default both):
its modules get the `kube_backends` marker here, before their tests are generated."""

from pathlib import Path

import pytest

pytest_plugins = ["milvus_rg_sandbox.pytest_plugin", "tests.expected_skips"]

BOTH_BACKENDS = (Path(__file__).parent / "integration",)


def pytest_collectstart(collector: pytest.Collector) -> None:
    if isinstance(collector, pytest.Module) and any(root in collector.path.parents for root in BOTH_BACKENDS):
        collector.add_marker("kube_backends")  # milvus_rg_sandbox.pytest_plugin.MARKER


def uses_the_real_control_plane(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return (callspec is not None and callspec.params.get("kube_backend") == "real") or (
        "real_control_plane" in getattr(item, "fixturenames", ()))


@pytest.hookimpl(trylast=True)  # after tests/realmilvus/conftest.py has marked its tests
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`-n`, `--dist loadgroup`): every test on the session's real control plane goes to one
    worker, so it is built and started once; the real Milvus tier likewise. Other tests spread."""
    for item in items:
        if uses_the_real_control_plane(item):
            item.add_marker(pytest.mark.xdist_group("real-control-plane"))
        elif item.get_closest_marker("real_milvus"):
            item.add_marker(pytest.mark.xdist_group("real-milvus"))

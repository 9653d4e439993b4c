"""kubectl (.tools/bin/kubectl, else the machine's) against the sandbox API server, with the kubeconfig it writes."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_sandbox.kube import KubeApiServer

from .kube_helpers import WIDGET_SCHEMA, crd_manifest, kube

__all__ = ["kube"]  # fixtures imported for pytest

# The repo's own kubectl (scripts/setup.sh takes it from the helm wheel) before the machine's.
TOOLS_KUBECTL = Path(__file__).parents[2] / ".tools" / "bin" / "kubectl"
KUBECTL = str(TOOLS_KUBECTL) if TOOLS_KUBECTL.exists() else shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


class Kubectl:
    def __init__(self, server: Any, workdir: Path) -> None:
        """`server`: anything with `write_kubeconfig(path)` (the embedded or the real API server)."""
        self.kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
        self.cache = workdir / "cache"

    async def run(self, *args: str, stdin: Any = None, expect_ok: bool = True) -> str:
        process = await asyncio.create_subprocess_exec(
            KUBECTL, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        payload = None if stdin is None else json.dumps(stdin).encode()
        try:
            async with asyncio.timeout(30):
                out, err = await process.communicate(payload)
        except TimeoutError:
            process.kill()
            raise
        if expect_ok:
            assert process.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
        else:
            assert process.returncode != 0, f"kubectl {' '.join(args)} unexpectedly succeeded"
            return err.decode()
        return out.decode()


@pytest.fixture
def kubectl(kube: KubeApiServer, tmp_path: Path) -> Kubectl:
    return Kubectl(kube, tmp_path)


def widget(name: str, replicas: int, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Widget",
            "metadata": {"name": name, "labels": labels}, "spec": {"replicas": replicas}}


async def test_apply_get_scale_patch_wait_delete_custom_resources(kubectl: Kubectl, kube: KubeApiServer) -> None:
    assert "created" in await kubectl.run("apply", "-f", "-", stdin=crd_manifest(WIDGET_SCHEMA))
    await kubectl.run("wait", "--for=condition=Established", "crd/widgets.example.io")
    assert "created" in await kubectl.run("apply", "-f", "-", stdin=widget("w1", 1, team="a"))
    assert "created" in await kubectl.run("apply", "-f", "-", stdin=widget("w2", 2, team="b"))
    assert "configured" in await kubectl.run("apply", "-f", "-", stdin=widget("w1", 3, team="a"))
    stored = await kube.store.get("example.io/v1/widgets", "default", "w1")
    assert stored is not None and stored["spec"] == {"replicas": 3, "size": "small"}

    by_short_name = await kubectl.run("get", "wdg", "-o", "name")
    assert by_short_name.split() == ["widget.example.io/w1", "widget.example.io/w2"]
    by_category = await kubectl.run("get", "examples", "-l", "team=b", "-o", "name")
    assert by_category.split() == ["widget.example.io/w2"]

    await kubectl.run("scale", "widget/w2", "--replicas=5")
    assert await kubectl.run("get", "widget", "w2", "-o", "jsonpath={.spec.replicas}") == "5"
    await kubectl.run("patch", "widget", "w2", "--type=merge", "-p", '{"spec":{"size":"large"}}')
    await kubectl.run("wait", "--for=jsonpath={.spec.size}=large", "widget/w2", "--timeout=5s")

    waiting = asyncio.create_task(
        kubectl.run("wait", "--for=jsonpath={.status.replicas}=5", "widget/w2", "--timeout=10s"))
    await kube.store.patch("example.io/v1/widgets", "default", "w2", {"status": {"replicas": 5}}, "status")
    assert "condition met" in await waiting

    await kubectl.run("delete", "widget", "w1")
    assert await kube.store.get("example.io/v1/widgets", "default", "w1") is None


async def test_apply_rejects_invalid_and_unknown_fields(kubectl: Kubectl) -> None:
    await kubectl.run("apply", "-f", "-", stdin=crd_manifest(WIDGET_SCHEMA))
    await kubectl.run("wait", "--for=condition=Established", "crd/widgets.example.io")
    invalid = await kubectl.run("apply", "-f", "-", stdin=widget("w", -1), expect_ok=False)
    assert "spec.replicas" in invalid
    unknown = widget("w", 1)
    unknown["spec"]["colour"] = "red"
    assert 'unknown field "spec.colour"' in await kubectl.run("apply", "-f", "-", stdin=unknown, expect_ok=False)


async def test_apply_a_list_document(kubectl: Kubectl) -> None:
    """`kubectl apply -f` of a `kind: List` (what `kubectl get -o json` prints) applies every item, and
    the server still validates each one."""
    await kubectl.run("apply", "-f", "-", stdin=crd_manifest(WIDGET_SCHEMA))
    await kubectl.run("wait", "--for=condition=Established", "crd/widgets.example.io")
    listed = {"apiVersion": "v1", "kind": "List", "items": [widget("w1", 1), widget("w2", 2)]}
    assert (await kubectl.run("apply", "-f", "-", stdin=listed)).split("\n")[:2] == [
        "widget.example.io/w1 created", "widget.example.io/w2 created"]
    assert (await kubectl.run("get", "widgets", "-o", "name")).split() == [
        "widget.example.io/w1", "widget.example.io/w2"]
    invalid = {"apiVersion": "v1", "kind": "List", "items": [widget("w3", -1)]}
    assert "spec.replicas" in await kubectl.run("apply", "-f", "-", stdin=invalid, expect_ok=False)


async def test_statefulset_scale_and_label_selection(kubectl: Kubectl, kube: KubeApiServer) -> None:
    labels = {"app": "querynode"}
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "qn", "labels": labels},
        "spec": {"replicas": 1, "serviceName": "qn", "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "querynode", "image": "milvus"}]}}},
    }
    await kubectl.run("apply", "-f", "-", stdin=statefulset)
    await kubectl.run("scale", "statefulset/qn", "--replicas=3")
    stored = await kube.store.get("apps/v1/statefulsets", "default", "qn")
    assert stored is not None and stored["spec"]["replicas"] == 3
    assert (await kubectl.run("get", "sts", "-l", "app=querynode", "-o", "name")).split() == ["statefulset.apps/qn"]
    assert (await kubectl.run("get", "sts", "-l", "app!=querynode", "-o", "name")).split() == []
    await kubectl.run("delete", "statefulset", "qn")
    assert await kube.store.get("apps/v1/statefulsets", "default", "qn") is None

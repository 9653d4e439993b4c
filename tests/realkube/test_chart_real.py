"""`helm install` of the chart into the real API server, then the operator as a local process with a token of
the chart's ServiceAccount: every verb the chart's RBAC forgot is refused by the real RBAC authorizer, and the
operator then fails to converge (and logs the 403). Milvus serves mutual TLS here: the operator reads its CA and
client certificate from the Secrets the pool names, under the same RBAC."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_sandbox.realkube import KubeRestClient
from milvus_rg_sandbox.realkube.control_plane import kubeconfig_document
from milvus_rg_sandbox.sandbox import Sandbox
from milvus_rg_sandbox.workloads import STATEFULSETS
from tests.integration.harness import group_manifest, pool_manifest
from tests.support import wait_for

from .conftest import wait_ready_pods

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "milvus-rg-operator"
TOOLS = ROOT / ".tools" / "bin"
RELEASE = "milvus-rg-operator"  # also the chart's fullname and ServiceAccount name
POOLS = "milvusrg.io/v1alpha1/querynodepools"
SECRETS = "v1/secrets"
GROUPS = "milvusrg.io/v1alpha1/resourcegroups"
LEASES = "coordination.k8s.io/v1/leases"

pytestmark = [
    pytest.mark.parametrize("kube_backend", ["real"], indirect=True),
    pytest.mark.skipif(not (TOOLS / "helm").exists() or not (TOOLS / "kubectl").exists(),
                       reason="helm and kubectl come from scripts/setup.sh"),
]


def chart_args(args: list[str], *dropped: str) -> list[str]:
    """`args` without the options named in `dropped` and their values."""
    kept: list[str] = []
    for arg in args:
        if kept and kept[-1] in dropped:
            kept.pop()
        else:
            kept.append(arg)
    return kept


async def run(*command: str, kubeconfig: Path, timeout: float = 120) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": str(kubeconfig.parent / "helm"),
             "HELM_CONFIG_HOME": str(kubeconfig.parent / "helm"), "HELM_DATA_HOME": str(kubeconfig.parent / "helm")})
    async with asyncio.timeout(timeout):
        out, _ = await process.communicate()
    assert process.returncode == 0, f"{' '.join(command)} failed:\n{out.decode()}"
    return out.decode()


@pytest.mark.parametrize("watch_namespace", ["", "default"], ids=["cluster-wide", "namespaced"])
async def test_chart_installs_and_its_rbac_is_enough_for_the_operator(
        sandbox_factory: Any, tmp_path: Path, watch_namespace: str) -> None:
    sandbox: Sandbox = await sandbox_factory(tls="self-signed-mutual")
    admin = sandbox.kubeconfig_path
    api: KubeRestClient = sandbox.kube.store
    namespace = f"ops-{'ns' if watch_namespace else 'all'}"  # a namespace being deleted cannot be reused at once
    out = await run(str(TOOLS / "helm"), "install", RELEASE, str(CHART), "-n", namespace, "--create-namespace",
                    "--set", f"watchNamespace={watch_namespace}", "--wait", "--timeout", "90s", kubeconfig=admin)
    assert "STATUS: deployed" in out
    pods = await wait_ready_pods(api, namespace, f"app.kubernetes.io/instance={RELEASE}", 2)  # Running under kwok

    token = (await run(str(TOOLS / "kubectl"), "create", "token", RELEASE, "-n", namespace, "--duration=1h",
                       kubeconfig=admin)).strip()
    as_operator = tmp_path / "operator.kubeconfig"
    as_operator.write_text(json.dumps(kubeconfig_document(sandbox.kube.url, token, "default")))

    await sandbox.create_query_node_statefulset(replicas=1)
    await wait_for(lambda: len(sandbox.milvus.rm.nodes) == 1, timeout=30, message="1 query node in Milvus")
    log = tmp_path / "operator.log"
    # The chart's own command line (leader election on the Lease in the release's namespace included), but
    # with the metrics off and no health endpoint: ports of this machine.
    deployment = await api.get("apps/v1/deployments", namespace, RELEASE)
    assert deployment is not None
    args = chart_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"], "--liveness", "--metrics-port")
    command = [sys.executable, "-m", "milvus_rg_operator.cli", *args, "--metrics-port", "0"]
    with log.open("wb") as sink:
        operator = await asyncio.create_subprocess_exec(
            *command, stdout=sink, stderr=sink,
            env={**os.environ, "KUBECONFIG": str(as_operator), "POD_NAME": pods[0]["metadata"]["name"]})
    try:
        tls = sandbox.tls_dir
        for name, data, kind in (("milvus-ca", {"ca.crt": "ca.pem"}, "Opaque"),
                                 ("milvus-client", {"tls.crt": "client.pem", "tls.key": "client.key"},
                                  "kubernetes.io/tls")):
            await api.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": kind,
                                       "metadata": {"name": name, "namespace": "default"},
                                       "stringData": {key: (tls / file).read_text() for key, file in data.items()}})
        pool = pool_manifest()
        pool["spec"]["milvus"] = {"uri": sandbox.milvus.uri, "managementUri": sandbox.milvus.management_url,
                                  "tls": {"caSecretRef": {"name": "milvus-ca"},
                                          "clientCertSecretRef": {"name": "milvus-client"}}}
        await api.create(POOLS, {**pool, "metadata": {"name": "milvus", "namespace": "default"}})
        group = group_manifest("rg1", 2)
        await api.create(GROUPS, {**group, "metadata": {"name": "rg1", "namespace": "default"}})

        async def converged() -> bool:
            text = log.read_text()
            assert "Forbidden" not in text, f"refused by RBAC:\n{text[-4000:]}"  # fail at once, not at the timeout
            rg = sandbox.milvus.rm.groups.get("rg1")
            sts = await api.get(STATEFULSETS, "default", "milvus-querynode")
            return bool(rg and len(rg.nodes) == 2 and sts and sts["spec"]["replicas"] == 2)

        try:
            await wait_for(converged, timeout=90, interval=0.2, message="rg1 with 2 nodes, 2 replicas")
        except AssertionError as error:
            raise AssertionError(f"{error}\noperator log:\n{log.read_text()[-4000:]}") from None
        assert "Forbidden" not in log.read_text(), log.read_text()[-4000:]  # nor while converging
        lease = await api.get(LEASES, namespace, RELEASE)
        assert lease is not None and lease["spec"]["holderIdentity"].startswith(pods[0]["metadata"]["name"] + "_")

        async def renewed() -> bool:  # the leader's renewals (PUT) are allowed too
            assert "Forbidden" not in log.read_text(), log.read_text()[-4000:]
            spec = (await api.get(LEASES, namespace, RELEASE) or {}).get("spec") or {}
            return bool(spec.get("renewTime") != spec.get("acquireTime"))

        await wait_for(renewed, timeout=30, interval=0.2, message="the Lease renewed")
    finally:
        operator.terminate()
        async with asyncio.timeout(30):
            await operator.wait()

"""The operator reaches a Milvus that serves TLS, mutual TLS here (common.security.tlsMode 2): its CA and client
certificate come from Secrets named in the pool. A wrong CA is reported as such, naming the field to fix, and nothing
is written until the Secret is fixed; no private key shows in a status or an event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubernetes.client import V1ObjectMeta, V1Secret

from milvus_rg_operator.adapters.kube import POOL_PLURAL
from milvus_rg_sandbox.tls import CertificateAuthority
from tests.integration.harness import NAMESPACE, OperatorHarness, group_manifest, operator_on_sandbox, pool_manifest
from tests.support import wait_for

PENDING = "__pending_nodes"
TLS_POOL = {"uri": "placeholder",
            "tls": {"caSecretRef": {"name": "milvus-ca"}, "clientCertSecretRef": {"name": "milvus-client"}}}


async def put_secret(harness: OperatorHarness, name: str, data: dict[str, str], type_: str = "Opaque") -> None:
    body = V1Secret(metadata=V1ObjectMeta(name=name), string_data=data, type=type_)
    await asyncio.to_thread(harness.core.create_namespaced_secret, NAMESPACE, body)


async def test_mutual_tls_from_secrets_and_a_wrong_ca_reported_until_fixed(sandbox_factory: Any, tmp_path: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, tls="self-signed-mutual") as harness:
        tls_dir = harness.sandbox.tls_dir
        key = (tls_dir / "client.key").read_text()
        await put_secret(harness, "milvus-client", {"tls.crt": (tls_dir / "client.pem").read_text(), "tls.key": key},
                         "kubernetes.io/tls")
        stranger = CertificateAuthority.create(tmp_path / "stranger")
        await put_secret(harness, "milvus-ca", {"ca.crt": stranger.cert.read_text()})
        await harness.apply(pool_manifest(milvus=TLS_POOL), group_manifest("rg1", 2))

        degraded = await wait_for(lambda: harness.true_condition("Degraded", ("ValidationFailed",)), timeout=20,
                                  message="the wrong CA reported")
        assert "spec.milvus.tls.caSecretRef" in degraded["message"]
        assert "is not signed by the CA in Secret milvus-ca (key ca.crt)" in degraded["message"]
        assert await harness.true_condition("Stalled", ("ValidationFailed",))
        await harness.resync_passes(2)
        assert harness.milvus_writes() == 0 and await harness.replicas() == 1
        (event,) = await harness.events("ValidationFailed")  # once, not once per pass
        assert event.type == "Warning" and "spec.milvus.tls.caSecretRef" in event.message

        await asyncio.to_thread(harness.core.patch_namespaced_secret, "milvus-ca", NAMESPACE,
                                {"stringData": {"ca.crt": (tls_dir / "ca.pem").read_text()}})
        await harness.resync_passes(1)
        await harness.wait_converged({"rg1": 2, PENDING: 0}, replicas=2)

        pool = await harness.get(POOL_PLURAL, "milvus")
        shown = json.dumps(pool) + "".join(e.message for e in await harness.events())
        body = [line for line in key.splitlines() if line and not line.startswith("-----")]
        assert not any(line in shown for line in body)

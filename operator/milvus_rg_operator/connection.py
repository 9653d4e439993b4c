"""How a pass reaches its pool's Milvus: the endpoint from the pool's spec, the credentials from its Secret.

Problems are reported as `Problem`s naming the field to fix; a token never reaches a log line (it is
registered with the log filter as soon as it is read)."""

from __future__ import annotations

from dataclasses import dataclass

from milvus_rg_operator.adapters.kube import KubeGateway
from milvus_rg_operator.adapters.milvus import MilvusAuthError
from milvus_rg_operator.api.models import QueryNodePoolSpec
from milvus_rg_operator.constants import POOL_KIND
from milvus_rg_operator.core.types import Problem
from milvus_rg_operator.logs import register_secret


@dataclass(frozen=True)
class MilvusEndpoint:
    """Everything a Milvus gateway is built from (gateways are cached per endpoint)."""

    uri: str
    token: str
    management_uri: str
    timeout: float


async def read_endpoint(kube: KubeGateway, namespace: str, pool_name: str,
                        spec: QueryNodePoolSpec) -> tuple[MilvusEndpoint | None, list[Problem]]:
    token = ""
    ref = spec.milvus.secret_ref
    if ref is not None:
        secret = await kube.read_secret(namespace, ref.name)
        if secret is None:
            return None, [Problem(POOL_KIND, pool_name, "spec.milvus.secretRef.name",
                                  f"Secret {namespace}/{ref.name} not found")]
        if ref.key not in secret:
            return None, [Problem(POOL_KIND, pool_name, "spec.milvus.secretRef.key",
                                  f"Secret {ref.name} has no key {ref.key!r}")]
        token = secret[ref.key].strip()
        register_secret(token)  # tokens never reach a log line
    return MilvusEndpoint(spec.milvus.uri, token, spec.management_uri(), float(spec.milvus.timeout_seconds)), []


def credentials_problem(namespace: str, pool_name: str, spec: QueryNodePoolSpec, exc: MilvusAuthError) -> Problem:
    ref = spec.milvus.secret_ref
    where = (f"the credentials in Secret {namespace}/{ref.name} (key {ref.key!r})"
             if ref else "no credentials (Milvus requires authentication: set spec.milvus.secretRef)")
    return Problem(POOL_KIND, pool_name, "spec.milvus.secretRef", f"Milvus refused {where}: {exc.message}")

"""How a pass reaches its pool's Milvus: the endpoint from the pool's spec, the credentials and TLS certificates
from its Secrets.

Problems are reported as `Problem`s naming the field to fix; a token or a private key never reaches a log line (each
is registered with the log filter as soon as it is read) nor a status or an event (messages name Secrets and keys,
never their values)."""

from __future__ import annotations

from dataclasses import dataclass

from milvus_rg_operator.adapters.kube import KubeGateway
from milvus_rg_operator.adapters.milvus import MilvusAuthError, MilvusTlsError, TlsMaterial
from milvus_rg_operator.adapters.milvus.tls import material_problems
from milvus_rg_operator.api.models import MilvusTls, QueryNodePoolSpec
from milvus_rg_operator.constants import POOL_KIND
from milvus_rg_operator.core.types import Problem
from milvus_rg_operator.logs import register_secret

CERT_KEY, PRIVATE_KEY = "tls.crt", "tls.key"  # a kubernetes.io/tls Secret


@dataclass(frozen=True)
class MilvusEndpoint:
    """Everything a Milvus gateway is built from (gateways are cached per endpoint: a changed Secret makes another
    one)."""

    uri: str
    token: str
    management_uri: str
    timeout: float
    tls: TlsMaterial | None = None


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
    tls, problems = (await read_tls(kube, namespace, pool_name, spec.milvus.tls) if spec.milvus.tls is not None
                     else (None, []))
    if problems:
        return None, problems
    return MilvusEndpoint(spec.milvus.uri, token, spec.management_uri(), float(spec.milvus.timeout_seconds), tls), []


async def read_tls(kube: KubeGateway, namespace: str, pool_name: str,
                   spec: MilvusTls) -> tuple[TlsMaterial | None, list[Problem]]:
    """The CA and the client certificate from their Secrets, checked: each problem names the field to fix."""
    def problem(field: str, message: str) -> tuple[None, list[Problem]]:
        return None, [Problem(POOL_KIND, pool_name, field, message)]

    ca_pem = ca_source = cert_pem = key_pem = client_source = None
    if spec.ca_secret_ref is not None:
        ref = spec.ca_secret_ref
        secret = await kube.read_secret(namespace, ref.name)
        if secret is None:
            return problem("spec.milvus.tls.caSecretRef.name", f"Secret {namespace}/{ref.name} not found")
        if ref.key not in secret:
            return problem("spec.milvus.tls.caSecretRef.key", f"Secret {ref.name} has no key {ref.key!r}")
        ca_pem, ca_source = secret[ref.key], f"Secret {ref.name} (key {ref.key})"
    if spec.client_cert_secret_ref is not None:
        name = spec.client_cert_secret_ref.name
        secret = await kube.read_secret(namespace, name)
        if secret is None:
            return problem("spec.milvus.tls.clientCertSecretRef.name", f"Secret {namespace}/{name} not found")
        missing = [key for key in (CERT_KEY, PRIVATE_KEY) if key not in secret]
        if missing:
            return problem("spec.milvus.tls.clientCertSecretRef.name",
                           f"Secret {name} has no key {', '.join(map(repr, missing))} (a kubernetes.io/tls Secret)")
        cert_pem, key_pem = secret[CERT_KEY], secret[PRIVATE_KEY]
        register_private_key(key_pem)
        client_source = f"Secret {name} (keys {CERT_KEY}, {PRIVATE_KEY})"
    material = TlsMaterial(ca_pem, cert_pem, key_pem, spec.server_name, ca_source or "", client_source or "")
    problems = [Problem(POOL_KIND, pool_name, field, message) for field, message in material_problems(material)]
    return (None, problems) if problems else (material, [])


def register_private_key(pem: str) -> None:
    """The key, and each line of its body (a log line could carry part of it), are never logged."""
    register_secret(pem.strip())
    for line in pem.splitlines():
        if not line.startswith("-----"):
            register_secret(line.strip())


def credentials_problem(namespace: str, pool_name: str, spec: QueryNodePoolSpec, exc: MilvusAuthError) -> Problem:
    ref = spec.milvus.secret_ref
    where = (f"the credentials in Secret {namespace}/{ref.name} (key {ref.key!r})"
             if ref else "no credentials (Milvus requires authentication: set spec.milvus.secretRef)")
    return Problem(POOL_KIND, pool_name, "spec.milvus.secretRef", f"Milvus refused {where}: {exc.message}")


def tls_problem(pool_name: str, exc: MilvusTlsError) -> Problem:
    return Problem(POOL_KIND, pool_name, exc.field, exc.message)

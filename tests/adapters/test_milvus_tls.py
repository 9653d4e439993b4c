"""The gateway over TLS against the simulator's TLS servers: one-way and mutual work over gRPC and the management
API; each way it can fail is told as such, naming the field to fix (pymilvus itself says only "Fail connecting");
certificates that cannot work are refused before any connection; no private key reaches a log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from milvus_rg_operator.adapters.milvus import MilvusError, MilvusTlsError, PymilvusGateway, TlsMaterial
from milvus_rg_operator.adapters.milvus.tls import material_problems
from milvus_rg_operator.connection import register_private_key
from milvus_rg_operator.logs import RedactingFilter, forget_secrets
from milvus_rg_sandbox.milvus.simulator import MilvusSimulator
from milvus_rg_sandbox.tls import CertificateAuthority, CertificateFiles, ServerTls

DEFAULT_RG = "__default_resource_group"
TIMEOUT = 2.0  # pymilvus waits this long for a channel that never becomes ready


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    server: CertificateFiles  # localhost, 127.0.0.1
    only_ip: CertificateFiles  # 127.0.0.1
    expired: CertificateFiles
    elsewhere: CertificateFiles  # foo.example
    client: CertificateFiles
    other_client: CertificateFiles  # signed by other_ca
    expired_client: CertificateFiles


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = CertificateAuthority.create(directory), CertificateAuthority.create(directory / "other")
    return Pki(ca, other, ca.issue(directory, "server"), ca.issue(directory, "only-ip", hosts=("127.0.0.1",)),
               ca.issue(directory, "expired", expired=True), ca.issue(directory, "elsewhere", hosts=("foo.example",)),
               ca.issue(directory, "client", client=True), other.issue(directory / "other", "client", client=True),
               ca.issue(directory, "expired-client", client=True, expired=True))


def material(ca: Path | None = None, client: CertificateFiles | None = None,
             server_name: str | None = None) -> TlsMaterial:
    return TlsMaterial(ca.read_text() if ca else None, client.cert.read_text() if client else None,
                       client.key.read_text() if client else None, server_name,
                       "Secret milvus-ca (key ca.crt)" if ca else "",
                       "Secret milvus-client (keys tls.crt, tls.key)" if client else "")


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[MilvusSimulator] = []

    async def start(tls: ServerTls | None) -> MilvusSimulator:
        sim = MilvusSimulator(grpc_port=0, management_port=0, tls=tls)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


@pytest.fixture
async def gateways() -> AsyncIterator[Callable[..., PymilvusGateway]]:
    made: list[PymilvusGateway] = []

    def make(uri: str, management_uri: str | None = None, tls: TlsMaterial | None = None) -> PymilvusGateway:
        gateway = PymilvusGateway(uri, management_uri=management_uri, timeout=TIMEOUT, tls=tls)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.close()


async def failure(gateway: PymilvusGateway) -> MilvusTlsError:
    with pytest.raises(MilvusTlsError) as caught:
        await gateway.observe()
    return caught.value


async def test_one_way_tls_reaches_grpc_and_the_management_api(pki: Pki, serve: Serve, gateways: Any) -> None:
    sim = await serve(ServerTls(pki.server.cert, pki.server.key))
    gateway = gateways(sim.uri, sim.management_url, material(pki.ca.cert))
    state = await gateway.observe()
    assert list(state.groups) == [DEFAULT_RG] and state.management_available


async def test_mutual_tls_presents_the_client_certificate(pki: Pki, serve: Serve, gateways: Any) -> None:
    sim = await serve(ServerTls(pki.server.cert, pki.server.key, client_ca=pki.ca.cert))
    state = await gateways(sim.uri, sim.management_url, material(pki.ca.cert, pki.client)).observe()
    assert list(state.groups) == [DEFAULT_RG] and state.management_available
    # A connection of its own: pymilvus would otherwise hand this gateway the working one of the same address.
    missing = await failure(gateways(sim.uri, tls=material(pki.ca.cert)))
    assert missing.field == "spec.milvus.tls.clientCertSecretRef"
    assert "requires a client certificate (mutual TLS" in missing.message
    refused = await failure(gateways(sim.uri, tls=material(pki.ca.cert, pki.other_client)))
    assert refused.field == "spec.milvus.tls.clientCertSecretRef"
    assert "refused the client certificate in Secret milvus-client" in refused.message


@pytest.mark.parametrize(("certificate", "trusted", "server_name", "field", "words"), [
    ("server", "other_ca", None, "spec.milvus.tls.caSecretRef",
     "is not signed by the CA in Secret milvus-ca (key ca.crt): unable to get local issuer certificate"),
    ("expired", "ca", None, "spec.milvus.uri", "is out of its validity period: certificate has expired"),
    ("elsewhere", "ca", None, "spec.milvus.tls.serverName", "is not valid for '127.0.0.1': IP address mismatch"),
    ("server", "ca", "milvus.example", "spec.milvus.tls.serverName",
     "is not valid for 'milvus.example': Hostname mismatch"),
], ids=["wrong-ca", "expired", "ip-mismatch", "server-name-mismatch"])
async def test_a_server_certificate_that_cannot_be_trusted_is_told_as_such(
        pki: Pki, serve: Serve, gateways: Any, certificate: str, trusted: str, server_name: str | None, field: str,
        words: str) -> None:
    files: CertificateFiles = getattr(pki, certificate)
    sim = await serve(ServerTls(files.cert, files.key))
    error = await failure(gateways(sim.uri, tls=material(getattr(pki, trusted).cert, server_name=server_name)))
    assert (error.field, error.unreachable) == (field, False)
    assert f"the certificate Milvus presents at {sim.uri} {words}" in error.message


async def test_tls_on_one_side_only_names_the_scheme_to_use(pki: Pki, serve: Serve, gateways: Any) -> None:
    plain = await serve(None)
    error = await failure(gateways(plain.uri.replace("http://", "https://"), tls=material(pki.ca.cert)))
    assert error.field == "spec.milvus.uri" and "does not speak TLS" in error.message
    secure = await serve(ServerTls(pki.server.cert, pki.server.key))
    error = await failure(gateways(secure.uri.replace("https://", "http://")))
    assert error.field == "spec.milvus.uri" and "serves TLS: use https://" in error.message


async def test_the_management_api_is_checked_with_the_same_certificates(pki: Pki, serve: Serve,
                                                                         gateways: Any) -> None:
    sim = await serve(ServerTls(pki.only_ip.cert, pki.only_ip.key))
    by_name = sim.management_url.replace("127.0.0.1", "localhost")
    error = await failure(gateways(sim.uri, by_name, material(pki.ca.cert)))
    assert error.field == "spec.milvus.tls.serverName" and f"presents at {by_name} is not valid for 'localhost'" \
        in error.message
    error = await failure(gateways(sim.uri, sim.management_url.replace("https://", "http://"), material(pki.ca.cert)))
    assert error.field == "spec.milvus.managementUri" and "serves TLS: use https://" in error.message


async def test_an_unreachable_milvus_over_tls_stays_unreachable(pki: Pki, gateways: Any) -> None:
    gateway = gateways("https://127.0.0.1:1", tls=material(pki.ca.cert))
    with pytest.raises(MilvusError) as caught:
        await gateway.server_version()
    assert caught.value.unreachable and not isinstance(caught.value, MilvusTlsError)


def test_certificates_that_cannot_work_are_refused_before_any_connection(pki: Pki) -> None:
    assert material_problems(material(pki.ca.cert, pki.client)) == []
    expired = material_problems(material(pki.ca.cert, pki.expired_client))
    assert [field for field, _ in expired] == ["spec.milvus.tls.clientCertSecretRef"]
    assert "the client certificate in Secret milvus-client (keys tls.crt, tls.key) expired on" in expired[0][1]
    garbage = material_problems(replace(material(pki.ca.cert), ca_pem="not a certificate"))
    assert garbage[0][0] == "spec.milvus.tls.caSecretRef" and "is not a PEM certificate" in garbage[0][1]
    mismatched = replace(material(pki.ca.cert, pki.client), client_key_pem=pki.other_client.key.read_text())
    ((field, message),) = material_problems(mismatched)
    assert field == "spec.milvus.tls.clientCertSecretRef" and "KEY_VALUES_MISMATCH" in message
    assert pki.client.key.read_text() not in repr(material(pki.ca.cert, pki.client))


async def test_no_private_key_reaches_a_log_line(pki: Pki, serve: Serve, gateways: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    key = pki.other_client.key.read_text()
    register_private_key(key)
    caplog.handler.addFilter(RedactingFilter())
    try:
        sim = await serve(ServerTls(pki.server.cert, pki.server.key, client_ca=pki.ca.cert))
        with caplog.at_level(logging.DEBUG):
            await failure(gateways(sim.uri, tls=material(pki.ca.cert, pki.other_client)))
            logging.getLogger("milvus_rg_operator.tests").warning("a careless line: %s", key)
        body = [line for line in key.splitlines() if not line.startswith("-----")]
        assert "a careless line" in caplog.text and not any(line in caplog.text for line in body)
    finally:
        forget_secrets()

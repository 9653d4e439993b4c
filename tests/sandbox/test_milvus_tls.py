"""The simulator over TLS: one-way and mutual, with pymilvus (gRPC) and aiohttp (the management API); a wrong CA,
an expired server certificate and a hostname mismatch fail on the client side, saying so."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from milvus_rg_sandbox.milvus.simulator import MilvusSimulator
from milvus_rg_sandbox.options import build_parser, config_from_args
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig, server_tls
from milvus_rg_sandbox.tls import CertificateAuthority, CertificateFiles, ServerTls

DEFAULT_RG = "__default_resource_group"
NODE_LIST = "/management/querycoord/node/list"


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    server: CertificateFiles  # for localhost and 127.0.0.1
    expired: CertificateFiles
    elsewhere: CertificateFiles  # for foo.example only
    client: CertificateFiles


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(directory)
    return Pki(ca=ca, other_ca=CertificateAuthority.create(directory / "other"),
               server=ca.issue(directory, "server"), expired=ca.issue(directory, "expired", expired=True),
               elsewhere=ca.issue(directory, "elsewhere", hosts=("foo.example",)),
               client=ca.issue(directory, "client", client=True))


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ServerTls], Any]]:
    started: list[MilvusSimulator] = []

    async def start(tls: ServerTls) -> MilvusSimulator:
        sim = MilvusSimulator(grpc_port=0, management_port=0, tls=tls)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


def pymilvus_call(sim: MilvusSimulator, **tls: str) -> list[str]:
    """list_resource_groups through a MilvusClient of its own (dedicated: pymilvus shares connections per URI)."""
    client = MilvusClient(uri=sim.uri, timeout=2, dedicated=True, **tls)
    try:
        return list(client.list_resource_groups())
    finally:
        client.close()


async def pymilvus_failure(sim: MilvusSimulator, **tls: str) -> MilvusException:
    with pytest.raises(MilvusException) as caught:
        await asyncio.to_thread(pymilvus_call, sim, **tls)
    return caught.value


async def grpc_failure(sim: MilvusSimulator, root: Path, server_name: str = "") -> str:
    """The handshake error a gRPC client sees (pymilvus logs it and reports code 2 only): the details."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    credentials = grpc.ssl_channel_credentials(await asyncio.to_thread(root.read_bytes))
    channel = grpc.aio.secure_channel(f"127.0.0.1:{sim.grpc_port}", credentials, options=options)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            await milvus_pb2_grpc.MilvusServiceStub(channel).GetVersion(milvus_pb2.GetVersionRequest(), timeout=3)
    finally:
        await channel.close()
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    return str(error.details())


def ssl_context(ca: Path, client: CertificateFiles | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


async def node_list(sim: MilvusSimulator, context: ssl.SSLContext, host: str = "127.0.0.1") -> int:
    async with aiohttp.ClientSession() as session, session.get(
        f"https://{host}:{sim.management_port}{NODE_LIST}", ssl=context
    ) as response:
        return response.status


async def test_one_way_tls_serves_pymilvus_and_the_management_api(pki: Pki, serve: Any) -> None:
    sim = await serve(ServerTls(pki.server.cert, pki.server.key))
    assert sim.uri.startswith("https://") and sim.management_url.startswith("https://")
    assert await asyncio.to_thread(pymilvus_call, sim, server_pem_path=str(pki.ca.cert)) == [DEFAULT_RG]
    assert await node_list(sim, ssl_context(pki.ca.cert)) == 200
    assert await node_list(sim, ssl_context(pki.ca.cert), host="localhost") == 200


async def test_mutual_tls_requires_a_client_certificate(pki: Pki, serve: Any) -> None:
    sim = await serve(ServerTls(pki.server.cert, pki.server.key, client_ca=pki.ca.cert))
    mutual = {"client_pem_path": str(pki.client.cert), "client_key_path": str(pki.client.key),
              "ca_pem_path": str(pki.ca.cert)}
    assert await asyncio.to_thread(pymilvus_call, sim, **mutual) == [DEFAULT_RG]
    assert await node_list(sim, ssl_context(pki.ca.cert, pki.client)) == 200
    assert (await pymilvus_failure(sim, server_pem_path=str(pki.ca.cert))).code == 2
    assert "Socket closed" in await grpc_failure(sim, pki.ca.cert)
    with pytest.raises(aiohttp.ClientError):
        await node_list(sim, ssl_context(pki.ca.cert))


@pytest.mark.parametrize(("certificate", "trusted", "server_name", "grpc_says", "http_says"), [
    ("server", "other_ca", "", "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
     "certificate verify failed: unable to get local issuer certificate"),
    ("expired", "ca", "", "CERTIFICATE_VERIFY_FAILED: certificate has expired",
     "certificate verify failed: certificate has expired"),
    ("elsewhere", "ca", "localhost", "Hostname Verification Check failed",
     "Hostname mismatch, certificate is not valid for 'localhost'"),
], ids=["wrong-ca", "expired", "hostname-mismatch"])
async def test_the_client_refuses_a_server_certificate_it_cannot_trust(
    pki: Pki, serve: Any, certificate: str, trusted: str, server_name: str, grpc_says: str, http_says: str
) -> None:
    files: CertificateFiles = getattr(pki, certificate)
    root: Path = getattr(pki, trusted).cert
    sim = await serve(ServerTls(files.cert, files.key))
    names = {"server_name": server_name} if server_name else {}
    failure = await pymilvus_failure(sim, server_pem_path=str(root), **names)
    assert failure.code == 2 and "Fail connecting to server" in failure.message
    assert grpc_says in await grpc_failure(sim, root, server_name)
    with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
        await node_list(sim, ssl_context(root), host=server_name or "127.0.0.1")
    assert http_says in str(caught.value)


async def test_the_sandbox_generates_its_certificates_with_tls_self_signed(sandbox_factory: Any) -> None:
    sandbox: Sandbox = await sandbox_factory(tls="self-signed-mutual")
    endpoints = sandbox.endpoints()
    assert endpoints["milvus"].startswith("https://") and endpoints["management"].startswith("https://")
    files = {name: endpoints[f"tls {name}"] for name in ("ca.pem", "client.pem", "client.key")}
    mutual = {"client_pem_path": files["client.pem"], "client_key_path": files["client.key"],
              "ca_pem_path": files["ca.pem"]}
    assert await asyncio.to_thread(pymilvus_call, sandbox.milvus, **mutual) == [DEFAULT_RG]
    client = CertificateFiles(Path(files["client.pem"]), Path(files["client.key"]))
    assert await node_list(sandbox.milvus, ssl_context(Path(files["ca.pem"]), client)) == 200
    with pytest.raises(aiohttp.ClientError):  # mutual: no client certificate, no answer
        await node_list(sandbox.milvus, ssl_context(Path(files["ca.pem"])))


def test_tls_options(tmp_path: Path) -> None:
    parser = build_parser()
    config = config_from_args(parser.parse_args(["--tls-cert", "s.pem", "--tls-key", "s.key", "--tls-client-ca",
                                                 "ca.pem"]))
    assert server_tls(config, tmp_path) == ServerTls(Path("s.pem"), Path("s.key"), Path("ca.pem"))
    assert config_from_args(parser.parse_args(["--tls", "self-signed"])).tls == "self-signed"
    generated = server_tls(SandboxConfig(tls="self-signed"), tmp_path)
    assert generated is not None and not generated.mutual and generated.cert == tmp_path / "server.pem"
    assert server_tls(SandboxConfig(), tmp_path) is None
    for wrong in (SandboxConfig(tls_cert=Path("s.pem")), SandboxConfig(tls_client_ca=Path("ca.pem")),
                  SandboxConfig(tls="self-signed", tls_cert=Path("s.pem"), tls_key=Path("s.key"))):
        with pytest.raises(ValueError, match="--tls"):
            server_tls(wrong, tmp_path)

"""The composed sandbox: endpoints answer real clients, stop frees the ports, the CLI serves until SIGINT."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pymilvus import AsyncMilvusClient

from milvus_rg_sandbox.__main__ import build_parser
from milvus_rg_sandbox.options import NOT_CONFIG
from milvus_rg_sandbox.sandbox import Sandbox, SandboxConfig
from tests.support import wait_for

DEFAULT_RG = "__default_resource_group"


def port_of(url: str) -> int:
    port = urlparse(url if "://" in url else f"tcp://{url}").port
    assert port is not None, url
    return port


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def list_namespaces(kubeconfig: str) -> list[str]:
    api = k8s_config.new_client_from_config(config_file=kubeconfig)
    try:
        return [ns.metadata.name for ns in k8s.CoreV1Api(api).list_namespace().items]
    finally:
        api.close()


async def test_endpoints_answer_kubernetes_and_milvus_clients(sandbox: Sandbox) -> None:
    endpoints = sandbox.endpoints()
    assert set(endpoints) == {"kubernetes", "kubeconfig", "milvus", "management"}
    assert "default" in await asyncio.to_thread(list_namespaces, endpoints["kubeconfig"])
    milvus = AsyncMilvusClient(uri=endpoints["milvus"])
    try:
        assert DEFAULT_RG in await milvus.list_resource_groups(timeout=5)
    finally:
        await milvus.close()


async def test_stop_is_clean_and_idempotent(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(kube_port=0, milvus_port=0, management_port=0, workdir=tmp_path))
    await sandbox.start()
    endpoints = sandbox.endpoints()
    ports = [port_of(endpoints[key]) for key in ("kubernetes", "milvus", "management")]
    assert not any(port_is_free(port) for port in ports)
    await sandbox.stop()
    await sandbox.stop()
    assert all(port_is_free(port) for port in ports)


async def test_query_node_statefulset_brings_up_registered_nodes(sandbox: Sandbox) -> None:
    sts = await sandbox.create_query_node_statefulset(replicas=2)
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["milvus", "run", "querynode"]
    assert container["image"] == "milvusdb/milvus:v2.5.4"
    assert {p["containerPort"] for p in container["ports"]} == {21123, 9091}
    await wait_for(lambda: len(sandbox.wiring.node_of_pod) == 2, message="two query nodes registered")


async def test_cli_prints_endpoints_and_exits_cleanly_on_sigint(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "milvus_rg_sandbox", "--kube-port", "0", "--milvus-port", "0",
        "--management-port", "0", "--workdir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("export KUBECONFIG="):
            async with asyncio.timeout(30):
                line = await process.stdout.readline()
            assert line, f"the sandbox exited early: {lines}"
            lines.append(line.decode().strip())
        assert lines[-1] == f"export KUBECONFIG={tmp_path / 'kubeconfig'}"
        kube_url = next(line.split(": ", 1)[1] for line in lines if line.startswith("kubernetes: "))
        assert port_of(kube_url) > 0
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_every_config_field_is_a_cli_option() -> None:
    args = build_parser().parse_args(["--kube-port", "0", "--session-ttl", "5", "--seed", "3", "--token", "none",
                                      "--workdir", "/tmp/x", "--milvus-version", "v2.6.8"])
    config = SandboxConfig(**{k: v for k, v in vars(args).items() if k not in NOT_CONFIG})
    assert config == SandboxConfig(kube_port=0, session_ttl=5.0, seed=3, token=None, workdir=Path("/tmp/x"),
                                   milvus_version="v2.6.8")
    assert {a.dest for a in build_parser()._actions} >= {f.name for f in dataclasses.fields(SandboxConfig)}

"""The sandbox: a Kubernetes API, a Milvus simulator, the workload controllers and the wiring between them.

    async with Sandbox(SandboxConfig(kube_port=0, milvus_port=0, management_port=0)) as sandbox:
        await sandbox.create_query_node_statefulset(replicas=2)
        ...  # KUBECONFIG=sandbox.kubeconfig_path, pymilvus uri=sandbox.milvus.uri

`run_sandbox_forever` serves it until SIGINT/SIGTERM (`python -m milvus_rg_sandbox`,
`milvus-rg-operator sandbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from milvus_rg_sandbox.external_metrics import ExternalMetrics
from milvus_rg_sandbox.kube import KubeApiServer
from milvus_rg_sandbox.milvus.simulator import MilvusSimulator
from milvus_rg_sandbox.milvus_operator import (
    DEPLOYMENTS,
    MILVUSES,
    MIN_READY_SECONDS,
    SYNC_INTERVAL,
    USER_AGENT,
    MilvusOperatorStandIn,
)
from milvus_rg_sandbox.realkube import (
    ApiPodNodeWiring,
    KubeRestClient,
    RealControlPlane,
    RealWorkloads,
    SharedControlPlane,
    real_kubernetes,
)
from milvus_rg_sandbox.shapes import (
    DEFAULT_RELEASE,
    Shape,
    helm_query_node_deployment,
    milvus_cr,
    per_group_deployments,
)
from milvus_rg_sandbox.tls import ServerTls, self_signed
from milvus_rg_sandbox.wiring import QUERY_NODE_PORT, PodNodeWiring
from milvus_rg_sandbox.workloads import STATEFULSETS, WorkloadEmulator

MILVUS_IMAGE = "milvusdb/milvus:v2.5.4"
MANAGEMENT_PORT = 9091


@dataclass
class SandboxConfig:
    host: str = field(default="127.0.0.1", metadata={"help": "address every server listens on"})
    kube_port: int = field(default=18443, metadata={"help": "Kubernetes API port (0: any free port)"})
    milvus_port: int = field(default=19530, metadata={"help": "Milvus gRPC port (0: any free port)"})
    management_port: int = field(default=9091, metadata={
        "help": "Milvus management HTTP port, /api/v1/... (0: any free port)"})
    workdir: Path = field(default=Path(".sandbox"), metadata={"help": "where the kubeconfig is written"})
    seed: int | None = field(default=None, metadata={"help": "seed of Milvus's random node choice (none: random)"})
    pod_start_delay: float = field(default=0.2, metadata={"help": "seconds from pod creation to Ready"})
    check_interval: float = field(default=10.0, metadata={
        "help": "seconds between passes of Milvus's resource-group recovery loop"})
    session_ttl: float = field(default=30.0, metadata={
        "help": "seconds a crashed query node's session lives on in Milvus (common.session.ttl: 30 in the "
                "milvus.yaml shipped with 2.4-2.6)"})
    balance_delay: float = field(default=1.0, metadata={
        "help": "seconds Milvus takes to move one segment or channel off a suspended or stopping node"})
    load_time: float = field(default=5.0, metadata={
        "help": "seconds a node takes to load a segment or channel whose node went down"})
    dist_pull_interval: float = field(default=0.5, metadata={
        "help": "seconds between the query coordinator's pulls of a node's distribution "
                "(queryCoord.distPullInterval)"})
    replica_check_interval: float = field(default=60.0, metadata={
        "help": "seconds between passes of Milvus's replica observer, which releases emptied read-only nodes "
                "(queryCoord.checkNodeInReplicaInterval)"})
    graceful_stop_timeout: float = field(default=1800.0, metadata={
        "help": "seconds a stopping query node waits for its data to move before it exits with it "
                "(queryNode.gracefulStopTimeout)"})
    balance_check_interval: float = field(default=3.0, metadata={
        "help": "seconds between passes of Milvus's balance checker, which moves segments and channels from the "
                "most to the least loaded nodes of each replica (queryCoord.checkBalanceInterval)"})
    no_auto_balance: bool = field(default=False, metadata={
        "help": "turn Milvus's automatic balance between a replica's nodes off (queryCoord.autoBalance false)"})
    segment_task_timeout: float = field(default=120.0, metadata={
        "help": "seconds a LoadBalance call waits for its segment moves (queryCoord.segmentTaskTimeout)"})
    milvus_version: str = field(default="v2.5.16", metadata={
        "help": "Milvus version whose behaviour is simulated, e.g. v2.4.9, v2.6.8, v2.3.5"})
    streaming_nodes: int | None = field(default=None, metadata={
        "help": "streaming nodes simulated inside Milvus, without pods (2.6+: they serve the channels; none: 1 "
                "on 2.6+, 0 before); a pod running `milvus run streamingnode` adds one"})
    streaming_strict_rg_isolation: bool = field(default=False, metadata={
        "help": "Milvus 2.6.16+ streaming.strictResourceGroupIsolation.enabled: a replica whose resource group "
                "has no streaming node gets none"})
    token: str | None = field(default=None, metadata={
        "help": "token or user:password Milvus requires (none: no authentication)"})
    namespace: str = field(default="default", metadata={"help": "the kubeconfig's default namespace"})
    tls: Literal["off", "self-signed", "self-signed-mutual"] = field(default="off", metadata={
        "help": "serve Milvus gRPC and the management API over TLS with a CA, server and client certificate "
                "generated into <workdir>/tls (-mutual: a client certificate is required)"})
    tls_cert: Path | None = field(default=None, metadata={
        "help": "serve Milvus gRPC and the management API over TLS with this server certificate (PEM)"})
    tls_key: Path | None = field(default=None, metadata={"help": "the private key of --tls-cert (PEM)"})
    tls_client_ca: Path | None = field(default=None, metadata={
        "help": "with --tls-cert: mutual TLS, clients must present a certificate signed by this CA (PEM)"})
    kubernetes: Literal["embedded", "real"] = field(default="embedded", metadata={
        "help": "embedded: the in-process API; real: etcd, kube-apiserver, controllers, scheduler and kwok "
                "built from Go (docs/real-kubernetes.md)"})
    external_metrics: bool = field(default=False, metadata={
        "help": "serve the external metrics API (external.metrics.k8s.io) with values set through "
                "PUT <metrics>/sandbox/v1/namespaces/NS/metrics/NAME; on the real backend registered with "
                "kube-apiserver for its HPA controller (docs/sandbox.md)"})


class Sandbox:
    """Starts and stops the parts in order; see the module docstring."""

    def __init__(self, config: SandboxConfig | None = None, *, control_plane: RealControlPlane | None = None) -> None:
        """`control_plane`: a running real control plane to borrow (reset, not stopped, on stop)."""
        self.config = config or SandboxConfig()
        cfg = self.config
        self.tls_dir = (Path(cfg.workdir) / "tls").absolute()
        self.milvus = MilvusSimulator(
            host=cfg.host, grpc_port=cfg.milvus_port, management_port=cfg.management_port, seed=cfg.seed,
            check_interval=cfg.check_interval, session_ttl=cfg.session_ttl, balance_delay=cfg.balance_delay,
            load_time=cfg.load_time, version=cfg.milvus_version, token=cfg.token,
            dist_pull_interval=cfg.dist_pull_interval, replica_check_interval=cfg.replica_check_interval,
            graceful_stop_timeout=cfg.graceful_stop_timeout, streaming_nodes=cfg.streaming_nodes,
            streaming_strict_rg_isolation=cfg.streaming_strict_rg_isolation, tls=server_tls(cfg, self.tls_dir),
            balance_check_interval=cfg.balance_check_interval, auto_balance=not cfg.no_auto_balance,
            segment_task_timeout=cfg.segment_task_timeout,
        )
        self.kube: KubeApiServer | RealControlPlane | SharedControlPlane
        self.workloads: WorkloadEmulator | RealWorkloads
        self.wiring: PodNodeWiring | ApiPodNodeWiring
        if cfg.kubernetes == "real":
            self.kube, self.workloads = real_kubernetes(Path(cfg.workdir) / "control-plane", cfg.host, cfg.kube_port,
                                                        self.milvus, cfg.pod_start_delay, control_plane)
            self.wiring = self.workloads.wiring
        else:
            self.kube = KubeApiServer(host=cfg.host, port=cfg.kube_port)
            self.workloads = WorkloadEmulator(self.kube.store, pod_start_delay=cfg.pod_start_delay)
            self.wiring = PodNodeWiring(self.workloads, self.milvus)
        self.kubeconfig_path = (Path(cfg.workdir) / "kubeconfig").absolute()
        self.milvus_operator: MilvusOperatorStandIn | None = None
        self.metrics = ExternalMetrics(cfg.host)
        self._metrics_dir = (Path(cfg.workdir) / "external-metrics").absolute()
        self._metrics_served: _ServedMetrics | None = None
        self._started: list[Any] = []  # parts to stop, in start order

    async def start(self) -> None:
        try:
            # Independent servers come up concurrently; the controllers need the store running.
            servers = (self.kube, self.milvus)
            results = await asyncio.gather(*(s.start() for s in servers), return_exceptions=True)
            self._started = [s for s, r in zip(servers, results, strict=True) if r is None]
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            self.kubeconfig_path = self._write_kubeconfig()
            await self.workloads.start()
            self._started.append(self.workloads)
            if self.config.external_metrics:
                await self.start_metrics()
        except BaseException:
            await self.stop()
            raise

    def _write_kubeconfig(self) -> Path:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        return Path(self.kube.write_kubeconfig(self.kubeconfig_path, namespace=self.config.namespace))

    async def stop(self) -> None:
        started, self._started = self._started, []
        for part in reversed(started):
            await part.stop()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def endpoints(self) -> dict[str, str]:
        endpoints = {
            "kubernetes": str(self.kube.url),
            "kubeconfig": str(self.kubeconfig_path),
            "milvus": str(self.milvus.uri),
            "management": str(self.milvus.management_url),
        }
        if self.config.tls != "off":  # what a client needs: pymilvus ca_pem_path / server_pem_path, ...
            for name in ("ca.pem", "client.pem", "client.key"):
                endpoints[f"tls {name}"] = str(self.tls_dir / name)
        return endpoints

    def api_client(self, user_agent: str) -> KubeRestClient:
        """A client of the Kubernetes API with the kubeconfig's credentials, as a controller installed in the
        cluster would have (its writes are the API's clients', in `kube.mutations`)."""
        token = json.loads(self.kubeconfig_path.read_text())["users"][0]["user"]["token"]
        return KubeRestClient(str(self.kube.url), token, user_agent=user_agent)

    async def start_milvus_operator(self, *, sync_interval: float = SYNC_INTERVAL,
                                    min_ready_seconds: int = MIN_READY_SECONDS) -> MilvusOperatorStandIn:
        """milvus-operator's stand-in (`milvus_operator.py`: the `Milvus` CRD and its query-node Deployments),
        started once and stopped with the sandbox; the settings apply when it starts."""
        if self.milvus_operator is None:
            stand_in = MilvusOperatorStandIn(self.api_client(USER_AGENT), sync_interval=sync_interval,
                                             min_ready_seconds=min_ready_seconds)
            await stand_in.start()
            self.milvus_operator = stand_in
            self._started.append(stand_in)
        return self.milvus_operator

    async def start_metrics(self) -> ExternalMetrics:
        """Serve `metrics` (the external metrics API, `external_metrics.py`), started once and stopped with
        the sandbox; on the real backend registered as kube-apiserver's APIService for the HPA controller."""
        if self._metrics_served is None:
            self._metrics_served = _ServedMetrics(self)
            await self.metrics.start(self._metrics_dir)
            self._started.append(self._metrics_served)
            await self._metrics_served.register()
        return self.metrics

    async def create_query_node_statefulset(
        self, name: str = "milvus-querynode", replicas: int = 1, namespace: str = "default",
        env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A StatefulSet shaped like the Milvus Helm chart's query nodes."""
        manifest = query_node_statefulset(name, replicas, namespace, env)
        return await self.kube.store.create(STATEFULSETS, manifest)

    async def create_query_node_deployment(
        self, release: str = DEFAULT_RELEASE, replicas: int = 1, namespace: str = "default",
        env: Mapping[str, str] | None = None, resource_group: str | None = None,
    ) -> dict[str, Any]:
        """A Deployment shaped like the Milvus Helm chart's query nodes (`shapes.helm_query_node_deployment`)."""
        manifest = helm_query_node_deployment(release, replicas, namespace, env, resource_group=resource_group)
        return await self.kube.store.create(DEPLOYMENTS, manifest)

    async def create_query_nodes(
        self, shape: Shape, replicas: int = 1, namespace: str = "default", env: Mapping[str, str] | None = None,
        resource_groups: tuple[str, ...] = ("rg1", "rg2"),
    ) -> list[dict[str, Any]]:
        """Query nodes in one of the shapes users run them (`shapes.py`); the objects created. `replicas` is
        per group for `per-group`; `milvus-operator` starts its stand-in first (default timings unless
        `start_milvus_operator` ran before)."""
        if shape == "statefulset":
            return [await self.create_query_node_statefulset(replicas=replicas, namespace=namespace, env=env)]
        if shape == "milvus-operator":
            await self.start_milvus_operator()
            return [await self.kube.store.create(MILVUSES, milvus_cr(DEFAULT_RELEASE, replicas, namespace, env))]
        if shape == "per-group":
            manifests = per_group_deployments(DEFAULT_RELEASE, resource_groups, replicas, namespace, env)
        else:
            manifests = [helm_query_node_deployment(DEFAULT_RELEASE, replicas, namespace, env)]
        return [await self.kube.store.create(DEPLOYMENTS, manifest) for manifest in manifests]


def server_tls(cfg: SandboxConfig, directory: Path) -> ServerTls | None:
    """The simulator's TLS from the options: none, generated certificates (`--tls self-signed[-mutual]`, written
    to `directory`) or the given files."""
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if cfg.tls != "off":
        if cfg.tls_cert is not None or cfg.tls_client_ca is not None:
            raise ValueError(f"--tls {cfg.tls} generates its certificates: leave out --tls-cert/--tls-client-ca")
        return self_signed(directory, cfg.host, mutual=cfg.tls == "self-signed-mutual")
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        return ServerTls(Path(cfg.tls_cert), Path(cfg.tls_key),
                         Path(cfg.tls_client_ca) if cfg.tls_client_ca is not None else None)
    if cfg.tls_client_ca is not None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
    return None
class _ServedMetrics:
    """The metrics server as a part of the sandbox: on the real backend registered with kube-apiserver through
    the control plane's own client (as the wiring's, its writes are not the API clients'), and unregistered
    before the server stops."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        store = sandbox.kube.store
        self.api = store if isinstance(store, KubeRestClient) else None

    async def register(self) -> None:
        if self.api is not None:
            await self.sandbox.metrics.register(self.api)

    async def stop(self) -> None:
        try:
            if self.api is not None:
                await self.sandbox.metrics.unregister(self.api)
        finally:
            await self.sandbox.metrics.stop()


def query_node_statefulset(name: str, replicas: int, namespace: str,
                           env: Mapping[str, str] | None = None) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": name,
                "app.kubernetes.io/component": "querynode"}
    container = {
        "name": "querynode",
        "image": MILVUS_IMAGE,
        "command": ["milvus", "run", "querynode"],
        "env": [{"name": key, "value": value} for key, value in (env or {}).items()],
        "ports": [
            {"name": "querynode", "containerPort": QUERY_NODE_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": MANAGEMENT_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": MANAGEMENT_PORT}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(selector)},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(selector)},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
    }


async def run_sandbox_forever(config: SandboxConfig,
                              on_ready: Callable[[dict[str, str]], None] | None = None,
                              query_nodes: int = 0, workload: Shape = "statefulset",
                              resource_groups: tuple[str, ...] = ("rg1", "rg2")) -> None:
    """Serve the sandbox until SIGINT/SIGTERM, then stop it cleanly. With `query_nodes`, query nodes in the
    `workload` shape are created first (something to operate on; `Sandbox.create_query_nodes`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Sandbox(config) as sandbox:
            if query_nodes:
                created = await sandbox.create_query_nodes(workload, query_nodes, config.namespace,
                                                           resource_groups=resource_groups)
                for obj in created:
                    group = obj["apiVersion"].rpartition("/")[0]  # kubectl's kind.group for a custom resource
                    kind = obj["kind"].lower() + ("" if group in ("", "apps") else f".{group}")
                    print(f"{kind}: {config.namespace}/{obj['metadata']['name']} ({query_nodes} query nodes)")
            endpoints = sandbox.endpoints()
            for key, value in endpoints.items():
                print(f"{key}: {value}")
            print(f"export KUBECONFIG={endpoints['kubeconfig']}", flush=True)
            if on_ready is not None:
                on_ready(endpoints)
            await stop.wait()
    finally:
        for sig in handled:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

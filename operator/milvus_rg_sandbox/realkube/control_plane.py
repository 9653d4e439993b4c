"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes and kubelets), each a child process ended by its pid.

The binaries come from `scripts/control-plane.sh build` (docs/real-kubernetes.md). Every start uses fresh
OS-assigned ports, a fresh etcd data dir, a fresh service-account key and a random admin token, so several
control planes can run side by side (one per test module, say). kube-apiserver keeps an audit log of every
write, read back as the embedded server's write log (`mutations`, see `audit.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from milvus_rg_sandbox.kube.server import Fault, Mutation
from milvus_rg_sandbox.realkube.audit import APISERVER_USER, AuditLog, apiserver_flags
from milvus_rg_sandbox.realkube.client import ApiStatusError, EmbeddedOnly, KubeRestClient
from milvus_rg_sandbox.realkube.fault_proxy import FaultProxy

logger = logging.getLogger(__name__)

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
KWOK_STAGES = "kwok-stages.yaml"  # written beside the binaries by the build
BIN_ENV = "MILVUS_RG_CONTROL_PLANE_BIN"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# Pods get addresses from this loopback range (kwok's --cidr): nothing listens there, and no traffic of a
# test ever leaves the machine.
POD_CIDR = "127.1.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"  # only allocated as strings in Service objects; never routed
CONTROLLERS = (
    "statefulset-controller", "replicaset-controller", "deployment-controller", "disruption-controller",
    "garbage-collector-controller",
    "serviceaccount-controller", "serviceaccount-token-controller", "namespace-controller",
    "root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
    "horizontal-pod-autoscaler-controller",
)
# kube-controller-manager's and kube-scheduler's client-side rate limit, as on a control plane tuned for large
# scale-ups (defaults 20/30 and 50/100; 200/400 still held the StatefulSet controller's 1,000 pod creates ~1 s).
CLIENT_RATE_LIMIT = ("--kube-api-qps=1000", "--kube-api-burst=2000")
KWOK_POD_WORKERS = 32  # kwok's default is 4: see kwok_configuration
# kwok v0.8.0 can die at start with this Go runtime error (its CEL type registry written by two workers at
# once; seen once in a CI run, in NodeController.preprocess): `start` then starts the control plane again.
KWOK_STARTUP_RACE = "concurrent map writes"
START_TIMEOUT = 60.0
# Each process of the control plane (and the sandbox's own client) has a user of its own, all in
# system:masters: the audit log tells their writes from the clients' (the operator, tests, kubectl).
COMPONENT_USERS = {"kube-controller-manager": "system:kube-controller-manager",
                   "kube-scheduler": "system:kube-scheduler", "kwok": "kwok", "sandbox": "milvus-rg-sandbox"}


class ControlPlaneUnavailable(RuntimeError):
    """The binaries are not built (or Go is missing); the message says how to build them."""


def _repo_script() -> Path:
    return Path(__file__).resolve().parents[3] / "scripts" / "control-plane.sh"


def find_binaries() -> Path:
    """The directory holding the five binaries: $MILVUS_RG_CONTROL_PLANE_BIN, else the build cache."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        bin_dir = Path(configured)
    else:
        script = _repo_script()
        if not script.exists() or shutil.which("go") is None:
            raise ControlPlaneUnavailable(
                f"the real Kubernetes tier needs Go and {script.name} (or ${BIN_ENV}); see docs/real-kubernetes.md")
        result = subprocess.run([str(script), "bin"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ControlPlaneUnavailable(
                "the control plane is not built: run `make control-plane` (scripts/control-plane.sh build)")
        bin_dir = Path(result.stdout.strip())
    missing = [name for name in (*BINARIES, KWOK_STAGES) if not (bin_dir / name).is_file()]
    if missing:
        raise ControlPlaneUnavailable(f"{bin_dir} lacks {', '.join(missing)}: run `make control-plane`")
    return bin_dir


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def kubeconfig_document(server: str, token: str, namespace: str = "default") -> dict[str, Any]:
    """The same shape as the embedded sandbox's kubeconfig (JSON is YAML)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "sandbox", "user": {"token": token}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace}}],
        "current-context": "sandbox",
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str, token: str, namespace: str = "default") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kubeconfig_document(server, token, namespace), indent=2))
    return path


@dataclass
class ChildProcess:
    """One binary of the control plane. A plain `subprocess.Popen`, bound to no event loop, so a control
    plane started in one loop (a pytest session fixture) can be stopped from anywhere."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; returns once the process is reaped."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class RealControlPlane:
    """Starts and stops the five processes in order; `url`, `token` and `write_kubeconfig` once started."""

    workdir: Path
    host: str = "127.0.0.1"
    node_count: int = 3
    pods_per_node: int = 1000
    bin_dir: Path | None = None
    # The HPA controller's period and downscale stabilization window (kube-controller-manager's defaults 15 s and
    # 5 min; tests shorten them).
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: float = 300.0
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    children: list[ChildProcess] = field(default_factory=list)
    client: KubeRestClient = field(init=False)
    component_tokens: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self.component_tokens = {component: secrets.token_hex(16) for component in COMPONENT_USERS}
        self.client = KubeRestClient(self.url, self.component_tokens["sandbox"])
        self._audit = AuditLog(self.audit_log_path, {APISERVER_USER, *COMPONENT_USERS.values()})

    @property
    def store(self) -> KubeRestClient:
        """The client, under the embedded server's name for its object store (`create(resource, obj)`)."""
        return self.client

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log_path(self) -> Path:
        return self.workdir / "logs" / "audit.log"

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, self.token, namespace)

    def serving_tls(self) -> ssl.SSLContext:
        """A server context with kube-apiserver's own (self-signed) serving certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certs = self.workdir / "certs"
        context.load_cert_chain(certs / "apiserver.crt", certs / "apiserver.key")
        return context

    @property
    def mutations(self) -> list[Mutation]:
        """Every write request of the API's clients (not the control plane's own processes), with its user
        agent and answer, as the embedded server's `mutations`: read from the audit log."""
        return self._audit.writes()

    @property
    def lists(self) -> list[Mutation]:
        """Every LIST request of the API's clients, as the embedded server's `lists`."""
        return self._audit.lists()

    def inject_fault(self, *args: Any, **kwargs: Any) -> Any:
        raise EmbeddedOnly("fault injection into API answers needs the embedded API server or a "
                           "SharedControlPlane (its fault proxy)")

    def pids(self) -> dict[str, int]:
        return {child.name: child.pid for child in self.children}

    async def start(self) -> None:
        bin_dir = self.bin_dir or find_binaries()
        self.workdir = self.workdir.absolute()
        self._audit = AuditLog(self.audit_log_path, self._audit.ignored_users)
        for attempt in (1, 2):
            shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
            (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
            try:
                await self._start(bin_dir)
                return
            except RuntimeError as exc:
                await self.stop()
                if attempt == 2 or KWOK_STARTUP_RACE not in str(exc):
                    raise
                logger.warning("kwok crashed while starting (%s), a known race of kwok v0.8.0: starting again",
                               KWOK_STARTUP_RACE)
            except BaseException:
                await self.stop()
                raise

    async def _start(self, bin_dir: Path) -> None:
        work = self.workdir
        etcd_port, peer_port = free_port(self.host), free_port(self.host)
        etcd_url = f"http://{self.host}:{etcd_port}"
        self._spawn(bin_dir, "etcd", [
            "--name=default", f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://{self.host}:{peer_port}",
            f"--initial-advertise-peer-urls=http://{self.host}:{peer_port}",
            f"--initial-cluster=default=http://{self.host}:{peer_port}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ])
        await self._wait_http(f"{etcd_url}/health", "etcd")

        key = work / "service-account.key"
        await self._service_account_key(key)
        users = {self.token: "admin", **{self.component_tokens[c]: user for c, user in COMPONENT_USERS.items()}}
        (work / "tokens.csv").write_text("".join(f"{token},{user},{user}-uid,system:masters\n"
                                                 for token, user in users.items()))
        self._spawn(bin_dir, "kube-apiserver", [
            f"--etcd-servers={etcd_url}", f"--bind-address={self.host}", f"--advertise-address={self.host}",
            f"--secure-port={self.port}", f"--cert-dir={work / 'certs'}",
            "--authorization-mode=Node,RBAC", f"--token-auth-file={work / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={key}", f"--service-account-signing-key-file={key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false",
            "--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none",
            # Its not-ready taint on new nodes is lifted by the node-lifecycle controller, which we do not run:
            # kwok's nodes send no heartbeats, and that controller would evict their pods.
            "--disable-admission-plugins=TaintNodesByCondition",
            *apiserver_flags(self.audit_log_path, work / "audit-policy.yaml"),
        ])
        await self._wait_ready()
        self.write_kubeconfig(self.admin_kubeconfig)
        self._spawn(bin_dir, "kube-controller-manager", [
            self._component_kubeconfig("kube-controller-manager"), f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",
            f"--service-account-private-key-file={key}", f"--root-ca-file={work / 'certs' / 'apiserver.crt'}",
            f"--bind-address={self.host}", f"--secure-port={free_port(self.host)}",
            "--concurrent-statefulset-syncs=10", *CLIENT_RATE_LIMIT,
            f"--horizontal-pod-autoscaler-sync-period={_duration(self.hpa_sync_period)}",
            f"--horizontal-pod-autoscaler-downscale-stabilization={_duration(self.hpa_downscale_stabilization)}",
        ])
        self._spawn(bin_dir, "kube-scheduler", [
            self._component_kubeconfig("kube-scheduler"), "--leader-elect=false", f"--bind-address={self.host}",
            f"--secure-port={free_port(self.host)}", *CLIENT_RATE_LIMIT,
        ])
        self._spawn(bin_dir, "kwok", [
            self._component_kubeconfig("kwok"), f"--config={bin_dir / KWOK_STAGES}",
            f"--config={self._kwok_configuration()}",
            f"--manage-nodes-with-annotation-selector={'='.join(FAKE_NODE_ANNOTATION)}",
            f"--node-ip={self.host}", f"--cidr={POD_CIDR}",
            f"--server-address={self.host}:{free_port(self.host)}",
        ])
        for index in range(self.node_count):
            await self.client.create("v1/nodes", fake_node(f"kwok-node-{index}", self.pods_per_node))
        await self._wait_default_service_account()

    def _kwok_configuration(self) -> Path:
        """kwok's options file (a second `--config`); its path."""
        path = self.workdir / "kwok-configuration.yaml"
        path.write_text(json.dumps(kwok_configuration(), indent=2))  # JSON is YAML
        return path

    def _component_kubeconfig(self, component: str) -> str:
        """The `--kubeconfig` flag of a component, with its own token."""
        path = self.workdir / f"{component}.kubeconfig"
        path.write_text(json.dumps(kubeconfig_document(self.url, self.component_tokens[component]), indent=2))
        return f"--kubeconfig={path}"

    def _spawn(self, bin_dir: Path, name: str, args: Sequence[str]) -> ChildProcess:
        log_path = self.workdir / "logs" / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen([str(bin_dir / name), *args], stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=log, cwd=self.workdir, start_new_session=True)
        child = ChildProcess(name, process, log_path)
        self.children.append(child)
        logger.info("started %s (pid %d), log %s", name, child.pid, log_path)
        return child

    def _check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}")

    async def _wait_http(self, url: str, what: str) -> None:
        async with aiohttp.ClientSession() as session:
            await self._poll(what, lambda: _http_ok(session, url))

    async def _wait_ready(self) -> None:
        await self._poll("kube-apiserver /readyz", lambda: self.client.ok("/readyz"))
        # The bootstrap RBAC roles are in place once /readyz answers (its poststarthook check).

    async def _wait_default_service_account(self) -> None:
        async def exists() -> bool:
            return await self.client.get("v1/serviceaccounts", "default", "default") is not None

        await self._poll("the default ServiceAccount", exists)

    async def _poll(self, what: str, probe: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            self._check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError, ssl.SSLError):
                if await probe():
                    return
            if loop.time() > deadline:
                raise TimeoutError(f"{what} not ready after {START_TIMEOUT} s; logs in {self.workdir / 'logs'}")
            await asyncio.sleep(0.1)  # a child process offers nothing to wait on

    async def _service_account_key(self, path: Path) -> None:
        process = await asyncio.create_subprocess_exec(
            "openssl", "genrsa", "-out", str(path), "2048",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"openssl genrsa failed: {stderr.decode(errors='replace')}")

    async def stop(self) -> None:
        await self.client.close()
        await asyncio.to_thread(self.stop_processes)

    def stop_processes(self) -> None:
        """End the processes by pid, kwok first and etcd last (no event loop needed)."""
        children, self.children = self.children, []
        for child in reversed(children):
            child.stop()

    async def __aenter__(self) -> RealControlPlane:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _duration(seconds: float) -> str:
    """A Go duration flag value: whole milliseconds."""
    return f"{round(seconds * 1000)}ms"


async def _http_ok(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
        return response.status == 200


def kwok_configuration() -> dict[str, Any]:
    """kwok's KwokConfiguration. kwok applies its defaults only when no such document is given
    (sigs.k8s.io/kwok v0.8.0 pkg/config/vars.go GetKwokConfiguration), so every default is spelled out
    (pkg/apis/config/v1alpha1/zz_generated.defaults.go); --cidr, --node-ip and the node selector stay flags."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "enableDebuggingHandlers": True, "enableContentionProfiling": False, "enableProfilingHandler": True,
            # Workers that play pod stages (one status PATCH each): kwok's default 4 made pods Ready at about
            # 40 per second with the API server loaded (bench/real_kube_scale.py), the slowest stage of 1,000 pods.
            "podPlayStageParallelism": KWOK_POD_WORKERS,
            "nodePlayStageParallelism": 4, "nodeLeaseParallelism": 4, "podsOnNodeSyncParallelism": 1,
            "enablePodsOnNodeSyncListPager": True, "enablePodsOnNodeSyncStreamWatch": False,
        },
    }


def fake_node(name: str, pods: int) -> dict[str, Any]:
    """A Node that kwok manages (its annotation) and keeps Ready; the scheduler binds pods to it."""
    capacity = {"cpu": "64", "memory": "512Gi", "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "type": "kwok"},
        },
        "spec": {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
KEPT_CONFIGMAPS = frozenset({"kube-root-ca.crt"})
# Namespaced kinds a test may leave behind, deleted by `reset` (custom resources are found through the CRDs).
RESETTABLE = ("apps/v1/statefulsets", "apps/v1/deployments", "apps/v1/replicasets",
              "policy/v1/poddisruptionbudgets", "v1/services",
              "v1/secrets", "v1/configmaps", "v1/events", "autoscaling/v2/horizontalpodautoscalers",
              "rbac.authorization.k8s.io/v1/roles", "rbac.authorization.k8s.io/v1/rolebindings")


@dataclass
class SharedControlPlane:
    """One started control plane lent to several sandboxes in turn: `stop` puts the cluster back as it was
    (`reset`), so a test suite pays the start-up once. Its clients reach kube-apiserver through a
    `FaultProxy` (started by `start`), so that `inject_fault` works as on the embedded API server."""

    control_plane: RealControlPlane
    drop_crds_on_stop: bool = False

    def __post_init__(self) -> None:
        self._first_write = len(self.control_plane.mutations)
        self._first_list = len(self.control_plane.lists)
        self.proxy = FaultProxy(self.control_plane.url, self.control_plane.host, tls=self.control_plane.serving_tls())

    @property
    def store(self) -> KubeRestClient:
        return self.control_plane.store

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def mutations(self) -> list[Mutation]:
        """The writes since this sandbox borrowed the control plane, with those a fault answered."""
        return sorted([*self.control_plane.mutations[self._first_write:], *self.proxy.faulted],
                      key=lambda write: write.timestamp)

    @property
    def lists(self) -> list[Mutation]:
        """The LIST requests since this sandbox borrowed the control plane."""
        return self.control_plane.lists[self._first_list:]

    def inject_fault(self, method: str | None, path_pattern: str, status: int, times: int = 1,
                     user_agent: str | None = None) -> Fault:
        return self.proxy.inject_fault(method, path_pattern, status, times, user_agent)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, self.control_plane.token, namespace)

    async def start(self) -> None:
        self.control_plane._check_alive()
        self._first_write = len(self.control_plane.mutations)
        self._first_list = len(self.control_plane.lists)
        await self.proxy.start()

    async def stop(self) -> None:
        await self.proxy.stop()
        await reset(self.control_plane.store, drop_crds=self.drop_crds_on_stop)
        await self.control_plane.client.close()  # opened in this sandbox's event loop; the next opens its own


async def reset(client: KubeRestClient, timeout: float = 60.0, *, drop_crds: bool = False) -> None:
    """Delete what tests create: custom resources (finalizers dropped), workloads, pods, namespaces other
    than the system ones and cluster RBAC not from the bootstrap policy; CRDs stay unless `drop_crds`.
    Returns once no pod in `default`, no namespace it deleted (the namespace controller empties one first) and,
    with `drop_crds`, no CRD is left."""
    crds = await client.list(CRDS)
    custom = [f"{c['spec']['group']}/{v['name']}/{c['spec']['names']['plural']}"
              for c in crds if c["spec"].get("scope") == "Namespaced" for v in c["spec"]["versions"] if v.get("served")]
    for resource in custom:
        try:
            objects = await client.list(resource)
        except ApiStatusError as error:  # a CRD just created or being deleted is not served yet, or no more
            if error.status not in (404, 429, 503):
                raise
            objects = []
        for obj in objects:
            meta = obj["metadata"]
            if meta.get("finalizers"):
                await _ignore_missing(client.patch(resource, meta["namespace"], meta["name"],
                                                   {"metadata": {"finalizers": None}}))
            await client.delete(resource, meta["namespace"], meta["name"])
    for resource in RESETTABLE:
        for obj in await client.list(resource):
            meta = obj["metadata"]
            if meta["namespace"] in SYSTEM_NAMESPACES - {"default"} or meta["name"] in KEPT_CONFIGMAPS:
                continue
            if meta.get("finalizers"):
                await _ignore_missing(client.patch(resource, meta["namespace"], meta["name"],
                                                   {"metadata": {"finalizers": None}}))
            await client.delete(resource, meta["namespace"], meta["name"])
    for obj in await client.list("v1/pods"):
        meta = obj["metadata"]
        if meta["namespace"] not in SYSTEM_NAMESPACES - {"default"}:
            await client.delete("v1/pods", meta["namespace"], meta["name"], grace_seconds=0)
    for obj in await client.list("v1/namespaces"):
        if obj["metadata"]["name"] not in SYSTEM_NAMESPACES:
            await client.delete("v1/namespaces", "", obj["metadata"]["name"])
    for resource in ("rbac.authorization.k8s.io/v1/clusterroles", "rbac.authorization.k8s.io/v1/clusterrolebindings"):
        for obj in await client.list(resource):
            if (obj["metadata"].get("labels") or {}).get("kubernetes.io/bootstrapping") != "rbac-defaults":
                await client.delete(resource, "", obj["metadata"]["name"])
    crd_names = [c["metadata"]["name"] for c in crds] if drop_crds else []
    for name in crd_names:
        await client.delete(CRDS, "", name)

    async def leftovers() -> list[str]:
        pods = [f"pod {p['metadata']['name']}" for p in await client.list("v1/pods", "default")]
        namespaces = [f"namespace {n['metadata']['name']}" for n in await client.list("v1/namespaces")
                      if n["metadata"]["name"] not in SYSTEM_NAMESPACES]
        crds_left = await client.list(CRDS) if crd_names else []
        return pods + namespaces + [f"CRD {c['metadata']['name']}" for c in crds_left]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while left := await leftovers():
        if loop.time() > deadline:
            raise TimeoutError(f"still present after reset: {', '.join(left)}")
        await asyncio.sleep(0.05)  # deletion has no completion event to wait on but the list


async def _ignore_missing(call: Any) -> None:
    try:
        await call
    except ApiStatusError as error:
        if error.status != 404:
            raise

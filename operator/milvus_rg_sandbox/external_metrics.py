"""The external metrics API (`external.metrics.k8s.io/v1beta1`) with values a test sets, over HTTPS: what a
metrics adapter (prometheus-adapter, KEDA) serves to the HPA controller, e.g. a query load per resource group:

    sandbox.metrics.set("milvus_query_load", 3, labels={"resource_group": "rg1"})

On the real backend `register` makes it an aggregated API of kube-apiserver (an APIService), so the
kube-controller-manager's HPA controller reads it through the aggregator, as in a cluster. The aggregator
dials an APIService's Service, and kube-apiserver here runs without kube-proxy, so a ClusterIP would lead
nowhere; an Endpoints/EndpointSlice address (what `--enable-aggregator-routing` dials) may not be a loopback
address. An ExternalName Service is resolved by name instead (k8s.io/apiserver pkg/util/proxy `ResolveCluster`:
`https://<externalName>:<APIService port>`) and the aggregator's availability check skips endpoints for it
(kube-aggregator `remote_available_controller.go`), so the Service names this server's loopback host and no
flag of kube-apiserver changes. The APIService skips TLS verification (`insecureSkipTLSVerify`); the server's
certificate is a fresh self-signed one. On the embedded backend the same paths are served by this server
alone (its `url`): there is no aggregator and no HPA controller there.

Besides the API, `PUT /sandbox/v1/namespaces/<ns>/metrics/<name>` with `{"value": 3, "labels": {...}}` sets a
value from outside the process (the `milvus-rg-operator sandbox` command).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import aiohttp.web

from milvus_rg_sandbox.kube.selectors import parse_label_selector
from milvus_rg_sandbox.realkube.client import ApiStatusError, KubeRestClient
from milvus_rg_sandbox.workloads import now_rfc3339

logger = logging.getLogger(__name__)

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
API_PATH = f"/apis/{GROUP_VERSION}"
APISERVICES = "apiregistration.k8s.io/v1/apiservices"
APISERVICE_NAME = f"{VERSION}.{GROUP}"
SERVICES = "v1/services"
SERVICE = ("kube-system", "sandbox-external-metrics")  # kept by the real backend's reset (a system namespace)
CERT_DAYS = "7"


@dataclass
class Series:
    """One time series of an external metric: its labels and its current value."""

    name: str
    namespace: str
    labels: dict[str, str]
    value: float
    timestamp: str = field(default_factory=now_rfc3339)


def quantity(value: float) -> str:
    """A Kubernetes quantity in its canonical form: a whole number, else thousandths ("1500m"), millionths
    ("2000500u") or billionths, rounded up past those."""
    exact = Decimal(str(value))
    for suffix, factor in (("", 1), ("m", 10**3), ("u", 10**6)):
        scaled = exact * factor
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    return f"{int((exact * 10**9).to_integral_value(rounding=ROUND_CEILING))}n"


class ExternalMetrics:
    """Holds the series (`set`, `remove`) and serves them; `reads` counts the metric reads (the HPA's)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.reads = 0
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], Series] = {}
        self._runner: aiohttp.web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def set(self, name: str, value: float, labels: dict[str, str] | None = None, namespace: str = "default") -> None:
        """The metric `name` with these exact labels is `value` from now on."""
        labels = dict(labels or {})
        self._series[(namespace, name, tuple(sorted(labels.items())))] = Series(name, namespace, labels, value)

    def remove(self, name: str, labels: dict[str, str] | None = None, namespace: str = "default") -> None:
        self._series.pop((namespace, name, tuple(sorted((labels or {}).items()))), None)

    def series(self, name: str, namespace: str, selector: str | None = None) -> list[Series]:
        matches = parse_label_selector(selector)
        return [s for (ns, metric, _), s in sorted(self._series.items())
                if ns == namespace and metric == name and matches({"metadata": {"labels": s.labels}})]

    async def start(self, workdir: Path) -> None:
        """Serve HTTPS on `host:port` with a self-signed certificate written to `workdir`."""
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        cert, key = workdir / "metrics.crt", workdir / "metrics.key"
        await _self_signed_certificate(cert, key, self.host)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        app = aiohttp.web.Application()
        app.router.add_get(API_PATH, self._resources)
        app.router.add_get(API_PATH + "/namespaces/{namespace}/{metric}", self._values)
        app.router.add_get(f"/apis/{GROUP}", self._group)
        app.router.add_get("/apis", self._groups)
        for probe in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(probe, self._ok)
        app.router.add_put("/sandbox/v1/namespaces/{namespace}/metrics/{metric}", self._put)
        self._runner = aiohttp.web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await aiohttp.web.TCPSite(self._runner, self.host, self.port, ssl_context=tls).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- the API -----

    def _resource_list(self) -> dict[str, Any]:
        names = sorted({name for (_, name, _) in self._series})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
                "resources": [{"name": name, "singularName": "", "namespaced": True,
                               "kind": "ExternalMetricValueList", "verbs": ["get"]} for name in names]}

    async def _resources(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self._resource_list())

    async def _values(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.reads += 1
        found = self.series(request.match_info["metric"], request.match_info["namespace"],
                            request.query.get("labelSelector"))
        return aiohttp.web.json_response({
            "kind": "ExternalMetricValueList", "apiVersion": GROUP_VERSION, "metadata": {},
            "items": [{"metricName": s.name, "metricLabels": s.labels, "timestamp": s.timestamp,
                       "value": quantity(s.value)} for s in found],
        })

    def _group_document(self) -> dict[str, Any]:
        version = {"groupVersion": GROUP_VERSION, "version": VERSION}
        return {"name": GROUP, "versions": [version], "preferredVersion": version}

    async def _group(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group_document()})

    async def _groups(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"kind": "APIGroupList", "apiVersion": "v1",
                                          "groups": [self._group_document()]})

    async def _ok(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="ok")

    async def _put(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            body = json.loads(await request.read())
            value = float(body["value"])
            labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return aiohttp.web.json_response({"error": f"expected {{value, labels}}: {error}"}, status=400)
        self.set(request.match_info["metric"], value, labels, request.match_info["namespace"])
        return aiohttp.web.json_response({"value": quantity(value), "labels": labels})

    # ----- registration with kube-apiserver -----

    async def register(self, api: KubeRestClient) -> None:
        """Make this server kube-apiserver's `external.metrics.k8s.io/v1beta1` (replacing an older
        registration of the group) and wait until the aggregator reports it Available."""
        namespace, name = SERVICE
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                   "spec": {"type": "ExternalName", "externalName": self.host}}
        apiservice = {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE_NAME},
            "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                     "insecureSkipTLSVerify": True,
                     "service": {"namespace": namespace, "name": name, "port": self.port}},
        }
        await api.delete(APISERVICES, "", APISERVICE_NAME)
        await api.delete(SERVICES, namespace, name)
        await api.create(SERVICES, service)
        await api.create(APISERVICES, apiservice)
        await _wait_available(api)

    async def unregister(self, api: KubeRestClient) -> None:
        """Remove the registration: an aggregated API that does not answer stalls the namespace controller's
        and garbage collector's discovery."""
        await api.delete(APISERVICES, "", APISERVICE_NAME)
        await api.delete(SERVICES, *SERVICE)


async def _wait_available(api: KubeRestClient, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    conditions: list[Any] = []
    while True:
        try:
            found = await api.get(APISERVICES, "", APISERVICE_NAME)
        except ApiStatusError:
            found = None
        conditions = ((found or {}).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"APIService {APISERVICE_NAME} not Available after {timeout} s: {conditions}")
        await asyncio.sleep(0.1)  # the aggregator's availability controller offers nothing to wait on


async def _self_signed_certificate(cert: Path, key: Path, host: str) -> None:
    """A fresh EC key and a self-signed certificate for `host` (openssl, as the control plane's keys)."""
    try:
        ipaddress.ip_address(host)
        alt_name = f"IP:{host}"
    except ValueError:
        alt_name = f"DNS:{host}"
    process = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", CERT_DAYS, "-subj", "/CN=sandbox-external-metrics",
        "-addext", f"subjectAltName={alt_name}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"openssl req failed: {stderr.decode(errors='replace')}")

"""Prometheus metrics of the operator (`--metrics-port`), in a registry of their own.

Every name starts with `milvusrg_`; `pool` is "namespace/name". The reconcile pass reports to an
`OperatorMetrics`; `serve` exposes its registry over HTTP at /metrics. docs/operations.md "Metrics"
lists every metric (a test keeps the two in step).
"""

from __future__ import annotations

import collections
import threading
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

from milvus_rg_operator.adapters.milvus import ManagementUnavailable, MilvusAuthError, MilvusError, MilvusUnsupported
from milvus_rg_operator.api.models import DrainingNode
from milvus_rg_operator.core import balance
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import DeclaredGroup, DrainRecord, MilvusState

PREFIX = "milvusrg_"
PASS_RESULTS = ("converged", "progressing", "invalid", "paused", "failed")
SUCCESSFUL_RESULTS = frozenset({"converged", "progressing"})
WRITE_TARGETS = ("kubernetes", "milvus")
DRAIN_PHASES: tuple[str, ...] = typing.get_args(DrainingNode.model_fields["phase"].annotation)
# A pass takes milliseconds against a healthy cluster and up to the clients' timeouts when one is slow.
PASS_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def milvus_error_code(exc: MilvusError) -> str:
    """The `code` label of milvus_errors_total for an error of the Milvus adapter."""
    if isinstance(exc, MilvusAuthError):
        return "auth"
    if isinstance(exc, ManagementUnavailable):
        return "management"
    if isinstance(exc, MilvusUnsupported):
        return "unsupported"
    if exc.code is not None:
        return str(exc.code)
    return "unavailable" if exc.unreachable else "error"


class OperatorMetrics:
    """The operator's metrics. Pass a fresh `CollectorRegistry` per test; the default is a new one too
    (never prometheus_client's global registry), with the process and GC collectors added."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.passes = Counter(
            f"{PREFIX}reconcile_passes", "Reconcile passes by pool and result "
            "(converged, progressing, invalid, paused, failed).", ["pool", "result"], registry=registry)
        self.pass_duration = Histogram(
            f"{PREFIX}reconcile_pass_duration_seconds", "Duration of one reconcile pass.", ["pool"],
            buckets=PASS_DURATION_BUCKETS, registry=registry)
        self.last_success = Gauge(
            f"{PREFIX}last_success_timestamp_seconds", "Unix time of the pool's last pass that converged "
            "or made progress.", ["pool"], registry=registry)
        self.writes = Counter(
            f"{PREFIX}writes", "Writes made by the operator, by target (kubernetes, milvus) and verb.",
            ["target", "verb"], registry=registry)
        self.drain_gauge = Gauge(
            f"{PREFIX}drains", "Nodes being drained, by pool and drain phase.", ["pool", "phase"],
            registry=registry)
        self.group_desired = Gauge(
            f"{PREFIX}group_desired_nodes", "Nodes a resource group requests (its Milvus requests.nodeNum).",
            ["pool", "group"], registry=registry)
        self.group_actual = Gauge(
            f"{PREFIX}group_actual_nodes", "Nodes Milvus reports in the resource group.", ["pool", "group"],
            registry=registry)
        self.unexpected_removals = Counter(
            f"{PREFIX}unexpected_removals", "Pods a scale-in was to remove that still ran once the workload was "
            "down to its replicas (its controller removed others).", ["pool"], registry=registry)
        self.milvus_errors = Counter(
            f"{PREFIX}milvus_errors", "Errors from Milvus by code: the merr code, or unavailable, "
            "unsupported, auth, management, error.", ["code"], registry=registry)
        node_labels = ["pool", "group", "pod"]
        self.node_segments = Gauge(f"{PREFIX}node_segments", "Sealed segments a query node of the group holds.",
                                   node_labels, registry=registry)
        self.node_rows = Gauge(f"{PREFIX}node_rows", "Rows of the sealed segments a query node holds.", node_labels,
                               registry=registry)
        self.node_memory = Gauge(f"{PREFIX}node_memory_bytes", "Memory of the sealed segments a query node holds "
                                 "(GetQuerySegmentInfo mem_size).", node_labels, registry=registry)
        self.node_channels = Gauge(f"{PREFIX}node_channels", "Channels (shard delegators) a query node leads.",
                                   node_labels, registry=registry)
        self.group_spread = Gauge(
            f"{PREFIX}group_memory_spread_percent", "Largest segment-memory difference between two nodes of one "
            "replica of the group, in percent of the larger.", ["pool", "group"], registry=registry)
        self.leader = Gauge(
            f"{PREFIX}leader", "1 while this replica leads (holds the Lease and runs the reconcile passes), "
            "else 0.", registry=registry)
        self._groups: dict[str, set[str]] = {}  # pool -> groups with gauges, so they can be removed
        self._nodes: dict[str, set[tuple[str, str]]] = {}  # pool -> (group, pod) with node gauges
        self._spreads: dict[str, set[str]] = {}  # pool -> groups with a spread gauge
        self._lock = threading.Lock()  # passes run on the event loop, scrapes on the server's thread

    def pass_finished(self, pool: str, result: str, seconds: float) -> None:
        if result not in PASS_RESULTS:
            raise ValueError(f"unknown pass result {result!r}: one of {', '.join(PASS_RESULTS)}")
        self.passes.labels(pool=pool, result=result).inc()
        self.pass_duration.labels(pool=pool).observe(seconds)
        if result in SUCCESSFUL_RESULTS:
            self.last_success.labels(pool=pool).set_to_current_time()

    def write(self, target: str, verb: str) -> None:
        if target not in WRITE_TARGETS:
            raise ValueError(f"unknown write target {target!r}: one of {', '.join(WRITE_TARGETS)}")
        self.writes.labels(target=target, verb=verb).inc()

    def drains(self, pool: str, by_phase: Mapping[str, int]) -> None:
        """The pool's drains per phase; every known phase absent from `by_phase` is set to 0."""
        for phase in (*DRAIN_PHASES, *(p for p in by_phase if p not in DRAIN_PHASES)):
            self.drain_gauge.labels(pool=pool, phase=phase).set(by_phase.get(phase, 0))

    def group_nodes(self, pool: str, group: str, desired: int, actual: int) -> None:
        with self._lock:
            self._groups.setdefault(pool, set()).add(group)
        self.group_desired.labels(pool=pool, group=group).set(desired)
        self.group_actual.labels(pool=pool, group=group).set(actual)

    def retain_groups(self, pool: str, groups: Collection[str]) -> None:
        """Drop the gauges of the pool's groups not in `groups` (a group deleted or renamed)."""
        with self._lock:
            known = self._groups.get(pool, set())
            gone = known - set(groups)
            known -= gone
        for group in gone:
            self.group_desired.remove(pool, group)
            self.group_actual.remove(pool, group)

    def pass_state(self, pool: str, groups: Sequence[DeclaredGroup], milvus: MilvusState,
                   drains: Sequence[DrainRecord], unexpected_removals: int = 0) -> None:
        """What a pass leaves: drains per phase, each declared group's requested and actual nodes, pods its
        workload removed other than the ones chosen and, when the pass read the collections, what each node of
        the group holds and the group's widest replica spread."""
        if unexpected_removals:
            self.unexpected_removals.labels(pool=pool).inc(unexpected_removals)
        self.drains(pool, collections.Counter(d.phase for d in drains))
        shown = []
        for group in groups:
            if group.deleting:
                continue
            name = resolve_group_name(group)
            found = milvus.groups.get(name)
            self.group_nodes(pool, name, group.requests, len(found.node_ids) if found else 0)
            shown.append(name)
        self.retain_groups(pool, shown)
        self.data_state(pool, shown, milvus)

    def data_state(self, pool: str, groups: Sequence[str], milvus: MilvusState) -> None:
        """Per node of `groups`: segments, rows, memory, channels; per group: its widest replica spread. Series of
        nodes and groups no longer there are removed (all of them when the collections were not read)."""
        nodes: set[tuple[str, str]] = set()
        spreads: set[str] = set()
        if milvus.collections is not None:
            loads = balance.node_loads(milvus)
            for name in groups:
                found = milvus.groups.get(name)
                for node_id in found.node_ids if found else ():
                    node = milvus.nodes.get(node_id)
                    pod = node.hostname if node is not None and node.hostname else str(node_id)
                    load = loads.get(node_id, balance.NodeLoad())
                    for gauge, value in ((self.node_segments, load.segments), (self.node_rows, load.rows),
                                         (self.node_memory, load.memory_bytes), (self.node_channels, load.channels)):
                        gauge.labels(pool=pool, group=name, pod=pod).set(value)
                    nodes.add((name, pod))
                replicas = balance.replicas_of(name, milvus)
                if replicas:
                    self.group_spread.labels(pool=pool, group=name).set(max(r.spread_percent for r in replicas))
                    spreads.add(name)
        with self._lock:
            gone_nodes = self._nodes.get(pool, set()) - nodes
            gone_spreads = self._spreads.get(pool, set()) - spreads
            self._nodes[pool], self._spreads[pool] = nodes, spreads
        for labels in gone_nodes:
            for gauge in (self.node_segments, self.node_rows, self.node_memory, self.node_channels):
                gauge.remove(pool, *labels)
        for name in gone_spreads:
            self.group_spread.remove(pool, name)

    def milvus_error(self, code: str) -> None:
        self.milvus_errors.labels(code=code).inc()

    def forget_pool(self, pool: str) -> None:
        """Remove every series of a deleted pool (writes and Milvus errors carry no pool label)."""
        self.retain_groups(pool, ())
        self.data_state(pool, (), MilvusState({}, {}, False))
        with self._lock:
            self._groups.pop(pool, None)
        for metric in (self.passes, self.pass_duration, self.last_success, self.drain_gauge,
                       self.unexpected_removals):
            metric.remove_by_labels({"pool": pool})


@dataclass
class MetricsServer:
    """The HTTP server of `serve`, in a daemon thread; `port` is the bound port (useful with port 0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(metrics: OperatorMetrics, port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Serve the metrics at http://host:port/metrics (any path answers) until `stop()`; port 0 = any free
    port. A thread of its own: a scrape is answered even while the event loop is busy."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)

"""OperatorMetrics: the series each call produces, as a Prometheus server scrapes them over HTTP."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from milvus_rg_operator.adapters.milvus import (
    ManagementUnavailable,
    MilvusAuthError,
    MilvusError,
    MilvusUnavailable,
    MilvusUnsupported,
)
from milvus_rg_operator.core.types import (
    CollectionInfo,
    GroupConfig,
    LoadedSegment,
    MilvusGroup,
    MilvusNode,
    MilvusState,
    ReplicaInfo,
)
from milvus_rg_operator.metrics import (
    DRAIN_PHASES,
    WRITE_TARGETS,
    MetricsServer,
    OperatorMetrics,
    milvus_error_code,
    serve,
)

POOL = "default/milvus"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
# rg1: node 1 (qn-0) holds two segments of books and leads its channel, node 2 (qn-1) holds one.
SERVING = MilvusState(
    groups={"rg1": MilvusGroup("rg1", GroupConfig(2, 2), (1, 2), loaded_replicas={"books": 1})},
    nodes={1: MilvusNode(1, "qn-0", "10.0.0.1:21123", "Normal"), 2: MilvusNode(2, "qn-1", "10.0.0.2:21123", "Normal")},
    management_available=True,
    collections={"books": CollectionInfo("books", (ReplicaInfo(7, "rg1", (1, 2), (1,)),), (
        LoadedSegment(10, 100, 4000, (1,)), LoadedSegment(11, 50, 2000, (1,)), LoadedSegment(12, 100, 4000, (2,))))},
)


@pytest.fixture
def metrics() -> OperatorMetrics:
    return OperatorMetrics(CollectorRegistry())


@pytest.fixture
def server(metrics: OperatorMetrics) -> Iterator[MetricsServer]:
    running = serve(metrics, 0, host="127.0.0.1")
    yield running
    running.stop()


def scrape(server: MetricsServer) -> Series:
    with urllib.request.urlopen(server.url(), timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def test_passes_are_counted_by_result_and_timed(metrics: OperatorMetrics, server: MetricsServer) -> None:
    metrics.pass_finished(POOL, "progressing", 0.2)
    metrics.pass_finished(POOL, "converged", 0.03)
    metrics.pass_finished(POOL, "converged", 0.04)
    series = scrape(server)
    assert value(series, "milvusrg_reconcile_passes_total", pool=POOL, result="converged") == 2
    assert value(series, "milvusrg_reconcile_passes_total", pool=POOL, result="progressing") == 1
    assert value(series, "milvusrg_reconcile_pass_duration_seconds_count", pool=POOL) == 3
    assert value(series, "milvusrg_reconcile_pass_duration_seconds_sum", pool=POOL) == pytest.approx(0.27)
    assert value(series, "milvusrg_reconcile_pass_duration_seconds_bucket", pool=POOL, le="0.05") == 2


def test_only_successful_passes_set_the_last_success_time(metrics: OperatorMetrics, server: MetricsServer) -> None:
    for result in ("failed", "invalid", "paused"):
        metrics.pass_finished(POOL, result, 0.1)
    assert value(scrape(server), "milvusrg_last_success_timestamp_seconds", pool=POOL) is None
    metrics.pass_finished(POOL, "converged", 0.1)
    stamp = value(scrape(server), "milvusrg_last_success_timestamp_seconds", pool=POOL)
    assert stamp is not None and stamp > 1.7e9


def test_unknown_results_and_targets_are_refused(metrics: OperatorMetrics) -> None:
    with pytest.raises(ValueError, match="converged"):
        metrics.pass_finished(POOL, "ok", 0.1)
    with pytest.raises(ValueError, match="kubernetes"):
        metrics.write("etcd", "put")


def test_writes_by_target_and_verb(metrics: OperatorMetrics, server: MetricsServer) -> None:
    metrics.write("milvus", "update_groups")
    metrics.write("milvus", "update_groups")
    metrics.write("kubernetes", "scale")
    series = scrape(server)
    assert value(series, "milvusrg_writes_total", target="milvus", verb="update_groups") == 2
    assert value(series, "milvusrg_writes_total", target="kubernetes", verb="scale") == 1


def test_drains_set_absent_phases_to_zero(metrics: OperatorMetrics, server: MetricsServer) -> None:
    metrics.drains(POOL, {"MovingData": 2, "Stalled": 1})
    metrics.drains(POOL, {"Drained": 1})
    series = scrape(server)
    assert {phase: value(series, "milvusrg_drains", pool=POOL, phase=phase) for phase in DRAIN_PHASES} == {
        phase: (1.0 if phase == "Drained" else 0.0) for phase in DRAIN_PHASES}
    assert "Stalled" in DRAIN_PHASES and "MovingData" in DRAIN_PHASES


def test_group_gauges_and_retained_groups(metrics: OperatorMetrics, server: MetricsServer) -> None:
    metrics.group_nodes(POOL, "rg1", desired=3, actual=2)
    metrics.group_nodes(POOL, "rg2", desired=1, actual=1)
    series = scrape(server)
    assert value(series, "milvusrg_group_desired_nodes", pool=POOL, group="rg1") == 3
    assert value(series, "milvusrg_group_actual_nodes", pool=POOL, group="rg1") == 2
    metrics.retain_groups(POOL, ["rg2"])
    series = scrape(server)
    assert value(series, "milvusrg_group_desired_nodes", pool=POOL, group="rg1") is None
    assert value(series, "milvusrg_group_actual_nodes", pool=POOL, group="rg2") == 1


def test_node_data_and_group_spread(metrics: OperatorMetrics, server: MetricsServer) -> None:
    metrics.data_state(POOL, ["rg1"], SERVING)
    series = scrape(server)
    for name, first, second in (("milvusrg_node_segments", 2, 1), ("milvusrg_node_rows", 150, 100),
                                ("milvusrg_node_memory_bytes", 6000, 4000), ("milvusrg_node_channels", 1, 0)):
        assert value(series, name, pool=POOL, group="rg1", pod="qn-0") == first, name
        assert value(series, name, pool=POOL, group="rg1", pod="qn-1") == second, name
    assert value(series, "milvusrg_group_memory_spread_percent", pool=POOL, group="rg1") == 33  # 6000 vs 4000
    metrics.data_state(POOL, ["rg1"], MilvusState(SERVING.groups, SERVING.nodes, True))  # collections not read
    series = scrape(server)
    assert value(series, "milvusrg_node_segments", pool=POOL, group="rg1", pod="qn-0") is None
    assert value(series, "milvusrg_group_memory_spread_percent", pool=POOL, group="rg1") is None


def test_milvus_errors_by_code(metrics: OperatorMetrics, server: MetricsServer) -> None:
    errors = [MilvusError("rg not found", 300), MilvusUnavailable("down"), MilvusAuthError("bad token"),
              ManagementUnavailable("no route"), MilvusError("rg not found", 300),
              MilvusUnsupported("UpdateResourceGroups: UNIMPLEMENTED", "update_resource_groups"),
              MilvusError("HTTP 500: failed to suspend")]
    for error in errors:
        metrics.milvus_error(milvus_error_code(error))
    series = scrape(server)
    assert {code: value(series, "milvusrg_milvus_errors_total", code=code)
            for code in ("300", "unavailable", "auth", "management", "unsupported", "error")} == {
        "300": 2, "unavailable": 1, "auth": 1, "management": 1, "unsupported": 1, "error": 1}


def test_forget_pool_removes_only_that_pool(metrics: OperatorMetrics, server: MetricsServer) -> None:
    other = "ns2/milvus"
    for pool in (POOL, other):
        metrics.pass_finished(pool, "converged", 0.1)
        metrics.drains(pool, {"MovingData": 1})
        metrics.group_nodes(pool, "rg1", 1, 1)
    metrics.write("kubernetes", "scale")
    metrics.forget_pool(POOL)
    series = scrape(server)
    pools = {dict(labels).get("pool") for _, labels in series}
    assert POOL not in pools and other in pools
    assert value(series, "milvusrg_writes_total", target="kubernetes", verb="scale") == 1


def test_every_metric_is_prefixed_and_registries_are_independent() -> None:
    first, second = OperatorMetrics(CollectorRegistry()), OperatorMetrics(CollectorRegistry())
    first.write("milvus", "drop_group")
    assert second.registry.get_sample_value("milvusrg_writes_total", {"target": "milvus", "verb": "drop_group"}) is None
    names = {metric.name for metric in first.registry.collect()}
    assert names and all(name.startswith("milvusrg_") for name in names)


def test_default_registry_adds_process_metrics_and_is_not_the_global_one() -> None:
    from prometheus_client import REGISTRY

    metrics = OperatorMetrics()
    assert metrics.registry is not REGISTRY
    assert metrics.registry.get_sample_value("process_cpu_seconds_total") is not None


OPERATIONS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
METRIC_NAME = re.compile(r"\bmilvusrg_\w+")


def section(title: str) -> str:
    text = OPERATIONS.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def exposed_sample_names() -> set[str]:
    """Every series name a scrape can show, with every method called once."""
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.pass_finished(POOL, "converged", 0.1)
    metrics.write("milvus", "update_groups")
    metrics.drains(POOL, {})
    metrics.pass_state(POOL, [], MilvusState({}, {}, True), [], unexpected_removals=1)
    metrics.group_nodes(POOL, "rg1", 1, 1)
    metrics.milvus_error("unavailable")
    metrics.data_state(POOL, ["rg1"], SERVING)
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def test_docs_alert_rules_use_only_metrics_the_operator_exposes() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", section("Alerts"), re.DOTALL)
    rules = [rule for block in blocks for group in yaml.safe_load(block)["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == {"MilvusRGDrainStalled", "MilvusRGPoolDegraded",
                                                 "MilvusRGGroupBelowRequests"}
    for rule in rules:
        assert rule["labels"]["severity"] and rule["annotations"]["summary"] and rule["for"]
    used = {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])}
    assert used and used <= exposed_sample_names()


def test_docs_metrics_table_lists_every_metric_and_no_other() -> None:
    documented = set(METRIC_NAME.findall(section("Metrics")))
    exposed = {re.sub(r"_(bucket|sum|count)$", "", name) for name in exposed_sample_names()
               if name.startswith("milvusrg_") and not name.endswith("_created")}
    assert documented == exposed


def test_docs_name_every_write_verb_of_the_plan() -> None:
    from milvus_rg_operator.core import actions as core_actions

    actions = [obj for obj in vars(core_actions).values()
               if isinstance(obj, type) and isinstance(getattr(obj, "verb", None), str) and hasattr(obj, "target")]
    assert actions, "no action classes with a verb found in core.actions"
    row = next(line for line in section("Metrics").splitlines() if line.startswith("| `milvusrg_writes_total`"))
    assert {action.target for action in actions} <= set(WRITE_TARGETS)
    assert [action.verb for action in actions if f"`{action.verb}`" not in row] == []

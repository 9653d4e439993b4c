"""The Helm chart: lints, renders the expected objects, and grants the operator every verb it uses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from milvus_rg_operator.api.crds import render_crds_yaml
from milvus_rg_operator.cli import _lease_settings, build_parser
from milvus_rg_operator.leader import LeaseSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "milvus-rg-operator"

# (apiGroup, resource) -> verbs the operator calls (kopf, the kube adapter, the drain logic).
REQUIRED_RULES: dict[tuple[str, str], set[str]] = {
    **{("milvusrg.io", r): {"get", "list", "watch", "patch", "update"} for r in ("querynodepools", "resourcegroups")},
    **{("milvusrg.io", f"{r}/{sub}"): {"get", "patch", "update"}
       for r in ("querynodepools", "resourcegroups") for sub in ("status", "finalizers")},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch"},
    ("apps", "statefulsets/scale"): {"get", "patch", "update"},
    ("apps", "deployments"): {"get", "list", "watch"},
    ("apps", "deployments/scale"): {"get", "patch", "update"},
    ("milvus.io", "milvuses"): {"get", "list", "watch", "patch"},
    ("", "pods"): {"get", "list", "watch", "patch"},
    ("", "secrets"): {"get"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"list", "watch"},
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},  # leader election (leader.py)
}


# The adapter's API calls, read from its source: `_run(what, "<METHOD>", <path>)` or
# `_run_unless_gone(what, "<METHOD>", <path>)`, the path built by `_core_path(namespace, "<plural>"[, name])`,
# `_statefulset_path(namespace[, name])`, `_workload_path(namespace, <workload>)` (any of the workload kinds) or
# `_custom_path(namespace, <plural>[, name])`, maybe + "/<subresource>".
ADAPTER_CALL = re.compile(
    r'_run(?:_unless_gone)?\([^,]+,\s*"(?P<method>GET|POST|PATCH)"\s*,\s*'
    r'(?:f"\{)?_(?P<api>core|statefulset|workload|milvus|custom)_path\((?P<args>[^()]*(?:\([^()]*\))?[^()]*)\)'
    r'(?:\}/(?P<sub>\w+)")?')
WORKLOADS = [("apps", "statefulsets"), ("apps", "deployments"), ("milvus.io", "milvuses")]
CUSTOM = {"POOL_PLURAL": ["querynodepools"], "RESOURCE_GROUP_PLURAL": ["resourcegroups"],
          "plural": ["querynodepools", "resourcegroups"]}  # a variable: either


def adapter_needs(source: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every API call the adapter's source makes."""
    needs: set[tuple[str, str, str]] = set()
    for call in ADAPTER_CALL.finditer(source):
        args = [a.strip() for a in re.split(r",(?![^(\[]*[)\]])", call["args"])]
        method = call["method"]
        named = call["api"] in ("workload", "milvus") or len(args) == (2 if call["api"] == "statefulset" else 3)
        verb = {"POST": "create", "PATCH": "patch"}.get(method, "get" if named else "list")
        suffix = f"/{call['sub']}" if call["sub"] else ""
        if call["api"] == "core":
            needs.add(("", args[1].strip('"') + suffix, verb))
        elif call["api"] == "statefulset":
            needs.add(("apps", "statefulsets" + suffix, verb))
        elif call["api"] == "workload":  # any kind; a Milvus has no scale subresource
            needs.update((group, plural + suffix, verb) for group, plural in WORKLOADS
                         if not (suffix and plural == "milvuses"))
        elif call["api"] == "milvus":
            needs.add(("milvus.io", "milvuses" + suffix, verb))
        else:
            needs.update(("milvusrg.io", plural + suffix, verb) for plural in CUSTOM[args[1]])
    return needs


KUBE_ADAPTER = ROOT / "operator" / "milvus_rg_operator" / "adapters" / "kube.py"


def helm_binary() -> str:
    local = ROOT / ".tools" / "bin" / "helm"
    found = shutil.which("helm") or (str(local) if local.exists() else None)
    if found is None:
        pytest.skip("helm is not installed (neither on PATH nor at .tools/bin/helm; `make setup` fetches it)")
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=60)


def render(*sets: str) -> list[dict[str, Any]]:
    flags = [flag for value in sets for flag in ("--set", value)]
    result = helm("template", "rel", str(CHART), "--namespace", "ops", "--include-crds", *flags)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def granted(docs: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    verbs: dict[tuple[str, str], set[str]] = {}
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        verbs.setdefault((group, resource), set()).update(rule["verbs"])
    return verbs


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == "Deployment")


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(deployment(docs)["spec"]["template"]["spec"]["containers"][0])


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_chart_crds_are_the_generated_crds() -> None:
    for name, text in render_crds_yaml().items():
        assert (CHART / "crds" / name).read_text() == text


def test_chart_lints_strictly() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_wide_install_renders_the_expected_objects() -> None:
    docs = render()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(["CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount",
                            "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
                            "Role", "RoleBinding", "Deployment", "Service"])
    operator = container(docs)
    assert operator["command"] == ["milvus-rg-operator"]
    assert operator["args"] == ["run", "--liveness", "http://0.0.0.0:8081/healthz", "--metrics-port", "8080",
                                "--log-format", "text", "--log-level", "INFO",
                                "--leader-election-namespace", "ops", "--lease-name", "rel-milvus-rg-operator",
                                "--lease-duration", "15", "--renew-deadline", "10", "--retry-period", "2"]


def test_namespaced_install_uses_a_role_and_watches_one_namespace() -> None:
    docs = render("watchNamespace=milvus")
    roles = [doc for doc in docs if doc["kind"] in ("Role", "RoleBinding")
             and not doc["metadata"]["name"].endswith("-leader-election")]
    assert {doc["kind"] for doc in roles} == {"Role", "RoleBinding"}
    assert all(doc["metadata"]["namespace"] == "milvus" for doc in roles)
    args = container(docs)["args"]
    assert args[args.index("--namespace") + 1] == "milvus"


@pytest.mark.parametrize("sets", [(), ("watchNamespace=milvus",)], ids=["cluster", "namespaced"])
def test_rbac_covers_every_verb_the_operator_needs(sets: tuple[str, ...]) -> None:
    verbs = granted(render(*sets))
    missing = {key: needed - verbs.get(key, set()) for key, needed in REQUIRED_RULES.items()
               if needed - verbs.get(key, set())}
    assert missing == {}


def test_deployment_is_non_root_read_only_pods_with_health_probes() -> None:
    spec = deployment(render())["spec"]
    pod = spec["template"]["spec"]
    operator = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert operator["securityContext"]["runAsNonRoot"] is True
    assert operator["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in operator["volumeMounts"]} == {"/tmp"}  # the only writable place
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]  # TLS keys
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in operator["ports"]}
    assert ports == {"health": 8081, "metrics": 8080}


def test_container_args_are_a_valid_run_command_line() -> None:
    for sets in [(), ("logFormat=json", "logLevel=DEBUG", "watchNamespace=milvus", "metrics.enabled=false")]:
        parser = build_parser("run")
        args = parser.parse_args(container(render(*sets))["args"])
        _lease_settings(parser, args)
        assert args.command == "run" and args.liveness.endswith(":8081/healthz")
        assert args.lease == LeaseSettings(namespace="ops", identity=args.lease.identity, name="rel-milvus-rg-operator",
                                           lease_duration=15, renew_deadline=10, retry_period=2)
    assert (args.log_format, args.log_level, args.namespace, args.metrics_port) == ("json", "DEBUG", "milvus", 0)


def test_two_replicas_elect_a_leader_and_roll() -> None:
    """Two pods, only the Lease's holder acting; rolled (a new pod, a follower, starts before an old one stops)."""
    docs = render()
    spec = deployment(docs)["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    # The identity is the pod's name, passed down.
    pod_name = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    assert pod_name in pod["containers"][0]["env"]
    # The replicas prefer different nodes, unless affinity is set.
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert deployment(render("affinity.nodeAffinity.x=y"))["spec"]["template"]["spec"]["affinity"] == {
        "nodeAffinity": {"x": "y"}}


def test_the_lease_rbac_is_in_the_release_namespace_bound_to_the_service_account() -> None:
    for sets in [(), ("watchNamespace=milvus",)]:
        docs = render(*sets)
        (role,) = [d for d in of_kind(docs, "Role")
                   if d["metadata"]["name"] == "rel-milvus-rg-operator-leader-election"]
        (binding,) = [d for d in of_kind(docs, "RoleBinding") if d["metadata"]["name"] == role["metadata"]["name"]]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "ops"
        assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                  "verbs": ["get", "create", "update"]}]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        (account,) = of_kind(docs, "ServiceAccount")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                        "namespace": "ops"}]


def test_without_leader_election_one_recreated_pod() -> None:
    docs = render("leaderElection.enabled=false", "replicas=1")
    spec = deployment(docs)["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert "--no-leader-election" in container(docs)["args"]
    assert not [d for d in of_kind(docs, "Role") if d["metadata"]["name"].endswith("-leader-election")]
    refused = helm("template", "rel", str(CHART), "--set", "leaderElection.enabled=false")  # 2 replicas, no election
    assert refused.returncode != 0 and "needs leaderElection.enabled" in refused.stderr


def test_metrics_service_targets_the_metrics_port_of_the_operator_pod() -> None:
    docs = render("metrics.port=9100", "liveness.port=9101")
    (service,) = of_kind(docs, "Service")
    pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    assert {p["name"]: p["containerPort"] for p in container(docs)["ports"]}["metrics"] == 9100
    assert "9100" in container(docs)["args"]


def test_service_monitor_is_optional_and_selects_the_metrics_service() -> None:
    assert of_kind(render(), "ServiceMonitor") == []
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval=30s",
                  "metrics.serviceMonitor.labels.release=prometheus")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


def test_metrics_off_renders_no_service_and_port_zero() -> None:
    docs = render("metrics.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert of_kind(docs, "Service") == [] and of_kind(docs, "ServiceMonitor") == []
    args = container(docs)["args"]
    assert args[args.index("--metrics-port") + 1] == "0"


def test_values_schema_refuses_unsupported_values() -> None:
    for value in ("logLevel=TRACE", "logFormat=xml", "watchNamespace=Not_A_Namespace", "metrics.port=0",
                  "metrics.serviceMonitor.interval=soon", "liveness.port=8080", "replicas=0",
                  "leaderElection.renewDeadline=15", "leaderElection.retryPeriod=9"):
        result = helm("template", "rel", str(CHART), "--set", value)
        assert result.returncode != 0, f"{value} should be refused"
    result = helm("template", "rel", str(CHART), "--set-json", "leaderElection.leaseDuration=4.5")
    assert result.returncode != 0, "a lease duration in fractions of a second should be refused"


def test_log_level_and_format_reach_the_operator() -> None:
    args = container(render("logLevel=DEBUG", "logFormat=json"))["args"]
    assert args[args.index("--log-level") + 1] == "DEBUG" and args[args.index("--log-format") + 1] == "json"


def test_rbac_covers_every_call_of_the_kube_adapter() -> None:
    needs = adapter_needs(KUBE_ADAPTER.read_text())
    # The calls the adapter makes today, so a change of its source that the pattern misses fails here.
    assert needs >= {("milvusrg.io", "querynodepools", "get"), ("milvusrg.io", "resourcegroups", "list"),
                     ("milvusrg.io", "resourcegroups/status", "patch"), ("apps", "statefulsets/scale", "patch"),
                     ("apps", "statefulsets", "create"), ("apps", "deployments/scale", "patch"),
                     ("milvus.io", "milvuses", "get"), ("milvus.io", "milvuses", "patch"), ("", "pods", "list"),
                     ("", "pods", "patch"),
                     ("", "secrets", "get"), ("", "events", "create")}, needs
    verbs = granted(render())
    missing = [need for need in needs if need[2] not in verbs.get(need[:2], set())]
    assert missing == []

"""The chart's Argo CD health checks (charts/milvus-rg-operator/argocd/argocd-cm-health.yaml), run in Lua 5.1
with lupa (Argo CD runs them in gopher-lua, a Lua 5.1) over sample objects: the examples as the API server
stores them (CRD defaults, generation 1, no status yet), then with the statuses the operator writes, each
checked against the CRD's schema, one per rule of the health."""

from __future__ import annotations

import copy
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa.lua51 import LuaRuntime

from tests.api.schema_tools import apply_defaults
from tests.api.test_chart import CHART, helm_binary
from tests.api.test_crds import admission_errors, load_examples, schema_of

HEALTH_FILE = CHART / "argocd" / "argocd-cm-health.yaml"
KEYS = {kind: f"resource.customizations.health.milvusrg.io_{kind}" for kind in ("QueryNodePool", "ResourceGroup")}
NOW = "2026-12-02T10:00:00Z"


def health_scripts() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(HEALTH_FILE.read_text())["data"]
    return data


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(hs.status, hs.message) as Argo CD computes them: the script of the object's kind, `obj` a global."""
    lua = LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(health_scripts()[KEYS[obj["kind"]]])
    return str(hs["status"]), str(hs["message"])


def stored(obj: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    """The object as the API server keeps it: schema defaults applied, a namespace and a generation."""
    stored_obj = apply_defaults(schema_of(obj["kind"]), obj)
    stored_obj["metadata"] = {"namespace": "milvus", **stored_obj["metadata"], "generation": generation}
    return stored_obj


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": NOW,
            "observedGeneration": 1}


def with_status(obj: dict[str, Any], observed: int, *conditions: dict[str, Any]) -> dict[str, Any]:
    """`obj` with a status as the operator writes it, refused unless the CRD's schema accepts it."""
    result = copy.deepcopy(obj)
    result["status"] = {"observedGeneration": observed, "conditions": list(conditions)}
    assert admission_errors(result) == []
    return result


def standard(ready: bool, reason: str, message: str, *, reconciling: bool = False, stalled: str = "",
             degraded: str = "", paused: bool = False) -> list[dict[str, Any]]:
    """The six conditions, in the shape and order the operator writes them."""
    return [
        condition("Ready", str(ready), reason, message),
        condition("Progressing", str(reconciling), reason, message),
        condition("Degraded", str(bool(degraded or stalled)), "ValidationFailed" if stalled else reason,
                  degraded or stalled),
        condition("Paused", str(paused), "Paused" if paused else "Active", "no changes are made" if paused else ""),
        condition("Reconciling", str(reconciling), reason if reconciling else "Idle", message if reconciling else ""),
        condition("Stalled", str(bool(stalled)), "ValidationFailed" if stalled else "Applied", stalled),
    ]


EXAMPLES = load_examples()
POOL = stored(next(obj for name, obj in EXAMPLES if name == "01-init/pool.yaml#0"))
GROUP = stored(next(obj for name, obj in EXAMPLES if name == "02-scale-out/rg1.yaml#0"))


def test_both_kinds_share_one_script_in_a_merge_patch_of_argocd_cm() -> None:
    document = yaml.safe_load(HEALTH_FILE.read_text())
    assert set(document) == {"data"}  # `kubectl patch configmap argocd-cm --type merge --patch-file` takes it
    assert set(document["data"]) == set(KEYS.values())
    assert len(set(document["data"].values())) == 1


@pytest.mark.parametrize(("name", "obj"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_an_example_just_applied_is_progressing_until_the_operator_writes_a_status(name: str,
                                                                                   obj: dict[str, Any]) -> None:
    assert argocd_health(stored(obj)) == ("Progressing", "Waiting for the operator's first status")


@pytest.mark.parametrize("obj", [POOL, GROUP], ids=["pool", "group"])
def test_the_health_follows_the_operators_conditions(obj: dict[str, Any]) -> None:
    converged = with_status(obj, 1, *standard(True, "Converged", "3 of 3 nodes serving"))
    assert argocd_health(converged) == ("Healthy", "3 of 3 nodes serving")

    scaling = with_status(obj, 1, *standard(False, "ScalingOut", "scaling out 3 -> 4", reconciling=True))
    assert argocd_health(scaling) == ("Progressing", "scaling out 3 -> 4")

    waiting = with_status(obj, 1, *standard(False, "WaitingForPods", "1 pod not Ready"))
    assert argocd_health(waiting) == ("Progressing", "1 pod not Ready")

    stalled = with_status(obj, 1, *standard(False, "ValidationFailed", "",
                                            stalled="spec.maxNodes: 2 is below the requests (3)"))
    assert argocd_health(stalled) == ("Degraded", "spec.maxNodes: 2 is below the requests (3)")

    unavailable = with_status(obj, 1, *standard(False, "MilvusUnavailable", "",
                                                degraded="Milvus at http://milvus:19530 is unreachable"))
    assert argocd_health(unavailable) == ("Degraded", "Milvus at http://milvus:19530 is unreachable")

    paused = with_status(obj, 1, *standard(False, "Paused", "", paused=True, stalled="spec.maxNodes: too low"))
    assert argocd_health(paused) == ("Suspended", "no changes are made")


@pytest.mark.parametrize("obj", [POOL, GROUP], ids=["pool", "group"])
def test_a_spec_the_operator_has_not_observed_yet_is_progressing(obj: dict[str, Any]) -> None:
    changed = with_status(stored(obj, generation=2), 1, *standard(True, "Converged", "3 of 3 nodes serving"))
    assert argocd_health(changed) == ("Progressing", "Waiting for the operator to observe generation 2")
    caught_up = with_status(stored(obj, generation=2), 2, *standard(True, "Converged", "3 of 3 nodes serving"))
    assert argocd_health(caught_up) == ("Healthy", "3 of 3 nodes serving")


def test_a_status_without_conditions_or_messages_still_says_something() -> None:
    assert argocd_health(with_status(POOL, 1)) == ("Progressing", "Waiting for Ready")
    bare = [{**c, "message": ""} for c in standard(False, "ScalingOut", "", reconciling=True)]
    assert argocd_health(with_status(POOL, 1, *bare)) == ("Progressing", "ScalingOut")


def test_the_chart_package_ships_the_health_checks(tmp_path: Path) -> None:
    result = subprocess.run([helm_binary(), "package", str(CHART), "--destination", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("*.tgz")
    with tarfile.open(package) as archive:
        shipped = archive.extractfile(f"{CHART.name}/argocd/{HEALTH_FILE.name}")
        assert shipped is not None and shipped.read().decode() == HEALTH_FILE.read_text()

"""Statuses and events for passes that cannot do their work: a paused pool, invalid input, a Milvus the
operator cannot work with, groups whose pool is missing. Every object concerned says why nothing happens,
with one Warning event per transition; nothing else is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from milvus_rg_operator.constants import ANNOTATION_PAUSED, POOL_KIND, RESOURCE_GROUP_KIND
from milvus_rg_operator.core import conditions as cond
from milvus_rg_operator.core.actions import Action, PostEvent, ReleaseGroup, WriteStatus
from milvus_rg_operator.core.types import GroupInput, ObjectState, Problem


def status_write(kind: str, obj: ObjectState, status: Mapping[str, Any], reason: str) -> list[Action]:
    """A status patch of only the keys that differ from what the object has: a steady state writes nothing. A
    null in a merge patch removes its key, so a null written and a key absent are the same."""
    changed = {k: v for k, v in status.items() if _stored(obj.status.get(k)) != _stored(v)}
    return [WriteStatus(kind, obj.name, changed, reason)] if changed else []


def _stored(value: Any) -> Any:
    """`value` as the API server keeps it after a JSON merge patch: maps without their null entries."""
    if isinstance(value, Mapping):
        return {k: _stored(v) for k, v in value.items() if v is not None}
    return value


def conditions_status(obj: ObjectState, conditions: Sequence[cond.PlannedCondition], now: float) -> dict[str, Any]:
    return {"observedGeneration": obj.generation,
            "conditions": cond.merge_conditions(obj.status.get("conditions", []), conditions, cond.iso(now))}


def degraded_transition(obj: ObjectState, conditions: Sequence[cond.PlannedCondition]) -> str | None:
    """The new Degraded message when it differs from what the object shows (events fire once per transition)."""
    new = next((c for c in conditions if c.type == cond.DEGRADED), None)
    if new is None or new.status != "True":
        return None
    old = cond.find(obj.status.get("conditions", []), cond.DEGRADED) or {}
    if old.get("status") == "True" and old.get("message") == new.message:
        return None
    return new.message


def report(kind: str, obj: ObjectState, conditions: Sequence[cond.PlannedCondition], event_reason: str,
           why: str, now: float) -> list[Action]:
    """One object's conditions, and a Warning event when its Degraded message is new."""
    actions = status_write(kind, obj, conditions_status(obj, conditions, now), why)
    message = degraded_transition(obj, conditions)
    if message:
        actions.append(PostEvent(kind, obj.name, "Warning", event_reason, message))
    return actions


def problem_actions(pool: ObjectState, groups: Sequence[ObjectState],
                    pool_conditions: Sequence[cond.PlannedCondition],
                    group_conditions: Mapping[str, Sequence[cond.PlannedCondition]],
                    event_reason: str, now: float) -> list[Action]:
    """Status (and one Warning event per transition) on the pool and every group for a problem that stops
    the pass: every object of the pool says why nothing happens."""
    actions = report(POOL_KIND, pool, pool_conditions, event_reason, f"{event_reason}: nothing applied", now)
    for obj in groups:
        actions += report(RESOURCE_GROUP_KIND, obj, group_conditions[obj.name], event_reason,
                          f"{event_reason} in its pool: nothing applied", now)
    return actions


def validation_actions(pool: ObjectState, groups: Sequence[ObjectState], problems: Sequence[Problem],
                       now: float) -> list[Action]:
    """Bad input: Degraded and a Warning event naming each field on the pool, each group its own problems or
    the pool's; nothing else is written."""
    pool_conditions = cond.validation_failed_conditions(problems, pool.generation)
    group_conditions = {
        obj.name: cond.group_problem_conditions(
            [p for p in problems if p.kind == RESOURCE_GROUP_KIND and p.name == obj.name], problems, obj.generation)
        for obj in groups}
    return problem_actions(pool, groups, pool_conditions, group_conditions, "ValidationFailed", now)


def milvus_failure_actions(pool: ObjectState, groups: Sequence[ObjectState], text: str, reason: str,
                           now: float) -> list[Action]:
    """The pool cannot work with its Milvus (unreachable, an error, a version it does not support): every
    object of the pool says so (a deleting group: why its deletion waits)."""
    group_conditions = {
        g.name: cond.milvus_failed_conditions(f"deletion waits: Milvus cannot be updated: {text}" if g.deleting
                                              else f"the pool cannot reach a working Milvus: {text}",
                                              reason, g.generation)
        for g in groups}
    return problem_actions(pool, groups, cond.milvus_failed_conditions(text, reason, pool.generation),
                           group_conditions, reason, now)


def paused_actions(pool: ObjectState, now: float) -> list[Action]:
    return status_write(POOL_KIND, pool, conditions_status(pool, cond.paused_pool_conditions(pool.generation), now),
                        f"annotation {ANNOTATION_PAUSED}=true")


def frozen_group_actions(frozen: Sequence[GroupInput], problems: Sequence[Problem], now: float) -> list[Action]:
    """Invalid groups: reported on their own object (status + one Warning event per transition); Milvus keeps
    their last applied config and the rest of the pool goes on."""
    actions: list[Action] = []
    for g in frozen:
        own = [p for p in problems if p.kind == RESOURCE_GROUP_KIND and p.name == g.obj.name]
        actions += report(RESOURCE_GROUP_KIND, g.obj, cond.group_problem_conditions(own, own, g.obj.generation),
                          "ValidationFailed", "its spec is invalid: left as it is in Milvus", now)
    return actions


def orphan_actions(pool_name: str, groups: Sequence[ObjectState], now: float) -> list[Action]:
    """Groups naming a pool that does not exist: Degraded naming spec.pool; a deleting one is let go (without
    its pool there is no Milvus to empty the group in)."""
    actions: list[Action] = []
    for obj in groups:
        if obj.deleting and obj.finalized:
            actions.append(ReleaseGroup(obj.name, f"QueryNodePool {pool_name} does not exist"))
            continue
        problem = Problem(RESOURCE_GROUP_KIND, obj.name, "spec.pool",
                          f"QueryNodePool {pool_name!r} does not exist in this namespace")
        actions += frozen_group_actions([GroupInput(obj, None, (problem,))], [problem], now)
    return actions

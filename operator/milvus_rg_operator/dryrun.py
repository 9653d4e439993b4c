"""`milvus-rg-operator plan`: what the operator would do for these manifests, without doing it.

Like `kubectl diff`: prints the Milvus resource-group batch (creates, the one atomic update, drops)
and the replica change. With `--milvus` the current state is read from that Milvus (read-only
calls); without it, Milvus is taken to be empty.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from milvus_rg_operator.adapters.milvus import MilvusError, PymilvusGateway
from milvus_rg_operator.core import configs, scaling, validation, versions
from milvus_rg_operator.core.names import resolve_group_name
from milvus_rg_operator.core.types import DEFAULT_GROUP, DEFAULT_GROUP_LIMIT, GroupConfig, MilvusGroup, MilvusState
from milvus_rg_operator.manifests import load_manifests
from milvus_rg_operator.translate import SpecError, declared_group, declared_pool


def config_json(config: GroupConfig) -> str:
    return json.dumps({
        "requests": {"nodeNum": config.requests}, "limits": {"nodeNum": config.limits},
        "transfer_from": list(config.transfer_from), "transfer_to": list(config.transfer_to),
        "node_labels": dict(config.node_labels),
    })


async def run_plan(files: list[Path], milvus_uri: str | None, token: str, current_replicas: int | None) -> int:
    # Later manifests of the same object replace earlier ones, as applying them in order would.
    latest = {(o.get("kind"), o.get("metadata", {}).get("name")): o for o in load_manifests(files)}
    objects = list(latest.values())
    pools = [o for o in objects if o.get("kind") == "QueryNodePool"]
    group_objs = [o for o in objects if o.get("kind") == "ResourceGroup"]
    if len(pools) != 1:
        print(f"error: expected exactly one QueryNodePool in the manifests, found {len(pools)}", file=sys.stderr)
        return 2
    try:
        pool = declared_pool(pools[0])
        groups = [declared_group(o) for o in group_objs if o.get("spec", {}).get("pool") == pool.name]
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    # A new Milvus holds only its default group (requests 0, limits 1,000,000).
    default = MilvusGroup(DEFAULT_GROUP, GroupConfig(0, DEFAULT_GROUP_LIMIT), ())
    observed = MilvusState(groups={DEFAULT_GROUP: default}, nodes={}, management_available=False)
    drain_note = ""
    if milvus_uri:
        gateway = PymilvusGateway(milvus_uri, token=token)
        try:
            # A plan that cannot be applied is never printed: an old Milvus is refused before reading it.
            support = versions.milvus_support(await gateway.server_version())
            if not support.supported:
                print(f"error: {support.message}; the operator will not change this Milvus", file=sys.stderr)
                return 1
            drain_note = support.message
            observed = await gateway.observe(with_node_states=False)
        except MilvusError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await gateway.close()

    problems = validation.validate(pool, pool.name, groups, observed.groups.keys())
    if problems:
        for p in problems:
            print(f"invalid: {p.kind} {p.name}: {p.field}: {p.message}", file=sys.stderr)
        return 1

    desired = configs.desired_configs(pool, groups)
    plan = configs.plan_milvus(desired, observed, {resolve_group_name(g) for g in groups if g.deleting})
    print(f"# pool {pool.name}: Milvus {'at ' + milvus_uri if milvus_uri else '(assumed new: only its default group)'}")
    for name, config in plan.create:
        print(f"+ create_resource_group {name} {config_json(config)}")
    if plan.update:
        print("~ update_resource_groups (one atomic batch):")
        for name, config in sorted(plan.update.items()):
            before = observed.groups.get(name)
            was = ""
            if before is not None:
                was = f"  # was {config_json(before.config) if before.config_known else '(not reported)'}"
            print(f"    {name}: {config_json(config)}{was}")
    for name in plan.drop:
        print(f"- drop_resource_group {name}")
    if plan.empty:
        print("  (Milvus already matches)")
    replicas = scaling.desired_replicas(pool, groups)
    change = "" if current_replicas is None else f" (now {current_replicas})"
    print(f"StatefulSet {pool.stateful_set_name}: replicas {replicas}{change}")
    if drain_note:
        print(f"note: {drain_note}: the operator will not scale in", file=sys.stderr)
    return 0

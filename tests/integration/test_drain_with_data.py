"""Scale-in with collections loaded: a drain waits for the data, never only for group membership.

The simulator moves segments and channels off a suspended node at the balancer's pace and leaves a
segment unserved while no node of its replica has loaded it (see docs/sandbox.md); `unserved_segment_seconds`
integrates that gap. The operator's scale-in must add none.
"""

from __future__ import annotations

from typing import Any

import pytest

from milvus_rg_operator.adapters.kube import POOL_PLURAL
from milvus_rg_operator.core import actions as core_actions
from tests.integration.harness import OperatorHarness, operator_on_sandbox
from tests.integration.invariants import InvariantChecker
from tests.integration.test_scale_in_safety import (
    PENDING,
    VICTIM,
    assert_drains_cleared,
    assert_no_node_left_out,
    assert_safe,
    declared_requests,
    drain_forcing_shrink,
    scale_out,
    victim_suspended,
)
from tests.support import wait_for

# Slower data than the fast default: each segment or channel takes 0.5 s to move (longer than a pass), so a
# drain that did not wait for the data would remove a pod that still holds some.
SLOW_DATA = {"balance_delay": 0.5, "load_time": 0.2}


def load_collections(harness: OperatorHarness) -> None:
    milvus = harness.sandbox.milvus
    milvus.load_collection("books", replica_number=2, resource_groups=["rg1"], segments=6, channels=2)
    milvus.load_collection("films", replica_number=1, resource_groups=["rg2"], segments=4, channels=1)
    milvus.load_collection("songs", replica_number=1, resource_groups=["__default_resource_group"], segments=3,
                           channels=1)


async def fully_served(harness: OperatorHarness) -> bool:
    return not harness.sandbox.milvus.unserved_segments()


async def scaled_out_with_data(harness: OperatorHarness) -> float:
    """The docs' scaled-out pool with collections loaded in every watched group; returns the unserved
    segment-seconds so far (the scale-in must add none)."""
    await scale_out(harness)
    load_collections(harness)
    await wait_for(lambda: fully_served(harness), timeout=20, message="collections loaded")
    return harness.sandbox.milvus.unserved_segment_seconds()


# The version matrix (core.versions): 2.4.9 cannot drain (a suspended node stays in its group), 2.4.23 writes
# distribution ids as strings, 2.5 is the default, 2.6 serves channels from streaming nodes (their embedded query
# nodes are listed in no group and refuse resume) and, from 2.6.8, creates groups from node labels.
DRAINED_WORDS = {"v2.4.23": "0 segments, 0 channels", "v2.5.16": "0 segments, 0 channels",
                 "v2.6.20": "0 sealed segments; its channels are on streaming nodes"}


@pytest.mark.parametrize("version", ["v2.4.9", "v2.4.23", "v2.5.16", "v2.6.20"])
async def test_scale_in_with_collections_loaded_serves_every_segment(sandbox_factory: Any, version: str) -> None:
    # 2.6: a streaming node serves one replica of a collection: two, for the two replicas of books.
    streaming = {"streaming_nodes": 2} if version.startswith("v2.6") else {}
    async with operator_on_sandbox(sandbox_factory, seed=5, milvus_version=version, **streaming,
                                   **SLOW_DATA) as harness:
        unserved_before = await scaled_out_with_data(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            await harness.apply(change)
            if version not in DRAINED_WORDS:
                await assert_no_drain_on_milvus_before_2_4_10(harness, checker, version)
                return
            await harness.wait_converged(expected, replicas=4, timeout=60)
        assert_safe(checker)
        assert_no_node_left_out(harness)
        assert_no_embedded_node_resumed(harness)
        await assert_drains_cleared(harness)
        assert harness.sandbox.milvus.unserved_segment_seconds() == unserved_before
        assert harness.sandbox.milvus.unserved_channel_seconds() == 0
        assert await fully_served(harness)

        async def drained() -> list[str]:
            return [e.message for e in await harness.events("Drained")]

        messages = await wait_for(drained, timeout=10, message="a Drained event")  # posted after the scale-down
        assert DRAINED_WORDS[version] in messages[-1]


async def assert_no_drain_on_milvus_before_2_4_10(harness: OperatorHarness, checker: InvariantChecker,
                                                  version: str) -> None:
    """The victim serves a group and no drain can start: the pool says so and keeps every pod."""
    blocked = await wait_for(lambda: harness.true_condition("Degraded", ("DrainUnsupported",)), timeout=20,
                             message=f"scale-in blocked: no drain on {version}")
    assert version in blocked["message"] and VICTIM in blocked["message"]
    await harness.resync_passes(2)
    checker.assert_ok()
    assert checker.removed == [] and await harness.replicas() == 5
    assert harness.sandbox.milvus.write_rpcs.get("suspend", 0) == 0
    assert await fully_served(harness)


def assert_no_embedded_node_resumed(harness: OperatorHarness) -> None:
    """Milvus 2.6: the query nodes embedded in streaming nodes are listed in no group; resuming one is refused."""
    rm = harness.sandbox.milvus.rm
    embedded = {n.node_id for n in rm.nodes.values() if n.embedded}
    resumed = {a.node_id for _, report in harness.reports for a in report.actions
               if isinstance(a, core_actions.ResumeNode)}
    assert not embedded & resumed, (embedded, resumed)
    assert all(report.result != "failed" for _, report in harness.reports)


async def test_a_drain_survives_a_query_coordinator_restart(sandbox_factory: Any) -> None:
    """Suspension is not persisted: a restarted query coordinator puts the node back into a group. The
    operator suspends it again and still waits for its data."""
    async with operator_on_sandbox(sandbox_factory, seed=5, **SLOW_DATA) as harness:
        unserved_before = await scaled_out_with_data(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            await harness.apply(change)
            await wait_for(lambda: victim_suspended(harness), timeout=20, message=f"{VICTIM} suspended")
            harness.sandbox.milvus.restart_querycoord()
            rm = harness.sandbox.milvus.rm
            back_in = [rm.group_of(n.node_id) for n in rm.nodes.values() if n.hostname == VICTIM]
            assert any(group is not None for group in back_in), "the restart did not put the node back"
            await harness.wait_converged(expected, replicas=4, timeout=60)
        assert_safe(checker)
        assert_no_node_left_out(harness)
        assert harness.sandbox.milvus.unserved_segment_seconds() == unserved_before


async def test_the_drain_is_followed_by_node_id(sandbox_factory: Any) -> None:
    """While draining, the victim's node is in no group and node/list gives no hostname: the pool's record
    keeps its node id, and the pod stays until that node id holds nothing."""
    async with operator_on_sandbox(sandbox_factory, seed=5, **SLOW_DATA) as harness:
        await scaled_out_with_data(harness)
        await harness.apply(drain_forcing_shrink(harness)[0])
        await wait_for(lambda: victim_suspended(harness), timeout=20, message=f"{VICTIM} suspended")

        async def moving_data() -> bool:
            pool = await harness.get(POOL_PLURAL, "milvus") or {}
            draining = ((pool.get("status") or {}).get("scaleDown") or {}).get("draining") or []
            return any(d["phase"] == "MovingData" for d in draining)

        await wait_for(moving_data, timeout=20, message="drain waiting for data (MovingData)")
        assert await harness.replicas() == 5  # the pod stays while its node holds data

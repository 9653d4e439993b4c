"""Operator failover: two replicas with leader election on a Lease (as the chart runs them).

Only the leader writes (the API server's write log, by each replica's user agent); a leader killed mid-drain
(or mid-scale-out) leaves the Lease to expire and the follower finishes the work from the pool's status and
what it observes, with the invariant checker clean, never acting while the other did; a leader that cannot
renew stops before anyone may take over; a clean stop releases the Lease and the follower takes over
without waiting for it to expire.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from milvus_rg_operator.adapters.kube import POOL_PLURAL, request_json
from milvus_rg_operator.leader import LeadershipLost
from tests.integration.harness import (
    NAMESPACE,
    TEST_USER_AGENT,
    OperatorHarness,
    Replica,
    group_manifest,
    operator_on_sandbox,
    pool_manifest,
)
from tests.integration.invariants import InvariantChecker
from tests.integration.test_scale_in_safety import (
    PENDING,
    assert_drains_cleared,
    assert_no_node_left_out,
    assert_safe,
    declared_requests,
    drain_forcing_shrink,
    drain_recorded,
    scale_out,
    victim_suspended,
)
from tests.support import wait_for


async def read_lease(harness: OperatorHarness) -> dict[str, Any]:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{harness.lease_name}"
    return dict(await asyncio.to_thread(request_json, harness.api, "GET", path))


def other(replicas: list[Replica], one: Replica) -> Replica:
    (found,) = [r for r in replicas if r is not one]
    return found


def assert_never_at_once(harness: OperatorHarness, first: Replica, second: Replica) -> None:
    """Every write of `first` was answered before the first write of `second`: no double action."""
    writes = harness.writes_by_replica()
    assert writes.get(first.name) and writes.get(second.name), {k: len(v) for k, v in writes.items()}
    last_of_first = max(write.timestamp for write in writes[first.name])
    first_of_second = min(write.timestamp for write in writes[second.name])
    assert last_of_first < first_of_second, (
        f"{first.name} wrote until {last_of_first:.3f}, {second.name} from {first_of_second:.3f}: both acted at once")


async def test_of_two_replicas_only_the_leader_writes(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=21, operator=False) as harness:
        replicas = await harness.start_replicas(2)
        leader = await harness.leader()
        await scale_out(harness)  # a scale-out from 1 to 5 pods: groups, replicas, labels, statuses
        writes = harness.writes_by_replica()
        assert set(writes) == {leader.name}, {name: [(w.method, w.path) for w in ws] for name, ws in writes.items()}
        # Nobody else wrote either (kopf's own client included): only the test's client and the leader.
        writers = {write.user_agent for write in harness.sandbox.kube.mutations if write.status < 400}
        assert writers == {TEST_USER_AGENT, leader.user_agent}, writers
        follower = other(replicas, leader)
        assert follower.alive and not follower.leading
        assert follower.first_pass_at is None  # it never ran kopf
        lease = (await read_lease(harness))["spec"]
        assert lease["holderIdentity"] == leader.elector.settings.identity  # type: ignore[union-attr]
        assert lease["leaseTransitions"] == 0


@pytest.mark.parametrize("kill_when", ["drain-recorded", "node-suspended"])
async def test_leader_killed_mid_drain_the_follower_finishes_the_scale_in(sandbox_factory: Any,
                                                                          kill_when: str) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=11, operator=False) as harness:
        replicas = await harness.start_replicas(2)
        first = await harness.leader()
        await scale_out(harness)
        change, expected = drain_forcing_shrink(harness)
        async with InvariantChecker(harness.sandbox, groups=declared_requests(expected), pending=PENDING) as checker:
            await harness.apply(change)
            if kill_when == "drain-recorded":
                await wait_for(lambda: drain_recorded(harness), timeout=15, message="a draining entry")
            else:
                await wait_for(lambda: victim_suspended(harness), timeout=15, message="the victim suspended")
            killed_at = time.time()
            await harness.kill_replica(first)
            second = await harness.leader(timeout=30)
            await harness.wait_converged(expected, replicas=4, timeout=60)
        assert second is other(replicas, first)
        assert second.first_pass_at is not None and second.first_pass_at > killed_at
        assert_safe(checker)
        assert_no_node_left_out(harness)
        await assert_drains_cleared(harness)
        assert_never_at_once(harness, first, second)
        assert (await read_lease(harness))["spec"]["leaseTransitions"] == 1


async def test_leader_killed_mid_scale_out_the_follower_finishes_it(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=24, operator=False) as harness:
        replicas = await harness.start_replicas(2)
        first = await harness.leader()
        # The leader's passes fail at their last write (the pool's status): it scales out and is killed before it
        # has recorded any of it.
        harness.sandbox.kube.inject_fault("PATCH", r"/querynodepools/milvus/status$", 500, 1000,
                                          user_agent=first.user_agent)
        await harness.apply(pool_manifest(), group_manifest("rg1", 3), group_manifest("rg2", 1))

        async def scaled_out() -> bool:
            return await harness.replicas() == 4

        await wait_for(scaled_out, timeout=15, message="the scale-out written")
        assert not ((await harness.get(POOL_PLURAL, "milvus") or {}).get("status") or {}).get("conditions")
        killed_at = time.time()
        await harness.kill_replica(first)
        second = await harness.leader(timeout=30)
        await harness.wait_converged({"rg1": 3, "rg2": 1, PENDING: 0}, replicas=4, timeout=60)
        assert second is other(replicas, first)
        assert second.first_pass_at is not None and second.first_pass_at > killed_at
        assert_never_at_once(harness, first, second)
        assert_no_node_left_out(harness)


async def test_a_leader_that_cannot_renew_stops_before_the_follower_takes_over(sandbox_factory: Any) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=23, operator=False) as harness:
        replicas = await harness.start_replicas(2)
        first = await harness.leader()
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1}, replicas=1)
        # The API server refuses the leader's Lease writes (its own user agent), as if it were cut off.
        harness.sandbox.kube.inject_fault("PUT", f"/leases/{harness.lease_name}$", 500, 1000,
                                          user_agent=first.user_agent)
        await wait_for(lambda: first.task is not None and first.task.done(), timeout=30, message="the leader stopped")
        stopped_at = time.time()
        assert first.task is not None and isinstance(first.task.exception(), LeadershipLost)
        second = await harness.leader(timeout=30)
        assert second is other(replicas, first)
        await harness.apply(group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2}, replicas=2, timeout=60)
        assert second.first_pass_at is not None and second.first_pass_at > stopped_at
        assert_never_at_once(harness, first, second)


async def test_a_clean_stop_releases_the_lease_and_the_follower_takes_over_at_once(sandbox_factory: Any) -> None:
    lease_duration = 15  # the production default: a follower waiting for the expiry would need all of it
    async with operator_on_sandbox(sandbox_factory, seed=22, operator=False) as harness:
        replicas = await harness.start_replicas(2, lease_duration=lease_duration, renew_deadline=10, retry_period=0.5)
        first = await harness.leader()
        await harness.apply(pool_manifest(), group_manifest("rg1", 1))
        await harness.wait_converged({"rg1": 1}, replicas=1)
        await harness.stop_replica(first)
        stopped_at = time.time()
        assert first.task is not None and first.task.exception() is None
        second = await harness.leader(timeout=lease_duration)
        await wait_for(lambda: second.first_pass_at is not None, timeout=lease_duration,
                       message="a pass of the follower")
        assert second is other(replicas, first)
        assert second.first_pass_at is not None
        takeover = second.first_pass_at - stopped_at
        assert takeover < lease_duration / 3, f"the follower's first pass {takeover:.1f} s after the clean stop"
        await harness.apply(group_manifest("rg1", 2))
        await harness.wait_converged({"rg1": 2}, replicas=2, timeout=60)
        assert_never_at_once(harness, first, second)
        lease = (await read_lease(harness))["spec"]
        assert lease["holderIdentity"] == second.elector.settings.identity  # type: ignore[union-attr]
        assert lease["leaseTransitions"] == 1

"""Property: random sequences of spec changes, query-node crashes and operator restarts never remove a
pod that serves a group, leave no node suspended, and end converged."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.harness import NAMESPACE, group_manifest, operator_on_sandbox, pool_manifest
from tests.integration.invariants import InvariantChecker
from tests.integration.test_scale_in_safety import assert_no_node_left_out

PENDING = "__pending_nodes"
DEFAULT = "__default_resource_group"

actions = st.one_of(
    st.tuples(st.just("requests"), st.sampled_from(["rg1", "rg2"]), st.integers(0, 3)),
    st.tuples(st.just("crash"), st.integers(0, 4), st.just(0)),
    st.tuples(st.just("restart"), st.just(""), st.just(0)),
)


@pytest.mark.timeout(480)  # 8 examples in one test, each allowed 60 s to converge (pyproject's 120 s is per test)
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(actions, min_size=2, max_size=4), seed=st.integers(0, 1000))
async def test_random_changes_crashes_and_restarts(sandbox_factory: Any, steps: list[tuple[str, str, int]],
                                                   seed: int) -> None:
    async with operator_on_sandbox(sandbox_factory, seed=seed) as harness:
        requests = {"rg1": 1, "rg2": 1}
        await harness.apply(pool_manifest(), group_manifest("default", 1, groupName=DEFAULT),
                            *(group_manifest(name, n) for name, n in requests.items()))
        await harness.wait_converged({DEFAULT: 1, **requests}, replicas=3)
        async with InvariantChecker(harness.sandbox, groups=(), pending=PENDING) as checker:
            for kind, name, value in steps:
                if kind == "requests":
                    requests[name] = value
                    await harness.apply(group_manifest(name, value))
                elif kind == "crash":
                    pods = [p.metadata.name for p in await harness.pods() if not p.metadata.deletion_timestamp]
                    harness.sandbox.workloads.crash_pod(NAMESPACE, pods[name % len(pods)])
                else:
                    await harness.kill_operator()
                    await harness.start_operator()
            await harness.wait_converged({DEFAULT: 1, **requests}, replicas=1 + sum(requests.values()),
                                         timeout=60)
        assert not checker.removal_violations, checker.removal_violations
        assert_no_node_left_out(harness)

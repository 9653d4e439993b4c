"""Shared by the Milvus simulator's wire tests: a pymilvus client run in a thread, the management routes over
HTTP, and simulators started on free ports (fixtures, imported by the test modules)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import aiohttp
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.client.types import ResourceGroupConfig

from milvus_rg_sandbox.milvus.simulator import ManualClock, MilvusSimulator

DEFAULT_RG = "__default_resource_group"
PENDING = "__pending_nodes"


def rg_config(requests: int, limits: int, via: str | None = None) -> ResourceGroupConfig:
    transfers = [{"resource_group": via}] if via else []
    return ResourceGroupConfig(
        requests={"node_num": requests}, limits={"node_num": limits}, transfer_from=transfers, transfer_to=transfers
    )


class Client:
    """Runs the blocking pymilvus client in a thread, so the simulator's loop keeps serving."""

    def __init__(self, uri: str, **kwargs: Any) -> None:
        self.client = MilvusClient(uri=uri, **kwargs)

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(partial(getattr(self.client, method), *args, **kwargs))

    async def error(self, method: str, *args: Any, **kwargs: Any) -> MilvusException:
        with pytest.raises(MilvusException) as caught:
            await self(method, *args, **kwargs)
        return caught.value


async def group_sizes(client: Client, names: list[str]) -> dict[str, int]:
    return {name: len((await client("describe_resource_group", name)).nodes) for name in names}


async def wait_sizes(client: Client, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 5
    while (actual := await group_sizes(client, list(expected))) != expected:
        assert time.monotonic() < deadline, f"group sizes stayed {actual}, expected {expected}"
        await asyncio.sleep(0.02)  # poll interval, not a wait for the outcome


async def call(sim: MilvusSimulator, route: str, **params: Any) -> tuple[int, Any]:
    """(status, JSON body) of a management route; the text when the body is not JSON (as Go writes some)."""
    status, _, text = await raw(sim, route, **params)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


async def raw(sim: MilvusSimulator, route: str, **params: Any) -> tuple[int, str, str]:
    """(status, content type, body text) of a management route."""
    async with aiohttp.ClientSession() as session, session.post(
        f"{sim.management_url}/management/querycoord/{route}", data={k: str(v) for k, v in params.items()}
    ) as response:
        return response.status, response.content_type, await response.text()


async def distribution(sim: MilvusSimulator, node_id: int) -> tuple[list[str], list[str]]:
    """(channels, segment ids) of `distribution/get` for a node (2.4.23+/2.5.5+ shape)."""
    status, body = await call(sim, "distribution/get", node_id=node_id)
    assert status == 200, body
    return body["channel_names"] or [], body["sealed_segmentIDs"]


@pytest.fixture
async def sim_factory() -> AsyncIterator[Callable[..., Any]]:
    """`await sim_factory(**MilvusSimulator kwargs)`: a started simulator on free ports, stopped after the test."""
    started: list[MilvusSimulator] = []

    async def make(**kwargs: Any) -> MilvusSimulator:
        simulator = MilvusSimulator(grpc_port=0, management_port=0, **kwargs)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        await simulator.stop()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[MilvusSimulator], Any]]:
    """`await client_for(sim)`: a Client closed after the test."""
    made: list[Client] = []

    async def make(sim: MilvusSimulator, **kwargs: Any) -> Client:
        made.append(await asyncio.to_thread(Client, sim.uri, **kwargs))
        return made[-1]

    yield make
    for client in made:
        await asyncio.to_thread(client.client.close)


@pytest.fixture
async def clocked(
    sim_factory: Callable[..., Any], client_for: Callable[[MilvusSimulator], Any]
) -> tuple[MilvusSimulator, ManualClock, Client]:
    """A simulator on a manual clock with Milvus's own timings, and a client."""
    clock = ManualClock()
    sim = await sim_factory(clock=clock, check_interval=10.0, session_ttl=60.0, balance_delay=1.0, load_time=5.0,
                            seed=3)
    return sim, clock, await client_for(sim)

"""A pool's Milvus gateway follows its endpoint: a changed Secret (a fixed CA, a rotated client certificate) makes a
new gateway, and the one no pool uses any more is closed with its connection and its certificate files."""

from __future__ import annotations

from typing import Any, cast

from milvus_rg_operator.adapters.kube import KubeGateway
from milvus_rg_operator.adapters.milvus import MilvusGateway, TlsMaterial
from milvus_rg_operator.connection import MilvusEndpoint
from milvus_rg_operator.reconcile import PoolReconciler


class FakeGateway:
    def __init__(self, endpoint: MilvusEndpoint) -> None:
        self.endpoint, self.closed = endpoint, False

    async def close(self) -> None:
        self.closed = True


def endpoint(ca: str) -> MilvusEndpoint:
    return MilvusEndpoint("https://milvus:19530", "", "http://milvus:9091", 10.0, TlsMaterial(ca_pem=ca))


async def test_a_gateway_no_pool_uses_any_more_is_closed() -> None:
    made: list[FakeGateway] = []

    def factory(target: MilvusEndpoint) -> MilvusGateway:
        made.append(FakeGateway(target))
        return cast(MilvusGateway, made[-1])

    reconciler = PoolReconciler(cast(KubeGateway, None), factory)
    first, second = ("ns", "a"), ("ns", "b")
    old: Any = await reconciler.milvus_for(first, endpoint("old CA"))
    assert await reconciler.milvus_for(second, endpoint("old CA")) is old  # shared by two pools
    new: Any = await reconciler.milvus_for(first, endpoint("fixed CA"))
    assert new is not old and not old.closed  # the second pool still uses it
    assert await reconciler.milvus_for(second, endpoint("fixed CA")) is new
    assert old.closed and not new.closed
    await reconciler.close()
    assert new.closed

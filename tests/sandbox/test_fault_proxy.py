"""The fault proxy in front of the real kube-apiserver, against a plain HTTP upstream that shows what it
received: it must pass requests and answers on as they came, stream, and answer faults itself."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import aiohttp.web
import pytest
from yarl import URL

from milvus_rg_sandbox.realkube.fault_proxy import FaultProxy
from tests.support import wait_for


class Upstream:
    """Records each request. /gzip answers with a gzip body; /watch sends one event and holds the stream open
    until its client goes away; any other path answers 201."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.watch_ended = asyncio.Event()

    async def handle(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.received.append({"method": request.method, "raw_path": request.raw_path,
                              "headers": dict(request.headers), "body": await request.read()})
        if request.path == "/gzip":
            return aiohttp.web.Response(body=gzip.compress(b'{"kind":"List"}'),
                                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        if request.path == "/watch":
            response = aiohttp.web.StreamResponse()
            await response.prepare(request)
            await response.write(b'{"type":"ADDED"}\n')
            try:
                await asyncio.Event().wait()  # until cancelled: the proxy closed the request
            finally:
                self.watch_ended.set()
            return response
        return aiohttp.web.json_response({"ok": True}, status=201, headers={"Audit-Id": "a1"})


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[Upstream, FaultProxy]]:
    upstream = Upstream()
    runner = aiohttp.web.ServerRunner(aiohttp.web.Server(upstream.handle, handler_cancellation=True))
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy = FaultProxy(f"http://127.0.0.1:{runner.addresses[0][1]}")
    await proxy.start()
    try:
        yield upstream, proxy
    finally:
        await proxy.stop()
        await runner.cleanup()


async def test_requests_and_answers_pass_as_they_came(proxied: tuple[Upstream, FaultProxy]) -> None:
    upstream, proxy = proxied
    bare = aiohttp.ClientSession(auto_decompress=False,
                                 skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
    async with bare as session:
        raw = URL(f"{proxy.url}/api/v1/x?labelSelector=app%3Dqn&a=b%2Fc", encoded=True)  # sent as written
        async with session.patch(raw, data=b'{"a":1}',
                                 headers={"Content-Type": "application/merge-patch+json",
                                          "Authorization": "Bearer t", "User-Agent": "kopf/1"}) as response:
            assert response.status == 201 and response.headers["Audit-Id"] == "a1"
            assert await response.json() == {"ok": True}
        sent = upstream.received[-1]
        assert (sent["method"], sent["raw_path"], sent["body"]) == (
            "PATCH", "/api/v1/x?labelSelector=app%3Dqn&a=b%2Fc", b'{"a":1}')
        assert {k: sent["headers"].get(k) for k in ("Content-Type", "Authorization", "User-Agent")} == {
            "Content-Type": "application/merge-patch+json", "Authorization": "Bearer t", "User-Agent": "kopf/1"}
        # Nothing added that the client did not send (kube-apiserver reads a missing Content-Type its own way).
        async with session.post(f"{proxy.url}/echo", data=b"{}"):
            pass
        assert "Accept-Encoding" not in upstream.received[-1]["headers"]
        assert upstream.received[-1]["headers"].get("Content-Type") is None
        async with session.get(f"{proxy.url}/gzip", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await response.read()) == b'{"kind":"List"}'  # left compressed


async def test_a_watch_streams_and_ends_upstream_when_its_client_leaves(
        proxied: tuple[Upstream, FaultProxy]) -> None:
    upstream, proxy = proxied
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{proxy.url}/watch?watch=true")
        async with asyncio.timeout(5):
            assert await response.content.readline() == b'{"type":"ADDED"}\n'  # before the answer ends
        response.close()  # the client goes away mid-watch
    await wait_for(upstream.watch_ended.is_set, timeout=5, message="the upstream watch closed")


async def test_a_fault_answers_instead_of_upstream(proxied: tuple[Upstream, FaultProxy]) -> None:
    upstream, proxy = proxied
    fault = proxy.inject_fault("POST", r"/configmaps$", 429, times=1, user_agent="milvus-rg-operator/")
    async with aiohttp.ClientSession() as session:
        url = f"{proxy.url}/api/v1/namespaces/default/configmaps"
        async with session.post(url, data=b"{}", headers={"User-Agent": "test/1"}) as response:
            assert response.status == 201  # another client: not matched
        async with session.post(url, data=b"{}", headers={"User-Agent": "milvus-rg-operator/0.1"}) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "1"
            status = json.loads(await response.read())
            assert (status["kind"], status["reason"], status["code"]) == ("Status", "TooManyRequests", 429)
        async with session.post(url, data=b"{}", headers={"User-Agent": "milvus-rg-operator/0.1"}) as response:
            assert response.status == 201  # spent
    assert fault.hits == 1 and len(upstream.received) == 2
    assert [(m.method, m.status, m.user_agent) for m in proxy.faulted] == [("POST", 429, "milvus-rg-operator/0.1")]

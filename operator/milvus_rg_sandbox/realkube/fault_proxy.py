"""A fault-injecting front for the real kube-apiserver, so that the tests that make the API fail run on the
real backend too.

The sandbox's clients (the operator, kubectl, the tests) talk to it as to kube-apiserver (HTTPS with its
certificate). It forwards every request to kube-apiserver as it came (method, path and query, headers, body) and
streams the answer back as it comes (watches; bodies stay compressed when kube-apiserver compressed them).
A request that a test's fault matches is answered by the fault instead, with the same `Status` body the
embedded API server's `inject_fault` sends, and never reaches kube-apiserver.
"""

from __future__ import annotations

import json
import logging
import ssl

import aiohttp
import aiohttp.web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from milvus_rg_sandbox.kube.server import MUTATING_METHODS, Fault, FaultPlan, Mutation, request_record

logger = logging.getLogger(__name__)

# Headers of one connection (RFC 9110 7.6.1), and the ones the HTTP libraries set again for the next hop.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "content-length"})

# What aiohttp's client would add when the request came without it: kube-apiserver must see what the client sent.
CLIENT_DEFAULT_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")


def _end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((key, value) for key, value in headers.items() if key.lower() not in HOP_BY_HOP)


class FaultProxy:
    """`inject_fault` as on the embedded API server; `faulted`: the writes a fault answered (they are in
    kube-apiserver's audit log no more than they reached it)."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        """`tls`: serve HTTPS (kubectl sends no bearer token over plain HTTP)."""
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.tls = tls
        self.faulted: list[Mutation] = []
        self._faults = FaultPlan()
        self._runner: aiohttp.web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def inject_fault(self, method: str | None, path_pattern: str, status: int, times: int = 1,
                     user_agent: str | None = None) -> Fault:
        return self._faults.add(method, path_pattern, status, times, user_agent)

    async def start(self) -> None:
        # No total timeout (watches last); no decompression (the bytes go on as they came); no pool limit
        # (every open watch holds a connection).
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), auto_decompress=False,
            connector=aiohttp.TCPConnector(ssl=False, limit=0))  # kube-apiserver's certificate is self-signed
        # A client that goes away cancels its handler, which closes the upstream request: a watch ends on
        # kube-apiserver when its client ends it, as without the proxy.
        self._runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self._handle, handler_cancellation=True),
                                                shutdown_timeout=1)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        # A client still connected (a watch) has its handler cancelled after the runner's shutdown_timeout.
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        fault = self._faults.take(request)
        if fault is not None:
            error = fault.error()
            if request.method.upper() in MUTATING_METHODS:
                self.faulted.append(request_record(request, error.code))
            return aiohttp.web.Response(status=error.code, headers=error.headers, content_type="application/json",
                                        text=json.dumps(error.status_body()))
        return await self._forward(request)

    async def _forward(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        assert self._session is not None
        target = URL(f"{self.upstream}{request.raw_path}", encoded=True)  # raw: the path and query as they came
        body = await request.read()
        response = aiohttp.web.StreamResponse()
        try:
            async with self._session.request(request.method, target, headers=_end_to_end(request.headers),
                                             skip_auto_headers=CLIENT_DEFAULT_HEADERS, data=body or None,
                                             allow_redirects=False) as upstream:
                response.set_status(upstream.status, upstream.reason)
                response.headers.extend(_end_to_end(upstream.headers))
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
        except (aiohttp.ClientError, ConnectionError) as error:
            if not response.prepared:  # kube-apiserver unreachable: answer as a gateway would
                logger.info("fault proxy: %s %s: %s", request.method, request.path, error)
                return aiohttp.web.Response(status=502, text=str(error))
            # else the client or kube-apiserver went away mid-answer (a watch ended): nothing more to send
        return response

"""How a call to Milvus failed, told apart precisely (pymilvus 3.0.2, measured against real servers and a real
2.3.5):
- Milvus answered with a merr code (>= 100, or 65535 from older servers): :class:`MilvusError` with `code`.
- Milvus could not be reached or gave no answer in time: :class:`MilvusUnavailable` (`unreachable`).
  pymilvus reports a refused connection as `MilvusException(code=2, "Fail connecting ...")`, retries
  UNAVAILABLE / INTERNAL / ... until the timeout and then raises `MilvusException(code=1, "Retry
  timeout")`, and raises DEADLINE_EXCEEDED as the bare `grpc.aio.AioRpcError`.
- The server does not implement the RPC (gRPC UNIMPLEMENTED, e.g. `UpdateResourceGroups` on Milvus
  < 2.4, raised as the bare `AioRpcError`): :class:`MilvusUnsupported`, naming the RPC.
- UNAUTHENTICATED: :class:`MilvusAuthError`.
- Anything else is a bug and propagates as itself: pymilvus wraps an unexpected exception (a
  `TypeError`, ...) in `MilvusException(code=1, "Unexpected error")`; the original is re-raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import ClassVar

import grpc
from pymilvus.exceptions import MilvusException, ParamError

# pymilvus' own client-side codes sit below 100 (1 unexpected / retry timeout, 2 cannot connect);
# Milvus' merr codes are >= 100 (65535 is the legacy "unexpected error" of older servers).
FIRST_MILVUS_CODE = 100
PYMILVUS_CANNOT_CONNECT = 2
TRANSPORT_STATUSES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})
AUTH_STATUSES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
# Exceptions that are part of a failed call; anything else in pymilvus' exception chain is a bug.
_CALL_FAILURES = (MilvusException, grpc.RpcError, TimeoutError, asyncio.CancelledError, OSError)


class MilvusError(Exception):
    """Milvus answered with an error: `code` is its merr code (None when the answer carried none)."""

    unreachable: ClassVar[bool] = False

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MilvusUnavailable(MilvusError):
    """Milvus could not be reached or did not answer in time (connection refused, gRPC UNAVAILABLE or
    DEADLINE_EXCEEDED, timeouts)."""

    unreachable: ClassVar[bool] = True


class MilvusUnsupported(MilvusError):
    """This Milvus does not implement `rpc` (gRPC UNIMPLEMENTED): it is too old for the operator."""

    def __init__(self, message: str, rpc: str) -> None:
        super().__init__(message)
        self.rpc = rpc


class MilvusAuthError(MilvusError):
    """Milvus refused the credentials (gRPC UNAUTHENTICATED): the token or user:password is wrong or missing."""


class MilvusTlsError(MilvusError):
    """The TLS connection to Milvus cannot work as configured (a wrong CA, an expired or mismatched certificate, a
    refused client certificate, TLS on one side only): `field` names what to fix in the pool's spec."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class ManagementUnavailable(MilvusUnavailable):
    """The proxy's management HTTP API (port 9091) cannot be used: not reachable or routes missing
    (Milvus < 2.4 answers 404 for node/list, distribution/get, node/suspend)."""


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and its causes. pymilvus re-raises with `raise e from e` (an exception caused by itself),
    which hides the real cause in `__context__`: follow both, each exception once."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _rpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The first gRPC status (code, details) in `exc`'s chain."""
    for link in _exception_chain(exc):
        if isinstance(link, grpc.RpcError) and callable(getattr(link, "code", None)):
            details = link.details() if callable(getattr(link, "details", None)) else ""
            return link.code(), str(details or "")
    return None


def _bug_in(exc: MilvusException) -> BaseException | None:
    """The programming error pymilvus wrapped into `MilvusException(message="Unexpected error, ...")`
    (decorators.error_handler), if `exc` is such a wrapper."""
    if not str(exc.message).startswith("Unexpected error"):
        return None
    for link in _exception_chain(exc):
        if not isinstance(link, _CALL_FAILURES):
            return link
    return None


def _caused(error: MilvusError, cause: BaseException) -> MilvusError:
    error.__cause__ = cause
    return error


def classify(method: str, uri: str, timeout: float, exc: BaseException) -> MilvusError:
    """The MilvusError for a failed pymilvus call (a bug in pymilvus' chain is re-raised as itself)."""
    if isinstance(exc, MilvusException):
        return _from_pymilvus(method, uri, timeout, exc)
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        return _from_status(method, uri, code, str(details or ""), exc)
    return _caused(MilvusUnavailable(f"{method}: Milvus at {uri} did not answer within {timeout}s"), exc)


def _from_pymilvus(method: str, uri: str, timeout: float, exc: MilvusException) -> MilvusError:
    status = _rpc_status(exc)
    if status is not None and status[0] in AUTH_STATUSES | {grpc.StatusCode.UNIMPLEMENTED}:
        return _from_status(method, uri, status[0], status[1], exc)
    code = exc.code
    if isinstance(code, grpc.StatusCode):  # pymilvus' retry loop ran out of time after this status
        return _from_status(method, uri, code, str(exc.message), exc)
    if isinstance(code, int) and code >= FIRST_MILVUS_CODE:
        return _caused(MilvusError(f"{method}: {exc.message}", int(code)), exc)
    if code == PYMILVUS_CANNOT_CONNECT:
        details = f" ({status[0].name}: {status[1]})" if status else ""
        return _caused(MilvusUnavailable(f"{method}: cannot reach Milvus at {uri}{details}"), exc)
    if isinstance(exc, ParamError):
        return _caused(MilvusError(f"{method}: pymilvus refused the request: {exc.message}"), exc)
    bug = _bug_in(exc)
    if bug is not None:
        raise bug
    if "Retry timeout" in str(exc.message):
        return _caused(MilvusUnavailable(f"{method}: Milvus at {uri} did not answer within {timeout}s"), exc)
    return _caused(MilvusError(f"{method}: {exc.message}"), exc)


def _from_status(method: str, uri: str, status: grpc.StatusCode, details: str, exc: BaseException) -> MilvusError:
    if status in TRANSPORT_STATUSES:
        error: MilvusError = MilvusUnavailable(f"{method}: Milvus at {uri} is unavailable "
                                               f"(gRPC {status.name}: {details})")
    elif status == grpc.StatusCode.UNIMPLEMENTED:
        error = MilvusUnsupported(f"{method}: Milvus at {uri} does not implement this call "
                                  f"(gRPC UNIMPLEMENTED: {details})", rpc=method)
    elif status in AUTH_STATUSES:
        error = MilvusAuthError(f"{method}: Milvus at {uri} refused the credentials: {details}")
    else:
        error = MilvusError(f"{method}: Milvus at {uri} answered gRPC {status.name}: {details}")
    return _caused(error, exc)

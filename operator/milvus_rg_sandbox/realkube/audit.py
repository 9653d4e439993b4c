"""The real API server's write log, read from its audit log: what the embedded server keeps as `mutations`.

kube-apiserver writes one audit event per write request (policy below: level Metadata for the write verbs,
stage ResponseComplete only). `--audit-log-mode=blocking` writes it before the request's handler returns,
so before the client has read the whole answer: a write is in the file once its caller has its answer.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from milvus_rg_sandbox.kube.server import Mutation

WRITE_VERBS = {"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE"}
POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "verbs": sorted([*WRITE_VERBS, "list"])}, {"level": "None"}],
}
APISERVER_USER = "system:apiserver"  # the API server's own loopback client (bootstrap objects, leases)


def apiserver_flags(log_path: Path, policy_path: Path) -> list[str]:
    """Write the policy file; the kube-apiserver flags that log every write to `log_path` (JSON lines)."""
    policy_path.write_text(json.dumps(POLICY, indent=2))  # JSON is YAML
    log_path.write_text("")  # a restart begins a new log
    return [f"--audit-policy-file={policy_path}", f"--audit-log-path={log_path}", "--audit-log-format=json",
            "--audit-log-mode=blocking", "--audit-log-maxsize=0"]  # maxsize 0: one file, never rotated


def mutation(event: dict[str, Any]) -> Mutation | None:
    """The write request an audit event records, as the embedded server logs it (None: not a write)."""
    method = WRITE_VERBS.get(str(event.get("verb")))
    if method is None or event.get("stage") != "ResponseComplete":
        return None
    return _request(method, event)


def list_request(event: dict[str, Any]) -> Mutation | None:
    """The LIST request an audit event records, as the embedded server's `lists` (None: not a LIST)."""
    if event.get("verb") != "list" or event.get("stage") != "ResponseComplete":
        return None
    return _request("GET", event)


def audit_time(rfc3339: Any) -> float:
    """An audit event's timestamp (RFC 3339, microseconds, `Z`) as seconds since the epoch."""
    return datetime.fromisoformat(str(rfc3339).replace("Z", "+00:00")).timestamp()


def _request(method: str, event: dict[str, Any]) -> Mutation:
    stamp = audit_time(event["stageTimestamp"])
    return Mutation(method, str(event.get("requestURI", "")).split("?", 1)[0], str(event.get("userAgent", "")),
                    int((event.get("responseStatus") or {}).get("code") or 0), stamp)


class AuditLog:
    """The writes in the audit log made by clients, in the order the API server answered them; the
    control plane's own users (its controllers, scheduler, kwok, the sandbox's client) are left out, as the
    embedded server never sees its emulated controllers write over HTTP."""

    def __init__(self, path: Path, ignored_users: Collection[str]) -> None:
        self.path = path
        self.ignored_users = frozenset(ignored_users)
        self._offset = 0
        self._partial = b""
        self._writes: list[Mutation] = []
        self._lists: list[Mutation] = []

    def writes(self) -> list[Mutation]:
        """Every write so far (a new list)."""
        self._read_new()
        return list(self._writes)

    def lists(self) -> list[Mutation]:
        """Every LIST request so far (a new list)."""
        self._read_new()
        return list(self._lists)

    def _read_new(self) -> None:
        """Reads only what was appended since the last call."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if (event.get("user") or {}).get("username") in self.ignored_users:
                continue
            write = mutation(event)
            if write is not None:
                self._writes.append(write)
            listed = list_request(event)
            if listed is not None:
                self._lists.append(listed)

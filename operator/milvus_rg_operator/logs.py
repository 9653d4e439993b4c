"""Logging of `milvus-rg-operator run`: text or JSON lines, quiet libraries, and secrets redacted.

- Our own loggers (`milvus_rg_operator.*`) log one INFO line per write; DEBUG adds the plan of each pass.
- kopf's per-event lines ("Handler 'pool_event' succeeded.") are hidden unless `verbose`: kopf's loggers
  stay at WARNING. pymilvus' loggers stay at WARNING, and so does the kubernetes client's REST logger,
  whose DEBUG lines carry whole response bodies (a Secret's data among them).
- Python warnings are logged (logger `py.warnings`) in the same format; the kubernetes client's
  "Unverified HTTPS request" (a kubeconfig with insecure-skip-tls-verify) only once.
- `register_secret(value)`: that value (and its base64 form, as a Secret's data carries it) is replaced
  by `***` in every message, argument, exception and extra field the handler formats. The operator
  never logs a token; this filter is the second line of defence.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers kept at WARNING: kopf's unless verbose; the others always (noise, or bodies that may hold secrets).
KOPF_LOGGERS = ("kopf",)
QUIET_LOGGERS = ("pymilvus", "kubernetes.client.rest", "urllib3", "aiohttp.access")
# kopf's per-object logger adds these to its records: the object reference is kept (as "object"),
# the settings and the event-posting flag are internals.
KOPF_EXTRAS = ("k8s_skip", "k8s_ref", "settings")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact `value` from every log line from now on. A Milvus "user:password" token registers its
    password too; values shorter than MIN_SECRET_LENGTH are ignored."""
    if not value:
        return
    candidates = {value, base64.b64encode(value.encode()).decode()}
    user, colon, password = value.partition(":")
    if colon and user and password:
        candidates.add(password)
    with _secrets_lock:
        _secrets.update(c for c in candidates if len(c) >= MIN_SECRET_LENGTH)


def forget_secrets() -> None:
    """Tests only: start again from no registered secret."""
    with _secrets_lock:
        _secrets.clear()


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a token before its password
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record in place when it would show a registered secret: the message (with its
    arguments), the exception and stack text, and string extra fields. Records without one pass as they are."""

    _exception_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the formatter report it, without the arguments
            message, record.args = str(record.msg), None
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            record.exc_text = record.exc_text or self._exception_formatter.formatException(record.exc_info)
        if record.exc_text and redact(record.exc_text) != record.exc_text:
            # Formatters use exc_text when exc_info is gone; both ours and python-json-logger do.
            record.exc_text, record.exc_info = redact(record.exc_text), None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in RESERVED_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, with kopf's object reference as a `[namespace/name]` prefix."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping) and ref.get("name"):
            prefix = "/".join(str(part) for part in (ref.get("namespace"), ref["name"]) if part)
            record = logging.makeLogRecord({**vars(record), "msg": f"[{prefix}] {record.msg}"})
        return super().format(record)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, exc_info when there is one,
    `object` (kopf's object reference) and any `extra=` fields of the call."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *KOPF_EXTRAS],
            timestamp="time",
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping):
            log_data["object"] = dict(ref)


class _OperatorHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installs, so calling it again replaces it."""


def configure_logging(level: str = "INFO", fmt: LogFormat = "text", *, verbose: bool = False,
                      stream: TextIO | None = None) -> logging.Handler:
    """Log to `stream` (stderr) at `level` in `fmt`. `verbose`: DEBUG, kopf's own lines included.
    Returns the handler installed on the root logger (it replaces one installed by an earlier call)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(LOG_FORMATS)}")
    level = "DEBUG" if verbose else level.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"log level {level!r}: one of {', '.join(LOG_LEVELS)}")
    handler = _OperatorHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OperatorHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in KOPF_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.filterwarnings("once", message="Unverified HTTPS request")  # urllib3 warns on every request
    return handler

"""configure_logging: JSON lines, kopf's per-event lines hidden at INFO, registered secrets never shown."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest
from kopf._cogs.configs.configuration import OperatorSettings
from kopf._cogs.structs.bodies import Body
from kopf._core.actions.loggers import LocalObjectLogger

from milvus_rg_operator.logs import configure_logging, forget_secrets, register_secret

SECRET = "root:Sup3rS3cret"
POOL_BODY = {"apiVersion": "milvusrg.io/v1alpha1", "kind": "QueryNodePool",
             "metadata": {"name": "milvus", "namespace": "default", "uid": "u-1"}}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    names = ("kopf", "pymilvus", "kubernetes.client.rest", "urllib3", "aiohttp.access")
    saved = (list(root.handlers), root.level, {name: logging.getLogger(name).level for name in names})
    with warnings.catch_warnings():
        yield
    logging.captureWarnings(False)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
    forget_secrets()


def capture(fmt: str = "text", level: str = "INFO", verbose: bool = False) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, fmt, verbose=verbose, stream=stream)  # type: ignore[arg-type]
    return stream


def kopf_handler_success() -> None:
    """What kopf logs after each handler call, through kopf's own per-object logger."""
    kopf_logger = LocalObjectLogger(body=Body(POOL_BODY), settings=OperatorSettings())
    kopf_logger.info("Handler 'pool_event' succeeded.")


def test_json_format_writes_one_parsable_object_per_line() -> None:
    stream = capture("json")
    log = logging.getLogger("milvus_rg_operator.reconcile")
    log.info("pool %s: scale StatefulSet %s %d->%d", "default/milvus", "milvus-querynode", 5, 4,
             extra={"pool": "default/milvus"})
    log.warning("second line")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "pool default/milvus: scale StatefulSet milvus-querynode 5->4", "second line"]
    first = lines[0]
    assert first["level"] == "INFO" and first["logger"] == "milvus_rg_operator.reconcile"
    assert first["pool"] == "default/milvus" and first["time"].endswith("+00:00")


def test_json_format_keeps_kopfs_object_reference_and_drops_its_internals() -> None:
    stream = capture("json")
    LocalObjectLogger(body=Body(POOL_BODY), settings=OperatorSettings()).warning("Handler failed.")
    line = json.loads(stream.getvalue())
    assert line["object"]["name"] == "milvus" and line["object"]["namespace"] == "default"
    assert "settings" not in line and "k8s_skip" not in line


def test_kopf_handler_lines_are_hidden_at_info_and_shown_when_verbose() -> None:
    stream = capture("text", "INFO")
    kopf_handler_success()
    logging.getLogger("milvus_rg_operator.reconcile").info("ours")
    assert "succeeded" not in stream.getvalue()
    assert "ours" in stream.getvalue()

    stream = capture("text", verbose=True)
    kopf_handler_success()
    assert "[default/milvus] Handler 'pool_event' succeeded." in stream.getvalue()


def test_debug_level_shows_our_debug_lines_but_not_kopfs_or_pymilvus() -> None:
    stream = capture("text", "DEBUG")
    logging.getLogger("milvus_rg_operator.reconcile").debug("plan: nothing to do")
    kopf_handler_success()
    logging.getLogger("pymilvus.client.grpc_handler").info("connected")
    assert stream.getvalue().count("\n") == 1 and "plan: nothing to do" in stream.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_registered_secret_is_redacted_in_message_args_and_exceptions(fmt: str) -> None:
    stream = capture(fmt)
    register_secret(SECRET)
    log = logging.getLogger("milvus_rg_operator.reconcile")
    log.info(f"token in the message: {SECRET}")
    log.info("token in the arguments: %s", SECRET)
    log.info("password alone: %s", SECRET.split(":")[1])
    log.info("extra field", extra={"token": SECRET})
    try:
        raise RuntimeError(f"connect failed with {SECRET}")
    except RuntimeError:
        log.exception("exception text")
    output = stream.getvalue()
    assert "Sup3rS3cret" not in output
    assert "token in the message: ***" in output and "token in the arguments: ***" in output
    assert "password alone: ***" in output and "connect failed with ***" in output
    if fmt == "json":
        extra = next(json.loads(line) for line in output.splitlines() if "extra field" in line)
        assert extra["token"] == "***"


def test_secret_in_base64_as_a_kubernetes_secret_carries_it_is_redacted() -> None:
    stream = capture()
    register_secret(SECRET)
    encoded = "cm9vdDpTdXAzclMzY3JldA=="  # base64 of SECRET
    logging.getLogger("kubernetes.client.rest").warning('response body: {"data": {"token": "%s"}}', encoded)
    assert encoded not in stream.getvalue() and '"token": "***"' in stream.getvalue()


def test_unregistered_and_short_values_are_left_alone() -> None:
    stream = capture()
    register_secret("ab")
    register_secret("")
    logging.getLogger("milvus_rg_operator").info("group ab: requests %d", 2)
    assert "group ab: requests 2" in stream.getvalue()


def test_bad_format_or_level_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("TRACE", "text")


def test_python_warnings_are_logged_in_the_same_format() -> None:
    stream = capture("json")
    warnings.warn("Unverified HTTPS request is being made to host '127.0.0.1'", UserWarning, stacklevel=1)
    warnings.warn("Unverified HTTPS request is being made to host '127.0.0.1'", UserWarning, stacklevel=1)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1 and lines[0]["logger"] == "py.warnings" and lines[0]["level"] == "WARNING"

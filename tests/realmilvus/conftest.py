"""The `real_milvus` tier: a real Milvus 2.3.5 standalone server (PyPI `milvus`, installed into
.tools/milvus-2.3.5 by scripts/real-milvus.sh, which `make test` runs), one per test module: it takes
~3.5 s and ~250 MB to start. Loopback ports only, data in the test's tmp dir, ended by its process group id.

Without the install these tests skip, except under CI, where they must run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adapters.conftest import pymilvus_records  # noqa: F401  (a fixture shared with tests/adapters)

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ROOT / ".tools" / "milvus-2.3.5" / ".installed"
START_TIMEOUT = 120.0  # seconds; the first start unpacks the binaries (~10 s on a busy 2-core machine)
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class RealMilvus:
    uri: str
    management_uri: str
    pid: int  # the `milvus run standalone` process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.real_milvus)


def _read_ready_line(process: subprocess.Popen[str], log: Path) -> dict[str, int]:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Milvus exited with {process.returncode} before it was ready:\n"
                               f"{log.read_text()[-3000:]}")
        readable, _, _ = select.select([process.stdout], [], [], 0.5)
        if readable:
            line = process.stdout.readline()
            if line.strip().startswith("{"):
                return dict(json.loads(line))
    raise RuntimeError(f"Milvus not ready within {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[str]) -> None:
    """End the server's process group (the launcher and its `milvus` child), by its id."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    # The launcher may exit before its child: make sure nothing of the group is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# One server for the tier, stopped after its last test (it takes about 7 s to start): the tests that write
# to it drop what they create, and the tests that check nothing was written look only at the groups.
@pytest.fixture(scope="package")
def real_milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealMilvus]:
    if not INSTALLED.exists():
        message = "real Milvus 2.3.5 not installed: run scripts/real-milvus.sh install (make test does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real Milvus tier: {message}")
        pytest.skip(message)
    data = tmp_path_factory.mktemp("milvus-2.3.5")
    log = data / "launcher.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([str(ROOT / "scripts" / "real-milvus.sh"), "run", str(data / "server")],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   start_new_session=True)
        try:
            ports = _read_ready_line(process, log)
            yield RealMilvus(uri=f"http://127.0.0.1:{ports['proxy_port']}",
                             management_uri=f"http://127.0.0.1:{ports['management_port']}", pid=ports["pid"])
        finally:
            _stop(process)

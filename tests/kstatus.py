"""kstatus, the health engine Flux uses (sigs.k8s.io/cli-utils), on objects as `kubectl get -o json` gives them.

scripts/kstatus.sh builds it (`make test` does, `make kstatus` alone); without it a test skips, except under
CI, where it fails."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kstatus.sh"


@dataclass(frozen=True)
class Health:
    kind: str
    name: str
    status: str  # InProgress | Current | Failed | Terminating | NotFound
    message: str


def kstatus_binary() -> Path:
    """The built kstatus, or skip (fail under CI) with the reason."""
    result = subprocess.run([str(SCRIPT), "bin"], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        reason = (f"kstatus is not available ({result.stderr.strip() or 'not built'}): `make kstatus` builds it "
                  "(scripts/kstatus.sh build)")
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the kstatus tests: {reason}")
        pytest.skip(reason)
    return Path(result.stdout.strip())


def kstatus_health(objects: Iterable[Mapping[str, Any]]) -> list[Health]:
    """kstatus's verdict on each object, in order."""
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    result = subprocess.run([str(kstatus_binary())], input=listing, capture_output=True, text=True, timeout=60,
                            check=False)
    if result.returncode != 0:
        raise AssertionError(f"kstatus exited {result.returncode}: {result.stderr.strip()}")
    verdicts = []
    for line in result.stdout.splitlines():
        resource, status, message = line.split(" ", 2)  # main.go prints both spaces, even before no message
        kind, _, name = resource.partition("/")
        verdicts.append(Health(kind, name, status, message))
    return verdicts


def kstatus_of(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{object name: kstatus status}."""
    return {health.name: health.status for health in kstatus_health(objects)}

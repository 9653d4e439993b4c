"""The skip check (tests/expected_skips.py) on a small suite of its own, run by pytest under pytest-xdist as
`make test` runs: a skip off the list fails the run, a listed test that did not skip fails it, a subset is
compared on what it ran, and a fault only the embedded sandbox can inject (`EmbeddedOnly`) is a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = '''
import pytest
from milvus_rg_sandbox.realkube import EmbeddedOnly

def test_passes():
    pass

def test_known_skip():
    pytest.skip("known")

def test_embedded_only():
    raise EmbeddedOnly("never_ready: kwok makes every pod Ready")
'''
KNOWN = "test_sample.py::test_known_skip"
EMBEDDED_ONLY = "test_sample.py::test_embedded_only"
PASSES = "test_sample.py::test_passes"


def run_suite(tmp_path: Path, listed: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["milvus_rg_sandbox.pytest_plugin", "tests.expected_skips"]\n')
    (tmp_path / "test_sample.py").write_text(SUITE)
    (tmp_path / "skips.txt").write_text("# why\n" + "\n".join(f"{test_id}  # a reason" for test_id in listed) + "\n")
    # Not the outer run's pytest-xdist worker variables: the suite is a run of its own.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "--expected-skips", str(tmp_path / "skips.txt"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("workers", [[], ["--numprocesses", "2"]], ids=["serial", "xdist"])
def test_a_skip_off_the_list_fails_the_run_with_its_reason(tmp_path: Path, workers: list[str]) -> None:
    result = run_suite(tmp_path, [KNOWN], *workers)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "1 passed, 2 skipped" in result.stdout
    assert "skips differ from" in result.stdout
    assert (f"skipped, not in the list: {EMBEDDED_ONLY} (embedded sandbox only: never_ready: kwok makes every pod "
            "Ready)") in result.stdout


def test_a_listed_test_that_does_not_skip_fails_the_run(tmp_path: Path) -> None:
    result = run_suite(tmp_path, [KNOWN, EMBEDDED_ONLY, PASSES], "--numprocesses", "2")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert f"in the list, ran and did not skip: {PASSES}" in result.stdout


def test_a_subset_is_compared_on_the_tests_it_ran(tmp_path: Path) -> None:
    """The listed skips pass; the listed test left out by `-k` is not asked to skip."""
    result = run_suite(tmp_path, [KNOWN, EMBEDDED_ONLY], "--numprocesses", "2", "-k", "passes or known")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout

"""Every skip is named: the run fails when the tests that skipped differ from tests/expected_skips.txt.

A skip hides a missing tier (the real control plane not built, real Milvus not installed, helm absent) as
quietly as a pass would. The list names the skips the suite is known to have, each with why; a skip not on
it fails the run, and so does a listed test that ran without skipping (its entry is stale). Only the tests
that ran are compared, so a subset (`pytest tests/core`, `-k`, `--kube-backend=embedded`, a stop at `-x`) is
checked against its part of the list. Skips raised at collection (a module skipped whole) count too.

Under pytest-xdist the workers' reports reach the controller's `pytest_runtest_logreport`: the check runs
there once, after the last test, and sets the run's exit status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEFAULT_LIST = Path(__file__).with_name("expected_skips.txt")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--expected-skips", type=Path, default=DEFAULT_LIST,
                     help="the test ids allowed (and required) to skip when they run (default: %(default)s)")


def read_list(path: Path) -> set[str]:
    """Test ids, one a line; `#` starts a comment."""
    return {line.split("#", 1)[0].strip() for line in path.read_text().splitlines()} - {""}


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr  # a skip's is (path, line, "Skipped: reason"), a list once it crossed from a worker
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipCheck:
    def __init__(self, expected: set[str], source: Path) -> None:
        self.expected = expected
        self.source = source
        self.ran: set[str] = set()
        self.skipped: dict[str, str] = {}  # test id -> reason
        self.differences: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ran.add(report.nodeid)
        if report.skipped and not hasattr(report, "wasxfail"):  # an xfail reports as skipped
            self.skipped[report.nodeid] = skip_reason(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self.ran.add(report.nodeid)
            self.skipped[report.nodeid] = skip_reason(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.differences = [f"skipped, not in the list: {test_id} ({reason})"
                            for test_id, reason in sorted(self.skipped.items()) if test_id not in self.expected]
        self.differences += [f"in the list, ran and did not skip: {test_id}"
                             for test_id in sorted(self.expected & self.ran - self.skipped.keys())]
        if self.differences and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.differences:
            terminalreporter.section(f"skips differ from {self.source}", red=True, bold=True)
            for line in self.differences:
                terminalreporter.line(line, red=True)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller sees every report and checks
        return
    source = Path(config.getoption("--expected-skips"))
    config.pluginmanager.register(SkipCheck(read_list(source), source), "expected-skips-check")

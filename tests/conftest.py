"""Suite-wide rules: tests under tests/integration are marked ``integration``, and with
MDGW_REQUIRE_INTEGRATION=1 (CI) a skipped or missing integration test fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_INTEGRATION_DIR = Path(__file__).parent / "integration"
_skipped_integration: list[str] = []
_ran_integration: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.skipped:
        _skipped_integration.append(report.nodeid)
    elif report.when == "call":
        _ran_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MDGW_REQUIRE_INTEGRATION") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    problems = [f"integration test skipped: {nodeid}" for nodeid in _skipped_integration]
    if not _ran_integration:
        problems.append("no integration test ran")
    if problems:
        if reporter is not None:
            reporter.write("\n")  # after the progress line, which has no newline yet
            reporter.write_line("MDGW_REQUIRE_INTEGRATION=1 and:", red=True)
            for line in problems:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""``mdgw bench fuzz`` reads the suite's report and pytest's outcome, and says clearly when the
suite is not there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from mdgw.commands.fuzz import read_report, run

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1"
 failures="2" skipped="0" tests="10" time="1.0"></testsuite></testsuites>"""


def test_the_report_adds_up_inputs_failures_and_internal_answers(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.json"
    inputs.write_text(
        json.dumps(
            {
                "inputs": {"venue:fix": 300, "kafka:tickwriter:ticks": 200},
                "statuses": {"grpc:tickwriter": {"OK": 5, "INVALID_ARGUMENT": 90, "INTERNAL": 1}},
            }
        )
    )
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    report = read_report(inputs, junit)
    assert report.total_inputs == 500
    assert report.failures == 3  # failed tests and errors (a health check after fuzzing)
    assert report.tests == 10
    assert report.never_answered == 1


def test_a_missing_report_is_an_empty_one(tmp_path: Path) -> None:
    report = read_report(tmp_path / "none.json", tmp_path / "none.xml")
    assert (report.total_inputs, report.failures, report.never_answered) == (0, 0, 0)


def test_without_the_suite_it_says_where_it_looked_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(tests=tmp_path / "tests" / "fuzz", examples=10, seed=None, select="")
    assert run(args) == 2
    out = capsys.readouterr().out
    assert "the fuzz suite is not at" in out
    assert "pip install -e" in out

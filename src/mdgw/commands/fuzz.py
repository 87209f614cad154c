"""``mdgw bench fuzz``: the fuzz suite (tests/fuzz) run long and random, with its figures.

CI runs the same suite with a fixed seed and 100 examples per test (profile ``fuzz-ci``, part
of the normal pytest run). This runs it with ``HYPOTHESIS_PROFILE=fuzz-long`` and
``--examples`` per test (``MDGW_FUZZ_EXAMPLES``), a new random seed each run (or ``--seed``),
and prints the inputs tried per target and in total, the failures (crashes: any test that
failed or errored, which includes a service found unhealthy after its fuzzing), the INTERNAL
and UNKNOWN answers of the RPC targets (0 expected) and pytest's outcome. Exit 0 only when
all of it is clean.

The suite is test code, not part of the installed package: this finds it in the source
checkout this package is installed from (``pip install -e .``), or in ``--tests``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdgw.machine import describe_machine

# src/mdgw/commands/fuzz.py -> the checkout's root
CHECKOUT = Path(__file__).resolve().parents[3]
NEVER_ANSWERED = ("INTERNAL", "UNKNOWN")
DEFAULT_EXAMPLES = 2000


def register(parts: argparse._SubParsersAction[Any]) -> None:
    parser = parts.add_parser(
        "fuzz", help="the fuzz suite, long and random: inputs tried, crashes, INTERNAL answers"
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"examples per fuzz test (default {DEFAULT_EXAMPLES}; CI runs 100)",
    )
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random)")
    parser.add_argument(
        "--select", default="", metavar="EXPR", help="only the tests pytest -k EXPR selects"
    )
    parser.add_argument(
        "--tests",
        type=Path,
        default=CHECKOUT / "tests" / "fuzz",
        help="the fuzz suite's directory (default: tests/fuzz of this checkout)",
    )
    parser.set_defaults(handler=run)


@dataclass
class FuzzReport:
    inputs: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    tests: int = 0
    failures: int = 0  # failed tests, plus errors (a fixture's health check after fuzzing)
    skipped: int = 0

    @property
    def total_inputs(self) -> int:
        return sum(self.inputs.values())

    @property
    def never_answered(self) -> int:
        return sum(
            codes.get(code, 0) for codes in self.statuses.values() for code in NEVER_ANSWERED
        )


def read_report(inputs_json: Path, junit_xml: Path) -> FuzzReport:
    """The suite's own report (inputs and statuses) and pytest's JUnit XML (outcomes); either
    may be missing when pytest stopped early."""
    report = FuzzReport()
    if inputs_json.exists() and inputs_json.stat().st_size:
        data = json.loads(inputs_json.read_text())
        report.inputs = {str(k): int(v) for k, v in data.get("inputs", {}).items()}
        report.statuses = {
            str(target): {str(code): int(n) for code, n in codes.items()}
            for target, codes in data.get("statuses", {}).items()
        }
    if junit_xml.exists() and junit_xml.stat().st_size:
        root = ET.parse(junit_xml).getroot()
        for suite in root.iter("testsuite"):
            report.tests += int(suite.get("tests", 0))
            report.failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            report.skipped += int(suite.get("skipped", 0))
    return report


def run(args: argparse.Namespace) -> int:
    suite: Path = args.tests.resolve()
    if not (suite / "conftest.py").exists():
        print(
            f"mdgw bench fuzz: the fuzz suite is not at {suite}. It is test code, not part of "
            "the installed package: run this from a source checkout installed with "
            "`pip install -e '.[dev]'`, or pass --tests PATH/TO/tests/fuzz."
        )
        return 2
    if args.examples < 1:
        print("mdgw bench fuzz: --examples must be at least 1")
        return 2
    root = suite.parents[1]  # the checkout: its pyproject.toml configures pytest
    with tempfile.TemporaryDirectory(prefix="mdgw-fuzz-") as scratch:
        inputs_json = Path(scratch) / "inputs.json"
        junit_xml = Path(scratch) / "junit.xml"
        env = {
            **os.environ,
            "HYPOTHESIS_PROFILE": "fuzz-long",
            "MDGW_FUZZ_EXAMPLES": str(args.examples),
            "MDGW_FUZZ_REPORT": str(inputs_json),
        }
        command = [
            sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
            f"--junitxml={junit_xml}",
            "--timeout=0",  # long runs: the per-test limit suits CI's 100 examples, not these
        ]  # fmt: skip
        if args.seed is not None:
            command.append(f"--hypothesis-seed={args.seed}")
        if args.select:
            command += ["-k", args.select]
        print(f"mdgw bench fuzz: {args.examples} examples per test, on {describe_machine()}")
        print(f"  running: pytest {suite.relative_to(root)} (profile fuzz-long)", flush=True)
        started = time.monotonic()
        try:
            outcome = subprocess.run(
                command, cwd=root, env=env, capture_output=True, text=True, check=False
            )
        except OSError as exc:
            print(f"mdgw bench fuzz: cannot run pytest: {exc}")
            return 2
        elapsed_s = time.monotonic() - started
        report = read_report(inputs_json, junit_xml)
    summary = _pytest_summary(outcome.stdout)
    _print_report(report, summary, outcome.returncode, elapsed_s)
    if outcome.returncode != 0:
        print("\n--- pytest output (tail) ---")
        print("\n".join((outcome.stdout + outcome.stderr).splitlines()[-80:]))
    clean = outcome.returncode == 0 and report.failures == 0 and report.never_answered == 0
    return 0 if clean else 1


def _pytest_summary(stdout: str) -> str:
    """pytest's last line ("12 passed in 3.4s"), or a note that it said nothing."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def _print_report(report: FuzzReport, summary: str, returncode: int, elapsed_s: float) -> None:
    print("\ninputs tried per target")
    width = max((len(target) for target in report.inputs), default=10)
    for target, count in sorted(report.inputs.items()):
        print(f"  {target:<{width}}  {count:>10,}")
    print(f"  {'total':<{width}}  {report.total_inputs:>10,}")
    for target, codes in sorted(report.statuses.items()):
        answers = ", ".join(f"{code} {n:,}" for code, n in sorted(codes.items()))
        print(f"  answers of {target}: {answers}")
    print(f"\nfailures (crashes): {report.failures}")
    print(f"INTERNAL/UNKNOWN answers: {report.never_answered}")
    print(f"tests: {report.tests} ({report.skipped} skipped)")
    print(f"pytest: {summary} (exit {returncode}), {elapsed_s:.0f} s in all")

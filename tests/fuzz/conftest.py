"""The fuzz suite's settings: a fixed, derandomized run in CI (profile ``fuzz-ci``, the
default), a longer random one for ``mdgw bench fuzz`` (``HYPOTHESIS_PROFILE=fuzz-long``,
examples per target from ``MDGW_FUZZ_EXAMPLES``). With ``MDGW_FUZZ_REPORT`` set, the inputs
tried per target (``inputs``) and the status codes RPC targets answered (``statuses``) are
written there as JSON when the session ends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.support import INPUTS_TRIED, STATUSES

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("fuzz-ci", max_examples=100, derandomize=True, **_COMMON)
settings.register_profile(
    "fuzz-long", max_examples=int(os.environ.get("MDGW_FUZZ_EXAMPLES", "2000")), **_COMMON
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz-ci"))


def pytest_configure(config: pytest.Config) -> None:
    # The suite feeds 100 kB values on purpose; hypothesis warns when it describes one (for a
    # report or a replay), and warnings are errors here: that warning is about us, not a bug.
    config.addinivalue_line(
        "filterwarnings", "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report = os.environ.get("MDGW_FUZZ_REPORT")
    if report:
        statuses = {target: dict(codes) for target, codes in sorted(STATUSES.items())}
        Path(report).write_text(
            json.dumps(
                {"inputs": dict(sorted(INPUTS_TRIED.items())), "statuses": statuses}, indent=2
            )
        )

"""``mdgw bench e2e`` at tiny rates and durations, so it cannot rot: it starts its services,
measures every hop and ceiling, searches, and writes its JSON. Structure only: on a shared
machine its figures say nothing, and no figure is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.service_processes import SOURCE_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_bench_e2e_reports_every_hop_its_ceilings_goals_and_placement(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    args = ["--cases", "40:2", "--seconds", "1", "--warmup", "0.2", "--symbols", "2"]
    args += ["--search-subscribers", "2", "--search-max", "80", "--search-steps", "1"]
    args += ["--search-seconds", "0.5", "--search-resolution", "1", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "mdgw", "bench", "e2e", *args],
        env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]
    text = done.stdout.decode()
    for label in (
        "venue event -> feed receipt",
        "feed receipt -> client",
        "bare produce -> consume",
    ):
        assert label in text
    report = json.loads(out.read_text())
    assert {"machine", "load_before", "load_after", "placement", "cases", "goals"} <= set(report)
    assert {"venue", "feedhandler", "tickwriter", "gateway", "bench"} <= set(report["placement"])
    (case,) = report["cases"]
    assert (case["rate"], case["subscribers"]) == (40.0, 2)
    hops = case["hops"]
    for hop in (
        "venue_receipt", "receipt_kafka", "kafka_send", "send_client", "receipt_client",
        "event_client", "receipt_cassandra", "bare_produce_consume", "bare_send_client",
    ):  # fmt: skip
        assert set(hops[hop]) == {"count", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}
        assert hops[hop]["count"] > 0, hop
    assert len(report["search"]) == 1
    for name, figures in report["service_histograms"].items():  # each service's own metrics
        assert figures["count"] > 0, name
    assert all(goal["met"] in (True, False, None) for goal in report["goals"])

"""The alert rules, as Prometheus would load and evaluate them: the groups of every
PrometheusRule under k8s/ go into one rules file, ``promtool check rules`` accepts it, and
``promtool test rules`` runs tests/data/prometheus/alerts-test.yaml against it (topic and group
names filled in from the code, as the generated recording rules have them)."""

from __future__ import annotations

import shutil
import string
import subprocess
from pathlib import Path

import pytest
import yaml

from marketinfra.topics import TICKS_RAW, TRADES_EXECUTED
from tests.unit.test_k8s_manifests import MANIFESTS
from tickwriter.config import TickWriterSettings

TESTS = Path(__file__).resolve().parents[1] / "data" / "prometheus" / "alerts-test.yaml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (Debian ships promtool in it)")
    return path


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    groups = [
        group
        for manifest in MANIFESTS
        if manifest.body["kind"] == "PrometheusRule"
        for group in manifest.body["spec"]["groups"]
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    tests = string.Template(TESTS.read_text()).substitute(
        TICKS_TOPIC=TICKS_RAW.name,
        TRADES_TOPIC=TRADES_EXECUTED.name,
        GROUP=TickWriterSettings().group_id,
    )
    (tmp_path / "alerts-test.yaml").write_text(tests)
    return tmp_path


def _promtool_run(rules_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=rules_dir, capture_output=True, text=True, check=False
    )


def test_promtool_accepts_every_rule(rules_dir: Path) -> None:
    result = _promtool_run(rules_dir, "check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_and_only_when_the_table_says(rules_dir: Path) -> None:
    result = _promtool_run(rules_dir, "test", "rules", "alerts-test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_unit_test() -> None:
    names_tested = {
        case["alertname"]
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    for manifest in MANIFESTS:
        if manifest.body["kind"] != "PrometheusRule":
            continue
        for group in manifest.body["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                assert rule["labels"]["severity"] in {"warning", "critical"}
                assert {"summary", "description"} <= rule["annotations"].keys()
                if rule["alert"] not in OPTIONAL_TESTS:
                    assert rule["alert"] in names_tested, rule["alert"]


# Alerts whose unit test would only restate the expression (a threshold on one gauge, or
# kube-state-metrics); each still passes `promtool check rules`.
OPTIONAL_TESTS = frozenset(
    {
        "KafkaRequestQueueHigh",
        "KafkaRequestQueueCritical",
        "CassandraReadLatencyCritical",
        "CassandraWriteLatencyCritical",
        "CassandraPendingCompactionsHigh",
        "CassandraPendingCompactionsCritical",
        "MdgwStreamsCutOff",
        "MdgwFeedGaps",
        "MdgwTradingOwnerRestarting",
    }
)

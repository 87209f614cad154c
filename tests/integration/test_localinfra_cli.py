"""``mdgw infra`` against the servers this test run uses (started by scripts/test or CI)."""

import subprocess
import sys


def _mdgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdgw", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_shows_both_servers_ready(kafka_settings, cassandra_base_settings) -> None:
    result = _mdgw("infra", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("kafka") and " ready " in line for line in lines)
    assert any(line.startswith("cassandra") and " ready " in line for line in lines)


def test_up_twice_is_harmless(kafka_settings, cassandra_base_settings) -> None:
    result = _mdgw("infra", "up")
    assert result.returncode == 0, result.stderr
    assert "kafka: already running" in result.stderr
    assert "cassandra: already running" in result.stderr


def test_fresh_is_refused_while_servers_run(kafka_settings, cassandra_base_settings) -> None:
    result = _mdgw("infra", "up", "--fresh")
    assert result.returncode == 1
    assert "run `mdgw infra down` first" in result.stderr


def test_logs_show_the_server_output(kafka_settings) -> None:
    result = _mdgw("infra", "logs", "kafka", "-n", "5")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert 0 < len(lines) <= 5
    assert any(" INFO " in line or " WARN " in line for line in lines)

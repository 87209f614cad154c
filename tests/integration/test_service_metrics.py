"""Each service's real /metrics, from the process ``mdgw`` starts, as Prometheus reads it:

- ``promtool check metrics`` accepts it (exposition format and metric-naming lint);
- it holds its own service's families and none of another service's (``mdgw`` imports all
  three services, so a shared registry would export, say, ``tickwriter_consumption_paused 0``
  from a feed handler);
- latencies are histograms in seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cassandra.cluster import Session

from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.service_processes import Service, running, scrape
from tests.support import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
SERVICES = ("feedhandler", "tickwriter", "gateway")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (Debian ships promtool in it)")
    return path


def _families(text: str) -> dict[str, str]:
    """family name -> type, from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))


def _check(text: str, own: str) -> dict[str, str]:
    check = subprocess.run(
        [_promtool(), "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    families = _families(text)
    ours = {name for name in families if name.split("_")[0] in SERVICES}
    assert ours, f"no {own}_ family exported"
    assert {name.split("_")[0] for name in ours} == {own}, sorted(ours)
    assert all(
        kind == "histogram"
        for name, kind in families.items()
        if name.endswith("_seconds") and name.split("_")[0] in SERVICES and "latency" in name
    ), families
    return families


def _scrape_when(service: Service, port: int, ready: Callable[[str], bool]) -> str:
    def probe() -> str | None:
        text = scrape(port)
        return text if text is not None and ready(text) else None

    return service.until("its /metrics showed traffic", probe)


def _common_env(
    kafka: KafkaSettings, cassandra: CassandraSettings, metrics_port: int
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CASSANDRA_CONTACT_POINTS": cassandra.contact_points,
        "CASSANDRA_PORT": str(cassandra.port),
        "CASSANDRA_KEYSPACE": cassandra.keyspace,
        "METRICS_PORT": str(metrics_port),
    }


def test_each_service_exports_only_its_own_metrics_and_promtool_accepts_them(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic: Callable[[int], str],
    tmp_path: Path,
) -> None:
    ticks, dlq = make_topic(2), make_topic(1)
    venue_port = free_port()
    ports = {name: free_port() for name in SERVICES}
    env = {name: _common_env(kafka_settings, cassandra_settings, ports[name]) for name in SERVICES}
    simulator_args = ["simulate", "--venue", "coinbase", "--port", str(venue_port)]
    simulator_args += ["--symbols", "2", "--rate", "200"]
    feed_env = {
        **env["feedhandler"],
        "FEEDHANDLER_VENUE": "coinbase",
        "FEEDHANDLER_URL": f"ws://127.0.0.1:{venue_port}",
        "FEEDHANDLER_SYMBOLS": "SIM0-USD,SIM1-USD",
        "FEEDHANDLER_TICKS_TOPIC": ticks,
    }
    writer_env = {
        **env["tickwriter"],
        "TICKWRITER_CONSUME": "ticks",
        "TICKWRITER_TICKS_TOPIC": ticks,
        "TICKWRITER_DLQ_TOPIC": dlq,
        "TICKWRITER_GROUP_ID": f"{ticks}.writer",
        "TICKWRITER_GRPC_PORT": "0",
    }
    gateway_env = {
        **env["gateway"],
        "GATEWAY_INSECURE": "true",
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_TICKS_TOPIC": ticks,
        "GATEWAY_TRADING": "off",
    }
    with (
        running("simulator", simulator_args, {}, tmp_path),
        running("feedhandler", ["feed"], feed_env, tmp_path) as feed,
        running("tickwriter", ["tickwriter"], writer_env, tmp_path) as writer,
        running("gateway", ["gateway", "--workers", "1"], gateway_env, tmp_path) as gateway,
    ):
        acked = re.compile(r"^feedhandler_produce_latency_seconds_count\{[^}]*\} [1-9]", re.M)
        text = _scrape_when(feed, ports["feedhandler"], lambda t: bool(acked.search(t)))
        families = _check(text, "feedhandler")
        assert families["feedhandler_produce_latency_seconds"] == "histogram"

        written = re.compile(r'^tickwriter_rows_written_total\{table="tick_data"\} [1-9]', re.M)
        text = _scrape_when(writer, ports["tickwriter"], lambda t: bool(written.search(t)))
        families = _check(text, "tickwriter")
        assert families["tickwriter_write_latency_seconds"] == "histogram"

        applied = re.compile(r'^gateway_feed_records_total\{result="applied"\} [1-9]', re.M)
        text = _scrape_when(gateway, ports["gateway"], lambda t: bool(applied.search(t)))
        families = _check(text, "gateway")
        assert families["gateway_rpc_handling_seconds"] == "histogram"

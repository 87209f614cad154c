"""The three services as ``mdgw`` starts them (simulator -> feed handler -> Kafka -> tick
writer and gateway), checked as Kubernetes and Prometheus see them.

Health, on each service's plaintext ``HEALTH_PORT`` (what the kubelet's gRPC probes ask):
``liveness`` SERVING, and ``readiness`` SERVING once the service is connected (feed handler:
Kafka and the venue; tick writer: Kafka, its group assignment, Cassandra; gateway: its feed
and Cassandra).

Each service's real /metrics, as Prometheus reads it:

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

import grpc
import pytest
from cassandra.cluster import Session
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


def _health(port: int, service: str) -> int | None:
    """The status of ``service`` on a health port, or None while it does not answer."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def _until_ready(service: Service, port: int) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    service.until("it answered liveness", lambda: _health(port, "liveness"))
    assert _health(port, "liveness") == serving
    service.until("it was ready", lambda: True if _health(port, "readiness") == serving else None)
    assert _health(port, "") == serving


def _common_env(
    kafka: KafkaSettings, cassandra: CassandraSettings, metrics_port: int
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CASSANDRA_CONTACT_POINTS": cassandra.contact_points,
        "CASSANDRA_PORT": str(cassandra.port),
        "CASSANDRA_KEYSPACE": cassandra.keyspace,
        "METRICS_PORT": str(metrics_port),
        "HEALTH_PORT": str(free_port()),
    }


def test_each_service_gets_ready_and_exports_only_its_own_metrics_which_promtool_accepts(
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
        "FEEDHANDLER_STATS_INTERVAL_MS": "500",
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
        for service, service_env in (
            (feed, feed_env),
            (writer, writer_env),
            (gateway, gateway_env),
        ):
            _until_ready(service, int(service_env["HEALTH_PORT"]))

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

"""``python -m gateway`` as deployed: mutual TLS and tokens from the environment, two processes
side by side on one topic, health, and SIGTERM draining open streams before a clean exit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cassandra.cluster import Session
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from gateway.client import GatewayClient
from gateway.devcerts import DevCertificates, make_dev_certificates
from gateway.security import channel_credentials
from marketcore.instruments import InstrumentKey
from marketinfra.kafka import make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import flush_or_fail
from tests.support import price_update, subscribed

TOKEN = "process-token-0123456789abcdef"
SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Process:
    process: asyncio.subprocess.Process
    port: int
    log: list[dict[str, object]]

    async def exit_code(self, timeout_s: float) -> int:
        async with asyncio.timeout(timeout_s):
            await self._drain_log()
            return await self.process.wait()

    async def _drain_log(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(_parse(line))


def _parse(line: bytes) -> dict[str, object]:
    try:
        entry = json.loads(line)
    except ValueError:
        return {"event": "raw", "line": line.decode(errors="replace")}
    return entry if isinstance(entry, dict) else {"event": "raw"}


async def _launch(env: dict[str, str]) -> Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    log: list[dict[str, object]] = []
    async with asyncio.timeout(30):
        async for line in process.stderr:
            entry = _parse(line)
            log.append(entry)
            if entry.get("event") == "gateway_serving":
                return Process(process, int(str(entry["port"])), log)
    pytest.fail(f"the gateway exited before serving: {log}")


@pytest.fixture
def certs(tmp_path: Path) -> DevCertificates:
    return make_dev_certificates(tmp_path / "certs", now=dt.datetime.now(tz=dt.UTC))


@pytest.fixture
async def processes(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,  # the keyspace and tables exist
    certs: DevCertificates,
    make_topic,
) -> AsyncIterator[tuple[str, list[Process]]]:
    topic = make_topic(2)
    env = {
        **os.environ,
        "PYTHONPATH": str(SOURCE_ROOT),
        "LOG_FORMAT": "json",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CASSANDRA_KEYSPACE": cassandra_settings.keyspace,
        "GATEWAY_PORT": "0",
        "GATEWAY_TICKS_TOPIC": topic,
        "GATEWAY_TRADING": "off",
        "GATEWAY_TLS_CERT_FILE": str(certs.server_cert),
        "GATEWAY_TLS_KEY_FILE": str(certs.server_key),
        "GATEWAY_TLS_CLIENT_CA_FILE": str(certs.ca_cert),
        "GATEWAY_AUTH_TOKENS": json.dumps({TOKEN: {"account": "proc"}}),
        "GATEWAY_SHUTDOWN_GRACE_S": "5",
    }
    started = await asyncio.gather(_launch(env), _launch(env))
    yield topic, list(started)
    for running in started:
        if running.process.returncode is None:
            running.process.kill()
            await running.process.wait()


def _generic_quote(port: int, certs: DevCertificates) -> tuple[list[str], str]:
    """A client that is not ours: it learns the API from reflection, then calls GetQuote."""
    credentials = grpc.ssl_channel_credentials(
        certs.ca_cert.read_bytes(), certs.client_key.read_bytes(), certs.client_cert.read_bytes()
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("financial.marketdata.v2.MarketDataService")
        method = service.methods_by_name["GetQuote"]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            "/financial.marketdata.v2.MarketDataService/GetQuote",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(
            request_class(symbol="PROC", exchange="ITPROC"),
            timeout=5,
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )
        return services, response.latest.symbol


def _client(port: int, certs: DevCertificates) -> GatewayClient:
    credentials = channel_credentials(certs.ca_cert, certs.client_cert, certs.client_key)
    return GatewayClient(f"127.0.0.1:{port}", credentials=credentials, token=TOKEN)


async def test_two_processes_serve_side_by_side_and_sigterm_drains_streams(
    processes: tuple[str, list[Process]],
    certs: DevCertificates,
    kafka_settings: KafkaSettings,
) -> None:
    topic, (first, second) = processes
    clients = [_client(first.port, certs), _client(second.port, certs)]
    for client in clients:
        health = health_pb2_grpc.HealthStub(client.channel)
        response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    calls = [client.subscribe(["PROC"], "ITPROC") for client in clients]
    await subscribed(*calls)

    producer = make_producer(kafka_settings)
    tick = price_update(
        exchange="ITPROC", symbol="PROC", bid_nanos=1_000_000, ask_nanos=1_010_000,
        event_time_ns=time.time_ns(), feed_handler_id="proc", feed_sequence=1,
    )  # fmt: skip
    producer.produce(
        topic, key=InstrumentKey("ITPROC", "PROC").kafka_key(), value=tick.SerializeToString()
    )
    flush_or_fail(producer, kafka_settings.bootstrap_servers)
    for call in calls:  # every process consumes every partition: both streams get the tick
        async with asyncio.timeout(15):
            update = await call.read()
        assert update.feed_sequence == 1

    first.process.send_signal(signal.SIGTERM)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async with asyncio.timeout(10):
            await calls[0].read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "resubscribe" in (caught.value.details() or "")
    assert await first.exit_code(15) == 0
    events = [entry.get("event") for entry in first.log]
    assert "gateway_stopping" in events
    assert "gateway_stopped" in events

    quote = await clients[1].get_quote("PROC", "ITPROC")  # the other one still serves
    assert quote.latest.feed_sequence == 1
    services, symbol = await asyncio.to_thread(_generic_quote, second.port, certs)
    assert "financial.marketdata.v2.MarketDataService" in services
    assert symbol == "PROC"
    calls[1].cancel()
    second.process.send_signal(signal.SIGTERM)
    assert await second.exit_code(15) == 0
    for client in clients:
        await client.close()

"""``mdgw gateway --workers 2`` as run by people: two supervised processes on one port, each
with its own Kafka consumer. Every worker's subscribers get every tick; a killed worker leaves
the other serving and is started again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cassandra.cluster import Session
from confluent_kafka import Producer

from financial.marketdata.v2.prices_pb2 import PriceSubscription, PriceUpdate
from gateway.client import GatewayClient
from gateway.service.market_data import WORKER_HEADER
from marketcore.instruments import InstrumentKey
from marketinfra.kafka import make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import flush_or_fail
from tests.support import free_port, price_update

SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"
EXCHANGE = "WRK"
SYMBOLS = ["W1", "W2", "W3"]
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]  # one connection per client


@dataclass
class Supervised:
    process: asyncio.subprocess.Process
    port: int
    log: list[dict[str, object]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def events(self, name: str) -> list[dict[str, object]]:
        return [entry for entry in self.log if entry.get("event") == name]

    async def until(self, name: str, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.events(name)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"no {count} x {name} in {timeout_s}s: {self.log[-20:]}")
            if self.process.returncode is not None:
                pytest.fail(f"the supervisor exited ({self.process.returncode}): {self.log}")
            await asyncio.sleep(0.1)

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": "raw", "line": line.decode(errors="replace")}
            self.log.append(entry if isinstance(entry, dict) else {"event": "raw"})


@pytest.fixture
async def supervised(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,  # the keyspace and tables exist
    make_topic,
) -> AsyncIterator[tuple[Supervised, str]]:
    topic = make_topic(2)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(SOURCE_ROOT),
        "LOG_FORMAT": "json",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CASSANDRA_KEYSPACE": cassandra_settings.keyspace,
        "GATEWAY_TICKS_TOPIC": topic,
        "GATEWAY_TRADING": "off",
        "GATEWAY_SHUTDOWN_GRACE_S": "3",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mdgw", "gateway", "--insecure", "--workers", "2",
        "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    running = Supervised(process, port)
    running.reader = asyncio.create_task(running.read_log())
    try:
        await running.until("gateway_serving", 2)
        yield running, topic
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        running.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.reader


async def _produce(producer: Producer, topic: str, bootstrap: str, first: int, last: int) -> None:
    def send() -> None:
        for seq in range(first, last + 1):
            for symbol in SYMBOLS:
                tick = price_update(
                    exchange=EXCHANGE, symbol=symbol, bid_nanos=1_000_000 + seq,
                    ask_nanos=1_100_000 + seq, event_time_ns=time.time_ns(),
                    feed_handler_id="workers-it", feed_sequence=seq,
                )  # fmt: skip
                key = InstrumentKey(EXCHANGE, symbol).kafka_key()
                producer.produce(topic, key=key, value=tick.SerializeToString())
        flush_or_fail(producer, bootstrap)

    await asyncio.to_thread(send)


@dataclass
class Subscriber:
    client: GatewayClient
    call: grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdate]
    worker: str


async def _subscribe_on_every_worker(port: int, workers: set[str]) -> list[Subscriber]:
    """Open connections until each named worker serves at least one stream (the kernel spreads
    connections over the processes sharing the port)."""
    subscribers: list[Subscriber] = []
    for _ in range(40):
        client = GatewayClient(f"127.0.0.1:{port}", extra_options=LOCAL_POOL)
        call = client.subscribe(SYMBOLS, EXCHANGE)
        metadata = dict(await call.initial_metadata())
        subscribers.append(Subscriber(client, call, str(metadata[WORKER_HEADER])))
        if {s.worker for s in subscribers} >= workers:
            return subscribers
    pytest.fail(f"40 connections never reached every worker: {[s.worker for s in subscribers]}")


async def _received_through(subscriber: Subscriber, last: int, timeout_s: float = 20) -> None:
    """Read until every symbol's tick ``last`` arrived, checking per-symbol order."""
    seen: dict[str, int] = {}
    async with asyncio.timeout(timeout_s):
        async for update in subscriber.call:
            assert update.feed_sequence > seen.get(update.symbol, 0), "older after newer"
            seen[update.symbol] = update.feed_sequence
            if all(seen.get(symbol) == last for symbol in SYMBOLS):
                return


async def test_every_worker_serves_every_tick_and_a_killed_worker_comes_back(
    supervised: tuple[Supervised, str], kafka_settings: KafkaSettings
) -> None:
    running, topic = supervised
    workers = {"worker-0", "worker-1"}
    producer = make_producer(kafka_settings)
    subscribers = await _subscribe_on_every_worker(running.port, workers)
    await _produce(producer, topic, kafka_settings.bootstrap_servers, 1, 50)
    await asyncio.gather(*(_received_through(s, 50) for s in subscribers))

    started = running.events("gateway_worker_started")
    victim = next(entry for entry in started if entry["worker"] == 0)
    os.kill(int(str(victim["pid"])), signal.SIGKILL)
    await running.until("gateway_worker_exited", 1)
    survivors = [s for s in subscribers if s.worker == "worker-1"]
    await _produce(producer, topic, kafka_settings.bootstrap_servers, 51, 60)
    await asyncio.gather(*(_received_through(s, 60) for s in survivors))

    await running.until("gateway_serving", 3)  # worker 0 again
    restarted = [e for e in running.events("gateway_worker_started") if e["worker"] == 0]
    assert len(restarted) == 2
    assert restarted[1]["pid"] != victim["pid"]
    for subscriber in subscribers:
        subscriber.call.cancel()
        await subscriber.client.close()
    again = await _subscribe_on_every_worker(running.port, workers)
    await _produce(producer, topic, kafka_settings.bootstrap_servers, 61, 70)
    await asyncio.gather(*(_received_through(s, 70) for s in again))
    for subscriber in again:
        subscriber.call.cancel()
        await subscriber.client.close()

    running.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        code = await running.process.wait()
    assert code == 0
    assert len(running.events("gateway_worker_stopped")) == 2

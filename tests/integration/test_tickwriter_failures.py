"""Whatever fails around it, the tick writer loses no tick and writes none twice.

The outage test stops the real Cassandra for 20 s and starts it again (mdgw infra), so it
assumes the servers were started by `mdgw infra up` with this environment's settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from cassandra.cluster import Session

from financial.marketdata.v1 import services_pb2_grpc
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.localinfra import LocalInfraSettings, down, up
from tests.integration.support import flush_or_fail
from tests.integration.tickwriter_support import (
    caught_up,
    committed,
    make_tick,
    produce_ticks,
    row_sequences,
    running,
    wait_for,
    wait_until_queryable,
    writer_settings,
)
from tickwriter.service import TickWriterServicer

OUTAGE_S = 20


class SteadyProducer:
    """Produces one instrument's ticks at a steady rate on a thread, numbering them 1, 2, 3..."""

    def __init__(self, kafka: KafkaSettings, topic: str, symbol: str, per_second: float) -> None:
        self._producer = make_producer(kafka)
        self._kafka = kafka
        self._topic, self._symbol, self._interval = topic, symbol, 1 / per_second
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        flush_or_fail(self._producer, self._kafka.bootstrap_servers)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            produce_ticks(self._producer, self._topic, [make_tick(self._symbol, self.sent)])
            time.sleep(self._interval)


@pytest.fixture
def infra_settings() -> LocalInfraSettings:
    return LocalInfraSettings()


@pytest.fixture
def restarts_cassandra(
    infra_settings: LocalInfraSettings, cassandra_session: Session
) -> Iterator[None]:
    """Whatever happens in the test, Cassandra is running again afterwards, and the shared
    test session is connected again before the next test uses it."""
    yield
    up(infra_settings, only=["cassandra"])
    wait_until_queryable(cassandra_session)


def test_cassandra_outage_loses_nothing_and_commits_nothing_unwritten(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
    infra_settings: LocalInfraSettings,
    restarts_cassandra: None,
) -> None:
    topic, dlq = make_topic(2), make_topic(1)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    with running(settings) as app, SteadyProducer(kafka_settings, topic, "OUTAGE", 40) as feed:
        wait_for(
            lambda: len(row_sequences(cassandra_session, "OUTAGE")) >= 40,
            30,
            "rows before the outage",
        )
        servicer = TickWriterServicer(app.writer)

        down(infra_settings, only=["cassandra"])
        time.sleep(2)  # a flush that was already in Cassandra when it stopped may still commit
        before = committed(lookup, topic, 2)
        during: list[dict[int, int]] = []
        unavailable = _write_tick_status(servicer)
        for _ in range(OUTAGE_S - 2):
            time.sleep(1)
            during.append(committed(lookup, topic, 2))
        up(infra_settings, only=["cassandra"])
        sent_during_outage = feed.sent
    wait_until_queryable(cassandra_session)

    assert unavailable is grpc.StatusCode.UNAVAILABLE
    assert all(sample == before for sample in during), (
        "offsets moved while nothing could be written"
    )

    with running(settings):
        wait_for(lambda: caught_up(lookup, topic, 2), 90, "the writer to catch up after the outage")
    lookup.close()
    sequences = row_sequences(cassandra_session, "OUTAGE")
    assert feed.sent > sent_during_outage - 1
    assert sequences == list(range(1, feed.sent + 1)), "every tick exactly once, in order"


def _write_tick_status(servicer: TickWriterServicer) -> grpc.StatusCode | None:
    """Call WriteTick over a real channel and return the status code it ended with."""
    import asyncio

    async def call() -> grpc.StatusCode | None:
        server = grpc.aio.server()
        services_pb2_grpc.add_TickWriterServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_pb2_grpc.TickWriterServiceStub(channel)
                try:
                    await stub.WriteTick(make_tick("OUTAGE_RPC", 1), timeout=30)
                except grpc.aio.AioRpcError as error:
                    return error.code()
                return None
        finally:
            await server.stop(0)

    return asyncio.run(call())


def test_sigkill_mid_batch_then_restart_writes_every_tick_once(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    topic, dlq = make_topic(2), make_topic(1)
    total = 3000
    producer = make_producer(kafka_settings)
    produce_ticks(producer, topic, [make_tick("KILLED", n) for n in range(1, total + 1)])
    flush_or_fail(producer, kafka_settings.bootstrap_servers)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CASSANDRA_KEYSPACE": cassandra_settings.keyspace,
        "CASSANDRA_PORT": str(cassandra_settings.port),
        "TICKWRITER_TICKS_TOPIC": topic,
        "TICKWRITER_DLQ_TOPIC": dlq,
        "TICKWRITER_GROUP_ID": settings.group_id,
        "TICKWRITER_CONSUME": "ticks",
        "TICKWRITER_GRPC_PORT": "0",
        # small batches so the kill lands between flushes as well as inside one
        "TICKWRITER_FLUSH_MAX_RECORDS": "50",
    }

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tickwriter"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = start()
    try:
        wait_for(lambda: len(row_sequences(cassandra_session, "KILLED")) >= 300, 60, "some rows")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert len(row_sequences(cassandra_session, "KILLED")) < total, "killed too late to matter"
    finally:
        if first.poll() is None:
            first.kill()
    second = start()
    lookup = make_consumer(kafka_settings, settings.group_id)
    try:
        wait_for(lambda: caught_up(lookup, topic, 2), 90, "the restarted writer to catch up")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, "a clean stop exits 0"
    finally:
        lookup.close()
        if second.poll() is None:
            second.kill()
    assert row_sequences(cassandra_session, "KILLED") == list(range(1, total + 1))

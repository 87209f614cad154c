"""Whatever fails around it, the tick writer loses no tick and writes none twice.

Two Cassandra failures, on the shared server of `mdgw infra up` (this environment's settings):
- stopped for 20 s and started again (`mdgw infra` down/up, only Cassandra): connections are
  refused, the driver marks the node down and reconnects when it is back;
- frozen for 8 s (SIGSTOP, then SIGCONT), as a node in a long GC pause or behind a network
  partition: connections stay open, requests time out instead.
Both always bring Cassandra back, whatever the test does (fixtures). Other people's tests on the
same server see the same outage meanwhile, so both are kept short.
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
from grpc_health.v1 import health_pb2, health_pb2_grpc

from financial.marketdata.v2 import services_pb2_grpc
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.readiness import CASSANDRA
from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.localinfra import LocalInfraSettings, down, status, up
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
from tests.support import free_port
from tickwriter.metrics import REGISTRY
from tickwriter.service import TickWriterServicer

OUTAGE_S = 20
FREEZE_S = 8  # longer than the driver's request timeout (CASSANDRA_REQUEST_TIMEOUT_S, 5 s)


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


@pytest.fixture
def cassandra_pid(infra_settings: LocalInfraSettings) -> Iterator[int]:
    """The local Cassandra's pid; it is sent SIGCONT afterwards, whatever the test did."""
    (server,) = [s for s in status(infra_settings) if s.name == "cassandra"]
    assert server.pid is not None, "Cassandra is not running under `mdgw infra`"
    try:
        yield server.pid
    finally:
        os.kill(server.pid, signal.SIGCONT)


def test_cassandra_outage_loses_nothing_and_commits_nothing_unwritten(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
    infra_settings: LocalInfraSettings,
    restarts_cassandra: None,
) -> None:
    """Cassandra is stopped for 20 s in the middle of a steady stream, then started again. The
    same writer pauses, commits nothing meanwhile, and catches up by itself once it is back."""
    topic, dlq = make_topic(2), make_topic(1)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    with running(settings) as app:
        with SteadyProducer(kafka_settings, topic, "OUTAGE", 40) as feed:
            wait_for(
                lambda: len(row_sequences(cassandra_session, "OUTAGE")) >= 40,
                30,
                "rows before the outage",
            )
            down(infra_settings, only=["cassandra"])
            time.sleep(2)  # a flush already in Cassandra when it stopped may still commit
            before = committed(lookup, topic, 2)
            lag_before = _lag(topic)
            unavailable = _write_tick_status(TickWriterServicer(app.writer))
            during: list[dict[int, int]] = []
            paused: list[float | None] = []
            unready: list[str | None] = []  # why readiness says the writer cannot write
            for _ in range(OUTAGE_S - 2):
                time.sleep(1)
                during.append(committed(lookup, topic, 2))
                paused.append(REGISTRY.get_sample_value("tickwriter_consumption_paused"))
                unready.append(app.readiness.unmet().get(CASSANDRA))
            lag_during = _lag(topic)
            up(infra_settings, only=["cassandra"])
            wait_until_queryable(cassandra_session)
            time.sleep(1)  # the stream goes on after the restart
        # the producer has stopped; the writer that lived through the outage catches up
        wait_for(lambda: caught_up(lookup, topic, 2), 60, "the writer to catch up after it")
        assert REGISTRY.get_sample_value("tickwriter_consumption_paused") == 0
        assert CASSANDRA not in app.readiness.unmet(), "readiness did not come back"
    lookup.close()

    assert unavailable is grpc.StatusCode.UNAVAILABLE
    assert all(sample == before for sample in during), "offsets moved while nothing was written"
    assert 1 in paused, "consumption was never paused"
    assert any(unready), "readiness never said the writer could not write"
    assert lag_during >= lag_before + 20 * (OUTAGE_S - 4), "lag did not grow during the outage"
    assert row_sequences(cassandra_session, "OUTAGE") == list(range(1, feed.sent + 1)), (
        "every tick exactly once, in order"
    )


def test_frozen_cassandra_times_out_and_the_writer_catches_up_alone(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
    cassandra_pid: int,
) -> None:
    topic, dlq = make_topic(1), make_topic(1)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    with running(settings) as app:
        with SteadyProducer(kafka_settings, topic, "FROZEN", 40) as feed:
            wait_for(
                lambda: len(row_sequences(cassandra_session, "FROZEN")) >= 40,
                30,
                "rows before the freeze",
            )
            os.kill(cassandra_pid, signal.SIGSTOP)
            try:
                time.sleep(1)  # a flush acknowledged just before the freeze may still commit
                before = committed(lookup, topic, 1)
                started = time.monotonic()
                timed_out = _write_tick_status(TickWriterServicer(app.writer))
                during = [committed(lookup, topic, 1)]
                while time.monotonic() - started < FREEZE_S - 1:
                    time.sleep(0.5)
                    during.append(committed(lookup, topic, 1))
            finally:
                os.kill(cassandra_pid, signal.SIGCONT)
            time.sleep(1)  # the stream goes on after the node wakes up
        wait_for(lambda: caught_up(lookup, topic, 1), 60, "the writer to catch up after it")
    lookup.close()

    assert timed_out is grpc.StatusCode.UNAVAILABLE
    assert all(sample == before for sample in during), "offsets moved while nothing was written"
    assert row_sequences(cassandra_session, "FROZEN") == list(range(1, feed.sent + 1))


def _lag(topic: str) -> float:
    """tickwriter_consumer_lag_records summed over the topic's partitions."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "tickwriter_consumer_lag_records"
        for sample in metric.samples
        if sample.labels.get("topic") == topic
    )


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
        # Static membership: the restarted process takes the killed one's place and partitions
        # at once, instead of waiting out its session timeout (45 s) for a rebalance.
        "TICKWRITER_GROUP_INSTANCE_ID": f"{settings.group_id}-0",
        "TICKWRITER_CONSUME": "ticks",
        "TICKWRITER_GRPC_PORT": "0",
        "TICKWRITER_GRPC_INSECURE": "true",  # plaintext on loopback, as in development
        # small batches so the kill lands between flushes as well as inside one
        "TICKWRITER_FLUSH_MAX_RECORDS": "50",
    }

    def start(grpc_port: int = 0, **extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tickwriter"],
            env={**env, "TICKWRITER_GRPC_PORT": str(grpc_port), **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # The first writer writes one row per batch, one batch at a time: slow enough that it is
    # still writing when it is killed (at full speed it could finish all of them between two
    # looks at the table).
    first = start(TICKWRITER_ROWS_PER_BATCH="1", TICKWRITER_MAX_IN_FLIGHT="1")
    try:
        wait_for(
            lambda: len(row_sequences(cassandra_session, "KILLED")) >= 300,
            60,
            "some rows",
            interval_s=0.05,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    lookup = make_consumer(kafka_settings, settings.group_id)
    written_at_kill = row_sequences(cassandra_session, "KILLED")
    committed_at_kill = sum(max(0, offset) for offset in committed(lookup, topic, 2).values())
    assert len(written_at_kill) < total, "killed too late to matter"
    # every record below the committed offset has its row (a flush cut short by the kill may
    # have left rows beyond it, which the restarted writer rewrites in place)
    assert set(range(1, committed_at_kill + 1)) <= set(written_at_kill), "committed past a row"
    grpc_port = free_port()
    second = start(grpc_port)  # this one also serves TickWriterService, as in production
    try:
        wait_for(lambda: caught_up(lookup, topic, 2), 40, "the restarted writer to catch up")
        _check_served(grpc_port)
        assert row_sequences(cassandra_session, "KILLED_RPC") == [1]
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, "a clean stop exits 0"
    finally:
        lookup.close()
        if second.poll() is None:
            second.kill()
    assert row_sequences(cassandra_session, "KILLED") == list(range(1, total + 1))


def _check_served(port: int) -> None:
    """The process reports itself SERVING on the standard health service and takes a WriteTick."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=15)
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "financial.marketdata.v2.TickWriterService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        ack = services_pb2_grpc.TickWriterServiceStub(channel).WriteTick(
            make_tick("KILLED_RPC", 1), timeout=10
        )
        assert ack.success

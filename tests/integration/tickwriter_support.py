"""Running the tick writer pipeline in-process against a test's own topics and keyspace."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable, Session
from confluent_kafka import Consumer, Producer, TopicPartition

from financial.marketdata.v1.prices_pb2 import PriceUpdate
from marketcore.instruments import InstrumentKey
from marketinfra.settings import CassandraSettings, KafkaSettings
from tickwriter.app import TickWriter, build
from tickwriter.config import TickWriterSettings

BASE_EVENT_NS = 1_763_800_000_000_000_000  # 2025-11-22, a fixed trading day for the rows


def writer_settings(
    kafka: KafkaSettings,
    cassandra: CassandraSettings,
    ticks_topic: str,
    dlq_topic: str,
    **extra: object,
) -> TickWriterSettings:
    fields: dict[str, object] = {
        "kafka": kafka,
        "cassandra": cassandra,
        "ticks_topic": ticks_topic,
        "dlq_topic": dlq_topic,
        "group_id": f"tickwriter-test-{uuid.uuid4().hex[:8]}",
        "consume": "ticks",
        "grpc_port": 0,
        "retry_base_s": 0.2,
        "retry_cap_s": 1.0,
    }
    return TickWriterSettings(**{**fields, **extra})


@contextmanager
def running(settings: TickWriterSettings) -> Iterator[TickWriter]:
    app = build(settings)
    thread = threading.Thread(target=app.pipeline.run, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.pipeline.stop()
        thread.join(timeout=30)
        app.cluster.shutdown()
    assert not thread.is_alive(), "pipeline did not stop"
    assert app.pipeline.crashed is None, f"pipeline crashed: {app.pipeline.crashed!r}"


def make_tick(symbol: str, sequence: int, exchange: str = "NASDAQ") -> PriceUpdate:
    return PriceUpdate(
        exchange=exchange,
        symbol=symbol,
        bid_micros=100_000_000 + sequence,
        ask_micros=100_010_000 + sequence,
        last_micros=100_005_000 + sequence,
        event_time_ns=BASE_EVENT_NS + sequence * 1_000,
        received_time_ns=BASE_EVENT_NS + sequence * 1_000 + 500,
        feed_handler_id="fh-test",
        feed_sequence=sequence,
    )


def produce_ticks(producer: Producer, topic: str, ticks: list[PriceUpdate]) -> None:
    for tick in ticks:
        key = InstrumentKey(tick.exchange, tick.symbol).kafka_key()
        producer.produce(topic, value=tick.SerializeToString(), key=key)
        producer.poll(0)


def row_sequences(session: Session, symbol: str, exchange: str = "NASDAQ") -> list[int]:
    """feed_sequence of every stored tick of one instrument, oldest first."""
    rows = session.execute(
        "SELECT payload FROM tick_data WHERE exchange = %s AND symbol = %s AND trade_date = %s",
        (exchange, symbol, "2025-11-22"),
        timeout=30,
    )
    return [PriceUpdate.FromString(row.payload).feed_sequence for row in rows][::-1]


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}", pytrace=False)
        time.sleep(interval_s)


def wait_until_queryable(session: Session, timeout_s: float = 60) -> None:
    """After a Cassandra restart, wait until this (older) session has reconnected."""

    def answers() -> bool:
        try:
            session.execute("SELECT release_version FROM system.local", timeout=5)
        except (NoHostAvailable, OperationTimedOut):
            return False
        return True

    wait_for(answers, timeout_s, "the test session to reconnect to Cassandra", interval_s=0.5)


def committed(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    positions = consumer.committed(
        [TopicPartition(topic, p) for p in range(partitions)], timeout=10
    )
    return {tp.partition: tp.offset for tp in positions}


def caught_up(consumer: Consumer, topic: str, partitions: int) -> bool:
    """Every partition committed to its end (an empty partition has nothing to commit)."""
    done = committed(consumer, topic, partitions)
    return all(
        end == 0 or done[p] == end for p, end in end_offsets(consumer, topic, partitions).items()
    )


def end_offsets(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(partitions)
    }

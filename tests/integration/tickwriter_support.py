"""Running the tick writer pipeline in-process against a test's own topics and keyspace."""

from __future__ import annotations

import decimal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable, Session
from confluent_kafka import Consumer, Producer, TopicPartition

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.instruments import InstrumentKey
from marketinfra.settings import CassandraSettings, KafkaSettings
from mdgw.localinfra import LocalInfraSettings
from tests.support import price_update
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


def make_tick(
    symbol: str, sequence: int, exchange: str = "NASDAQ", **fields: object
) -> PriceUpdate:
    """Tick number ``sequence`` of ``symbol``: bid 100.000000, ask 100.010000 and last
    100.005000, each plus ``sequence`` micros (in nanos: 100_005_000_000 + sequence * 1000);
    ``fields`` override (``tests.support.proto`` style: ``bid_nanos=...``, ``bid="0.1"``)."""
    values: dict[str, object] = {
        "exchange": exchange,
        "symbol": symbol,
        "bid_nanos": 100_000_000_000 + sequence * 1_000,
        "ask_nanos": 100_010_000_000 + sequence * 1_000,
        "last_nanos": 100_005_000_000 + sequence * 1_000,
        "event_time_ns": BASE_EVENT_NS + sequence * 1_000,
        "received_time_ns": BASE_EVENT_NS + sequence * 1_000 + 500,
        "feed_handler_id": "fh-test",
        "feed_sequence": sequence,
    }
    for name in fields:  # ask="..." replaces ask_nanos, and the other way round
        values.pop(f"{name}_nanos", None)
        values.pop(name.removesuffix("_nanos"), None)
    return price_update(**{**values, **fields})


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


def stored_bar(
    session: Session, symbol: str, exchange: str = "NASDAQ", trade_date: str = "2025-11-22"
) -> tuple[int, ...] | None:
    """A daily_bars row as (open, high, low, close, volume, first_event_ns, last_event_ns),
    the values in nanos decoded as cql/005_daily_bars.cql defines the cells: (units, nanos)
    is units * 1e9 + nanos, and low keeps its nanos bit-inverted (-1 - nanos)."""
    row = session.execute(
        "SELECT open, high, low, close, volume, first_event_ns, last_event_ns FROM daily_bars "
        "WHERE exchange = %s AND symbol = %s AND trade_date = %s",
        (exchange, symbol, trade_date),
        timeout=30,
    ).one()
    if row is None:
        return None

    def value(cell: tuple[int, int], inverted: bool = False) -> int:
        units, nanos = cell
        return units * 1_000_000_000 + (-1 - nanos if inverted else nanos)

    return (
        value(row.open), value(row.high), value(row.low, inverted=True), value(row.close),
        value(row.volume), row.first_event_ns, row.last_event_ns,
    )  # fmt: skip


def flush_table(keyspace: str, table: str) -> None:
    """``nodetool flush``: the table's memtable becomes an SSTable now, so later writes of the
    same cells meet the earlier ones when they are read (merged across SSTables), not when
    they are written. Runs the local server's own NodeTool over JMX (`mdgw infra`)."""
    infra = LocalInfraSettings()
    java = infra.java_home / "bin" / "java" if infra.java_home else Path("java")
    lib = infra.resolved_home() / "lib" / "cassandra"
    with tempfile.TemporaryDirectory() as home:  # NodeTool keeps a history file in ~
        result = subprocess.run(
            [
                str(java),
                # the two JDK internals NodeTool's start-up touches on Java 17
                "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
                "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
                f"-Duser.home={home}",
                "-cp", f"{lib}/*",
                "org.apache.cassandra.tools.NodeTool",
                "-h", "127.0.0.1", "-p", str(infra.cassandra_jmx_port),
                "flush", "--", keyspace, table,
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(
            f"nodetool flush {keyspace} {table} failed ({result.returncode}): "
            f"{result.stderr[-2000:]}",
            pytrace=False,
        )


# Values v1 could not carry, as a venue would send them: 8- and 9-decimal prices (ADA-BTC
# at 0.00002288), sizes finer than a micro, a cumulative volume of ~1e15 units with nine
# decimals. (field, text, the wire's (units, nanos) for it, read off the text).
EXACT_VALUES = (
    ("bid", "0.000022880", (0, 22_880)),
    ("ask", "0.00002289", (0, 22_890)),
    ("last", "0.000022881", (0, 22_881)),
    ("volume", "999999999999999.123456789", (999_999_999_999_999, 123_456_789)),
    ("bid_size", "0.00000001", (0, 10)),
    ("ask_size", "1234.567890123", (1_234, 567_890_123)),
    ("last_size", "0.000000001", (0, 1)),
)
EXACT_COLUMNS = ", ".join(field for field, _, _ in EXACT_VALUES)


def exact_tick(symbol: str, sequence: int = 1) -> PriceUpdate:
    """A KRAKEN tick of ``symbol`` carrying ``EXACT_VALUES``."""
    return make_tick(symbol, sequence, "KRAKEN", **{field: text for field, text, _ in EXACT_VALUES})


def check_exact_row(session: Session, symbol: str, sent: PriceUpdate) -> None:
    """The one tick_data row of ``symbol`` holds ``EXACT_VALUES`` exactly, in its decimal
    columns (compared with the decimal text) and in its payload (the bytes sent)."""
    rows = list(
        session.execute(
            f"SELECT {EXACT_COLUMNS}, payload FROM tick_data "
            "WHERE exchange = 'KRAKEN' AND symbol = %s AND trade_date = '2025-11-22'",
            (symbol,),
            timeout=30,
        )
    )
    assert len(rows) == 1
    (row,) = rows
    for field, text, (units, nanos) in EXACT_VALUES:
        assert getattr(row, field) == decimal.Decimal(text), field
        assert getattr(row, field).as_tuple().exponent == -9, f"{field} at scale 9"
        stored = getattr(PriceUpdate.FromString(row.payload), field)
        assert (stored.units, stored.nanos) == (units, nanos), field
    assert row.payload == sent.SerializeToString()

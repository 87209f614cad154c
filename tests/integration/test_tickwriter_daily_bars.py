"""daily_bars on the real Cassandra when two writers update one instrument's bar: the Kafka
pipeline and a TickWriterService with its own connection, as two processes would be. Neither
reads the bar before writing it, and the stored bar is still the bar of every tick."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import grpc
from cassandra.cluster import Session

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.prices_pb2 import PriceUpdate, TickBatch
from financial.marketdata.v2.services_pb2 import WriteAck
from marketinfra.cassandra import connect
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import flush_or_fail
from tests.integration.tickwriter_support import (
    BASE_EVENT_NS,
    caught_up,
    flush_table,
    make_tick,
    produce_ticks,
    running,
    stored_bar,
    wait_for,
    writer_settings,
)
from tickwriter.adapters.repository import CassandraRowWriter
from tickwriter.daily_bars import DailyBar, fold, merge
from tickwriter.decode import decode_tick
from tickwriter.service import TickWriterServicer

SYMBOL = "BARS"


def _write_batch(writer: CassandraRowWriter, ticks: list[PriceUpdate]) -> WriteAck:
    async def call() -> WriteAck:
        server = grpc.aio.server()
        services_pb2_grpc.add_TickWriterServiceServicer_to_server(
            TickWriterServicer(writer), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_pb2_grpc.TickWriterServiceStub(channel)
                ack: WriteAck = await stub.WriteBatch(TickBatch(ticks=ticks), timeout=30)
                return ack
        finally:
            await server.stop(0)

    return asyncio.run(call())


def test_pipeline_and_service_writing_one_bar_in_turns_lose_nothing(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    ticks = [make_tick(SYMBOL, n) for n in range(1, 71)]
    ticks[29] = make_tick(SYMBOL, 30, last="250")  # the day's high, seen only by the pipeline
    topic, dlq = make_topic(1), make_topic(1)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    cluster, session = connect(cassandra_settings, use_keyspace=False)
    try:
        service_writer = CassandraRowWriter(session, cassandra_settings.keyspace, 8, 8)
        # 1. the service writes the first ticks (it opens the bar)
        assert _write_batch(service_writer, ticks[:10]).rows_written == 10
        # 2. the pipeline writes the middle of the day from Kafka, the high among it
        producer = make_producer(kafka_settings)
        produce_ticks(producer, topic, ticks[10:60])
        flush_or_fail(producer, kafka_settings.bootstrap_servers)
        lookup = make_consumer(kafka_settings, settings.group_id)
        try:
            with running(settings):
                wait_for(lambda: caught_up(lookup, topic, 1), 30, "the pipeline to checkpoint")
        finally:
            lookup.close()
        # 3. the service writes the last ticks: it knows nothing of the pipeline's high
        assert _write_batch(service_writer, ticks[60:]).rows_written == 10
    finally:
        cluster.shutdown()

    (expected,) = fold(decode_tick(tick.SerializeToString()) for tick in ticks).values()
    assert stored_bar(cassandra_session, SYMBOL) == (
        expected.open_nanos,
        250_000_000_000,
        expected.low_nanos,
        expected.close_nanos,
        expected.volume_nanos,
        expected.first_event_ns,
        expected.last_event_ns,
    )
    # make_tick(n) trades at 100.005 + n micros: the first tick opens and is the low
    assert (expected.open_nanos, expected.low_nanos, expected.close_nanos) == (
        100_005_001_000,
        100_005_001_000,
        100_005_070_000,
    )


# -- ties, on the real Cassandra --------------------------------------------------------------
# Upserts whose write timestamps are equal (high, low or volume of the same whole units; opens
# or closes at the same event time) are decided by Cassandra alone: on equal timestamps the
# cell with the larger bytes wins (compared unsigned). Each case is (price, event time offset,
# cumulative volume) per tick, as text, and the bar expected from it (open, high, low, close,
# volume), worked out by hand: the earliest tick opens and the latest closes (on the same
# event time, the larger price), high and low are the extremes, volume the largest.
TOP = "9223372036854775807.999999999"  # the largest value the wire carries
TIE_CASES: dict[str, tuple[list[tuple[str, int, str]], tuple[str, str, str, str, str]]] = {
    # the same units, only the nanos differ: high, low and volume all tie
    "units": (
        [("5.000000001", 1, "7.000000003"), ("5.000000002", 2, "7.000000001"),
         ("5.000000000", 3, "7.000000002")],
        ("5.000000001", "5.000000002", "5.000000000", "5.000000000", "7.000000003"),
    ),
    # two opens at one instant and two closes at another: never 101 units with .999999999
    "same_instant": (
        [("100.999999999", 1, "1"), ("101", 1, "2"), ("99.5", 2, "2"),
         ("99.000000001", 2, "2")],
        ("101", "101", "99.000000001", "99.5", "2"),
    ),
    "sub_micro": (
        [("0.00002288", 1, "1000.00000001"), ("0.00002289", 1, "1000.00000002"),
         ("0.000022885", 2, "0.5")],
        ("0.00002289", "0.00002289", "0.00002288", "0.000022885", "1000.00000002"),
    ),
    "top_of_range": (
        [(TOP, 1, TOP), ("9223372036854775807.999999998", 1, "9223372036854775807.999999998"),
         ("9223372036854775806.5", 2, "1")],
        (TOP, TOP, "9223372036854775806.5", "9223372036854775806.5", TOP),
    ),
    # low's write timestamp is CEILING - units = 0 here, high's is int64 max
    "top_low": (
        [("9223372036854775807.000000002", 1, "0"), ("9223372036854775807.000000001", 2, "0")],
        ("9223372036854775807.000000002", "9223372036854775807.000000002",
         "9223372036854775807.000000001", "9223372036854775807.000000001", "0"),
    ),
}  # fmt: skip
INT64_MAX = 2**63 - 1


def _nanos(text: str) -> int:
    return int(Decimal(text).scaleb(9))


def _bar(symbol: str, price: str, at: int, volume: str) -> DailyBar:
    """The one-tick bar the tick writer makes of a trade at ``price`` (a real tick row)."""
    row = decode_tick(
        make_tick(
            symbol, at, bid_nanos=0, ask_nanos=0, last=price, volume=volume
        ).SerializeToString()
    )
    (bar,) = fold([row]).values()
    return bar


def test_blind_upserts_that_tie_leave_the_merged_bar_in_every_order(
    cassandra_settings: CassandraSettings, cassandra_session: Session
) -> None:
    """Every order of every case's upserts, once with each upsert flushed to its own SSTable
    (the tie is decided when they are read together) and once all in the memtable (decided
    when written): the stored bar is the pure merge, and the hand-worked bar, to the nano."""
    writer = CassandraRowWriter(cassandra_session, cassandra_settings.keyspace, 8, 8)
    plans: dict[str, tuple[list[DailyBar], tuple[int, ...]]] = {}
    for case, (ticks, expected_text) in TIE_CASES.items():
        for variant in ("sstables", "memtable"):
            for number, order in enumerate(itertools.permutations(ticks)):
                symbol = f"TIE_{case}_{variant}_{number}"
                bars = [_bar(symbol, price, at, volume) for price, at, volume in order]
                first_ns = BASE_EVENT_NS + min(at for _, at, _ in ticks) * 1_000
                last_ns = BASE_EVENT_NS + max(at for _, at, _ in ticks) * 1_000
                expected = (*(_nanos(text) for text in expected_text), first_ns, last_ns)
                plans[symbol] = (bars, expected)
    steps = max(len(bars) for bars, _ in plans.values())
    for variant in ("sstables", "memtable"):
        for step in range(steps):
            writer.write((), [
                bars[step] for symbol, (bars, _) in plans.items()
                if variant in symbol and step < len(bars)
            ])  # fmt: skip
            if variant == "sstables":
                flush_table(cassandra_settings.keyspace, "daily_bars")

    for symbol, (bars, expected) in plans.items():
        merged = None
        for bar in bars:
            merged = merge(merged, bar)
        assert merged is not None
        pure = (
            merged.open_nanos, merged.high_nanos, merged.low_nanos, merged.close_nanos,
            merged.volume_nanos, merged.first_event_ns, merged.last_event_ns,
        )  # fmt: skip
        assert pure == expected, f"{symbol}: merge"
        assert stored_bar(cassandra_session, symbol) == expected, f"{symbol}: Cassandra"


def test_ties_really_are_equal_write_timestamps(
    cassandra_settings: CassandraSettings, cassandra_session: Session
) -> None:
    """The cases above tie in Cassandra, not by luck of differing timestamps: the winning
    cells carry the timestamps cql/005 defines (high and volume: whole units; low: int64 max -
    units; open: int64 max - first event ns; close: last event ns), equal for the tied ticks."""
    writer = CassandraRowWriter(cassandra_session, cassandra_settings.keyspace, 8, 8)
    ticks, _ = TIE_CASES["units"]
    writer.write((), [_bar("TIE_STAMPS", price, at, volume) for price, at, volume in ticks])
    row = cassandra_session.execute(
        "SELECT writetime(open) AS open, writetime(close) AS close, writetime(high) AS high, "
        "writetime(low) AS low, writetime(volume) AS volume FROM daily_bars "
        "WHERE exchange = 'NASDAQ' AND symbol = 'TIE_STAMPS' AND trade_date = '2025-11-22'"
    ).one()
    assert (row.open, row.close, row.high, row.low, row.volume) == (
        INT64_MAX - (BASE_EVENT_NS + 1_000),
        BASE_EVENT_NS + 3_000,
        5,
        INT64_MAX - 5,
        7,
    )

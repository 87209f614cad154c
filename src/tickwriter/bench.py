"""``mdgw bench tickwriter``: Kafka -> Cassandra throughput and produce-to-written latency,
beside a raw cassandra-driver loop writing the same rows with the same batching.

Runs against the servers of `mdgw infra up`, in a topic and keyspace of its own (dropped after).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.instruments import InstrumentKey
from marketcore.ticks import Tick
from marketinfra.cassandra import connect
from marketinfra.cql_decimal import CqlDecimal
from marketinfra.kafka import make_admin, make_consumer, make_producer
from marketinfra.schema import apply_schema
from marketinfra.tick_codec import tick_to_proto
from mdgw.machine import describe_machine
from tickwriter.app import build
from tickwriter.batching import chunk_by_partition
from tickwriter.config import TickWriterSettings
from tickwriter.daily_bars import DailyBar
from tickwriter.decode import decode_tick
from tickwriter.rows import Row, TickRow

_PARTITIONS = 8


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("tickwriter", help="Kafka -> Cassandra throughput and latency")
    parser.add_argument("--ticks", type=int, default=30_000, help="ticks for the throughput run")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rate", type=int, default=500, help="ticks/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.set_defaults(handler=run)


def _ticks(count: int, symbols: int, start_sequence: int = 1) -> list[PriceUpdate]:
    base_ns = time.time_ns()
    return [
        tick_to_proto(
            Tick(
                exchange="BENCH",
                symbol=f"SYM{n % symbols:04d}",
                bid_nanos=100_000_000_000 + n % 1000 * 1000,
                ask_nanos=100_010_000_000 + n % 1000 * 1000,
                last_nanos=100_005_000_000,
                event_time_ns=base_ns + n * 1000,
                received_time_ns=base_ns + n * 1000,
                feed_handler_id="bench",
                feed_sequence=n,
            )
        )
        for n in range(start_sequence, start_sequence + count)
    ]


def _raw_rows_per_s(
    session: Session, keyspace: str, rows: Sequence[TickRow], settings: TickWriterSettings
) -> float:
    """The ceiling: plain cassandra-driver writing the same rows (all the columns the tick
    writer writes, the seven exact values as ``decimal`` at scale 9) cut into the same
    one-partition UNLOGGED batches, with the same concurrency, in flushes of the same size. No
    Kafka, no decoding, no daily bars, no commits. The decimals are bound as ``CqlDecimal``,
    as the tick writer binds them, so both pay the same (fast) serializer and the ratio
    compares the rest; ``decimal.Decimal`` values would be the same bytes, only slower."""
    insert = session.prepare(
        f"INSERT INTO {keyspace}.tick_data (exchange, symbol, trade_date, tick_time, bid, "
        "ask, last, volume, bid_size, ask_size, last_size, event_time_ns, received_time_ns, "
        "feed_handler_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    insert.consistency_level = ConsistencyLevel.LOCAL_ONE
    started = time.perf_counter()
    for i in range(0, len(rows), settings.flush_max_records):
        flush = rows[i : i + settings.flush_max_records]
        batches = []
        for chunk in chunk_by_partition(flush, lambda row: row.partition, settings.rows_per_batch):
            batch = BatchStatement(
                batch_type=BatchType.UNLOGGED, consistency_level=ConsistencyLevel.LOCAL_ONE
            )
            for row in chunk:
                tick = row.tick
                batch.add(insert, (
                    row.exchange, row.symbol, row.trade_date, row.tick_time,
                    CqlDecimal(tick.bid_nanos), CqlDecimal(tick.ask_nanos),
                    CqlDecimal(tick.last_nanos), CqlDecimal(tick.volume_nanos),
                    CqlDecimal(tick.bid_size_nanos), CqlDecimal(tick.ask_size_nanos),
                    CqlDecimal(tick.last_size_nanos), tick.event_time_ns,
                    tick.received_time_ns, tick.feed_handler_id, row.payload,
                ))  # fmt: skip
            batches.append((batch, ()))
        execute_concurrent(
            session, batches, concurrency=settings.max_in_flight, raise_on_first_error=True
        )
    return len(rows) / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> int:
    suffix = uuid.uuid4().hex[:8]
    base = TickWriterSettings()
    topic = f"bench.ticks.{suffix}"
    keyspace = f"bench_{suffix}"
    cassandra = base.cassandra.model_copy(update={"keyspace": keyspace})
    settings = base.model_copy(
        update={
            "cassandra": cassandra,
            "ticks_topic": topic,
            "dlq_topic": f"{topic}.dlq",
            "group_id": f"bench-{suffix}",
            "consume": "ticks",
            "grpc_port": 0,
        }
    )
    admin = make_admin(base.kafka)
    for name in (topic, f"{topic}.dlq"):
        admin.create_topics([NewTopic(name, num_partitions=_PARTITIONS, replication_factor=1)])[
            name
        ].result(30)
    cluster, session = connect(cassandra, use_keyspace=False)
    apply_schema(session, cassandra)
    print(f"machine: {describe_machine()}")
    print(
        f"settings: flush {settings.flush_max_records} records / {settings.flush_max_wait_ms} ms, "
        f"{settings.rows_per_batch} rows per batch, {settings.max_in_flight} in flight, "
        f"checkpoint {settings.checkpoint_interval_ms} ms; {args.ticks} ticks over "
        f"{args.symbols} symbols, {_PARTITIONS} partitions"
    )
    try:
        throughput = _throughput(settings, session, keyspace, args)
        p50, p99, count = _latency(settings, args)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        cluster.shutdown()
        for future in admin.delete_topics([topic, f"{topic}.dlq"]).values():
            future.result(30)
    print(
        f"throughput  tickwriter {throughput.tickwriter:10,.0f} ticks/s  "
        "(Kafka -> Cassandra, committed, daily bars kept)"
    )
    print(
        f"            raw driver {throughput.raw:10,.0f} rows/s   (same rows and batching, "
        f"no Kafka; {throughput.raw_before:,.0f} before, {throughput.raw_after:,.0f} after)"
    )
    print(f"            ratio      {throughput.tickwriter / throughput.raw:10.0%}")
    print(
        f"latency     {count} ticks at {args.rate}/s: produce -> written "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    return 0


@dataclass(frozen=True, slots=True)
class Throughput:
    tickwriter: float  # ticks/s, Kafka -> Cassandra, committed
    raw_before: float  # rows/s of the raw driver loop just before the tick writer ran
    raw_after: float  # ... and just after: the machine is shared, so its load drifts

    @property
    def raw(self) -> float:
        return (self.raw_before + self.raw_after) / 2


def _throughput(
    settings: TickWriterSettings, session: Session, keyspace: str, args: argparse.Namespace
) -> Throughput:
    ticks = _ticks(args.ticks, args.symbols)
    producer = make_producer(settings.kafka)
    for tick in ticks:
        producer.produce(
            settings.ticks_topic,
            value=tick.SerializeToString(),
            key=InstrumentKey(tick.exchange, tick.symbol).kafka_key(),
        )
        producer.poll(0)
    producer.flush(60)
    rows = [decode_tick(t.SerializeToString()) for t in ticks]
    raw_before = _raw_rows_per_s(session, keyspace, rows, settings)
    app = build(settings)
    lookup = make_consumer(settings.kafka, settings.group_id)
    partitions = [TopicPartition(settings.ticks_topic, p) for p in range(_PARTITIONS)]
    ends = [lookup.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    worker = threading.Thread(target=app.pipeline.run, daemon=True)
    worker.start()
    try:
        # The clock starts once the group has assigned the partitions: joining is not writing.
        while app.pipeline.assigned_partitions < _PARTITIONS and worker.is_alive():
            time.sleep(0.001)
        started = time.perf_counter()
        while worker.is_alive():
            done = lookup.committed(partitions, timeout=10)
            if all(end == 0 or tp.offset == end for tp, end in zip(done, ends, strict=True)):
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        app.pipeline.stop()
        worker.join(30)
        app.cluster.shutdown()
        lookup.close()
    if app.pipeline.crashed is not None:
        raise RuntimeError("the tick writer crashed during the benchmark") from app.pipeline.crashed
    raw_after = _raw_rows_per_s(session, keyspace, rows, settings)
    return Throughput(args.ticks / elapsed, raw_before, raw_after)


def _latency(settings: TickWriterSettings, args: argparse.Namespace) -> tuple[float, float, int]:
    """Produce at a moderate rate and time each tick from produce() to its row's write ack."""
    settings = settings.model_copy(update={"group_id": f"{settings.group_id}-latency"})
    count = int(args.rate * args.seconds)
    ticks = _ticks(count, args.symbols, start_sequence=10_000_000)
    sent_at: dict[int, int] = {}
    written_at: dict[int, int] = {}
    app = build(settings)
    original_write = app.writer.write

    def timed_write(rows: Sequence[Row], bars: Collection[DailyBar] = ()) -> float:
        elapsed = original_write(rows, bars)
        now = time.perf_counter_ns()
        for row in rows:
            written_at[row.tick.feed_sequence] = now  # type: ignore[union-attr]  # ticks only here
        return elapsed

    app.writer.write = timed_write  # type: ignore[method-assign]  # instrumenting the benchmark only
    worker = threading.Thread(target=app.pipeline.run, daemon=True)
    worker.start()
    time.sleep(3)  # let the group settle before the clock starts
    producer = make_producer(settings.kafka)
    # warm up: metadata and the idempotent producer id, so the first ticks measure the writer
    producer.produce(
        settings.ticks_topic, value=_ticks(1, 1, start_sequence=1)[0].SerializeToString()
    )
    producer.flush(30)
    interval = 1 / args.rate
    next_send = time.perf_counter()
    for tick in ticks:
        delay = next_send - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent_at[tick.feed_sequence] = time.perf_counter_ns()
        producer.produce(
            settings.ticks_topic,
            value=tick.SerializeToString(),
            key=InstrumentKey(tick.exchange, tick.symbol).kafka_key(),
        )
        producer.poll(0)
        next_send += interval
    producer.flush(30)
    deadline = time.monotonic() + 30
    while len(written_at) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    app.pipeline.stop()
    worker.join(30)
    app.cluster.shutdown()
    latencies_ms = sorted(
        (written_at[seq] - sent) / 1e6 for seq, sent in sent_at.items() if seq in written_at
    )
    if not latencies_ms:
        return float("nan"), float("nan"), 0
    p99 = latencies_ms[min(len(latencies_ms) - 1, int(len(latencies_ms) * 0.99))]
    return statistics.median(latencies_ms), p99, len(latencies_ms)

"""daily_bars on the real Cassandra when two writers update one instrument's bar: the Kafka
pipeline and a TickWriterService with its own connection, as two processes would be. Neither
reads the bar before writing it, and the stored bar is still the bar of every tick."""

from __future__ import annotations

import asyncio

import grpc
from cassandra.cluster import Session

from financial.marketdata.v1 import services_pb2_grpc
from financial.marketdata.v1.prices_pb2 import PriceUpdate, TickBatch
from financial.marketdata.v1.services_pb2 import WriteAck
from marketinfra.cassandra import connect
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import flush_or_fail
from tests.integration.tickwriter_support import (
    caught_up,
    make_tick,
    produce_ticks,
    running,
    wait_for,
    writer_settings,
)
from tickwriter.adapters.repository import CassandraRowWriter
from tickwriter.daily_bars import fold
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
    ticks[29].last_micros = 250_000_000  # the day's high, seen only by the pipeline
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
    stored = cassandra_session.execute(
        "SELECT open_micros, high_micros, low_micros, close_micros, volume_micros, "
        "first_event_ns, last_event_ns FROM daily_bars "
        "WHERE exchange = 'NASDAQ' AND symbol = %s AND trade_date = '2025-11-22'",
        (SYMBOL,),
    ).one()
    assert tuple(stored) == (
        expected.open_micros,
        250_000_000,
        expected.low_micros,
        expected.close_micros,
        expected.volume_micros,
        expected.first_event_ns,
        expected.last_event_ns,
    )
    assert (expected.open_micros, expected.close_micros) == (100_005_001, 100_005_070)

"""The tick writer against real Kafka and Cassandra: exactly N rows for N ticks, replays and
dead letters. Outage and crash tests are in test_tickwriter_failures.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cassandra.cluster import Session
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from financial.marketdata.v2.common_pb2 import OrderStatus, Side
from financial.marketdata.v2.orders_pb2 import ExecutionReport, OrderStatusUpdate
from marketinfra.kafka import make_admin, make_consumer, make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import consume_or_fail, flush_or_fail
from tests.integration.tickwriter_support import (
    BASE_EVENT_NS,
    caught_up,
    check_exact_row,
    committed,
    end_offsets,
    exact_tick,
    make_tick,
    produce_ticks,
    row_sequences,
    running,
    stored_bar,
    wait_for,
    writer_settings,
)
from tests.support import proto
from tickwriter.adapters.dead_letters import message_headers
from tickwriter.adapters.replay import replay_dead_letters, reset_group_to_time
from tickwriter.errors import TickWriterError

SYMBOLS = ("PIPE_A", "PIPE_B", "PIPE_C")
PER_SYMBOL = 150


def test_n_ticks_give_exactly_n_rows_in_order_and_a_replay_adds_none(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    topic, dlq = make_topic(4), make_topic(1)
    producer = make_producer(kafka_settings)
    ticks = [make_tick(symbol, n) for n in range(1, PER_SYMBOL + 1) for symbol in SYMBOLS]
    produce_ticks(producer, topic, ticks)
    flush_or_fail(producer, kafka_settings.bootstrap_servers)

    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)

    def all_written() -> bool:
        return all(len(row_sequences(cassandra_session, s)) == PER_SYMBOL for s in SYMBOLS)

    lookup = make_consumer(kafka_settings, settings.group_id)
    try:
        with running(settings):
            wait_for(all_written, 60, f"{len(ticks)} rows")
            wait_for(lambda: caught_up(lookup, topic, 4), 30, "offsets committed to the end")
            with pytest.raises(TickWriterError, match="active members: stop its tick writers"):
                reset_group_to_time(
                    make_admin(kafka_settings), lookup, settings.group_id, [topic],
                    datetime(2000, 1, 1, tzinfo=UTC),
                )  # fmt: skip
        for symbol in SYMBOLS:
            assert row_sequences(cassandra_session, symbol) == list(range(1, PER_SYMBOL + 1))
        assert _daily_bar(cassandra_session, "PIPE_A") == EXPECTED_BAR

        # Replay the whole topic with the replay tool: the same rows, no new ones.
        resets = reset_group_to_time(
            make_admin(kafka_settings),
            lookup,
            settings.group_id,
            [topic],
            datetime(2000, 1, 1, tzinfo=UTC),
        )
        assert {reset.new_offset for reset in resets} == {0}
        assert set(committed(lookup, topic, 4).values()) == {0}
        with running(settings):
            wait_for(lambda: caught_up(lookup, topic, 4), 60, "the replay to reach the end")
        for symbol in SYMBOLS:
            assert row_sequences(cassandra_session, symbol) == list(range(1, PER_SYMBOL + 1))
        assert _daily_bar(cassandra_session, "PIPE_A") == EXPECTED_BAR  # a replay changes nothing
    finally:
        lookup.close()


# make_tick(n) trades at 100.005000 + n micros: open and low at n=1, close and high at
# n=PER_SYMBOL. daily_bars cells are (units, nanos), low's nanos bit-inverted (cql/005).
EXPECTED_BAR = (
    (100, 5_001_000),
    (100, 5_000_000 + PER_SYMBOL * 1_000),
    (100, ~5_001_000),
    (100, 5_000_000 + PER_SYMBOL * 1_000),
)


def _daily_bar(session: Session, symbol: str) -> tuple[object, ...]:
    row = session.execute(
        "SELECT open, high, low, close FROM daily_bars "
        "WHERE exchange = 'NASDAQ' AND symbol = %s AND trade_date = '2025-11-22'",
        (symbol,),
    ).one()
    return (row.open, row.high, row.low, row.close)


def test_bad_records_go_to_the_dlq_with_their_bytes_and_the_rest_is_written(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    topic, dlq = make_topic(1), make_topic(1)
    garbage = b"\xff\x01not a protobuf"
    crossed = make_tick("DLQ_SYM", 2, bid_nanos=100_010_002_001)  # above its ask
    producer = make_producer(kafka_settings)
    producer.produce(
        topic, value=make_tick("DLQ_SYM", 1).SerializeToString(), key=b"NASDAQ|DLQ_SYM"
    )
    producer.produce(topic, value=garbage, key=b"NASDAQ|DLQ_SYM", headers=[("trace", b"abc")])
    producer.produce(topic, value=crossed.SerializeToString(), key=b"NASDAQ|DLQ_SYM")
    producer.produce(
        topic, value=make_tick("DLQ_SYM", 3).SerializeToString(), key=b"NASDAQ|DLQ_SYM"
    )
    flush_or_fail(producer, kafka_settings.bootstrap_servers)

    with running(writer_settings(kafka_settings, cassandra_settings, topic, dlq)):
        wait_for(
            lambda: row_sequences(cassandra_session, "DLQ_SYM") == [1, 3], 30, "the two good rows"
        )
        reader = make_consumer(kafka_settings, f"{dlq}.reader")
        reader.assign([TopicPartition(dlq, 0, OFFSET_BEGINNING)])
        letters = consume_or_fail(reader, 2, kafka_settings.bootstrap_servers)
        reader.close()

    first, second = letters
    assert first.value() == garbage
    assert first.key() == b"NASDAQ|DLQ_SYM"
    headers = dict(message_headers(first))
    assert headers["trace"] == b"abc"  # the original headers travel along
    assert headers["dlq.reason"] == b"undecodable"
    assert headers["dlq.topic"] == topic.encode()
    assert headers["dlq.partition"] == b"0"
    assert headers["dlq.offset"] == b"1"
    assert int(headers["dlq.time_ns"]) > 0
    assert b"PriceUpdate" in headers["dlq.error"]
    assert second.value() == crossed.SerializeToString()
    assert dict(message_headers(second))["dlq.reason"] == b"invalid_tick:crossed_quote"

    # `mdgw dlq replay` sends them back to where they came from, without the dlq.* headers.
    before = end_offsets(make_consumer(kafka_settings, "x"), topic, 1)[0]
    result = replay_dead_letters(
        make_consumer(kafka_settings, f"{dlq}.replayer"),
        make_producer(kafka_settings),
        dlq,
        limit=10,
    )
    assert result.replayed == 2
    assert result.by_topic == {topic: 2}
    back = make_consumer(kafka_settings, f"{topic}.check")
    back.assign([TopicPartition(topic, 0, before)])
    returned = consume_or_fail(back, 2, kafka_settings.bootstrap_servers)
    back.close()
    assert [m.value() for m in returned] == [garbage, crossed.SerializeToString()]
    assert dict(message_headers(returned[0])) == {"trace": b"abc"}
    again = replay_dead_letters(
        make_consumer(kafka_settings, f"{dlq}.replayer"), make_producer(kafka_settings), dlq, 10
    )
    assert again.replayed == 0, "a second run sends nothing twice"


def test_trades_and_order_events_are_stored_once_even_when_sent_twice(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    trades_topic, orders_topic, dlq = make_topic(2), make_topic(2), make_topic(1)
    fills = [
        proto(
            ExecutionReport,
            execution_id=f"exec-{n}",
            order_id="ord-1",
            account_id="ACC-TW",
            symbol="AAPL",
            exchange="NASDAQ",
            side=Side.SIDE_BUY,
            fill_price_nanos=189_500_000_000,
            fill_quantity_nanos=10_000_000_000,
            execution_time_ns=BASE_EVENT_NS + n,
            venue="SIM",
        )
        for n in (1, 2)
    ]
    events = [
        OrderStatusUpdate(
            order_id="ord-1",
            status=status,
            event_sequence=sequence,
            account_id="ACC-TW",
            event_time_ns=BASE_EVENT_NS + sequence,
        )
        for sequence, status in enumerate(
            (
                OrderStatus.ORDER_STATUS_NEW,
                OrderStatus.ORDER_STATUS_PARTIALLY_FILLED,
                OrderStatus.ORDER_STATUS_FILLED,
            ),
            start=1,
        )
    ]
    producer = make_producer(kafka_settings)
    for fill in [*fills, fills[0]]:  # the first fill is delivered twice
        producer.produce(trades_topic, value=fill.SerializeToString(), key=b"ACC-TW")
    for event in [*events, events[1]]:
        producer.produce(orders_topic, value=event.SerializeToString(), key=b"ord-1")
    flush_or_fail(producer, kafka_settings.bootstrap_servers)

    settings = writer_settings(
        kafka_settings, cassandra_settings, "unused", dlq,
        trades_topic=trades_topic, orders_topic=orders_topic, consume="trades,orders",
    )  # fmt: skip

    def stored() -> tuple[list[str], list[int]]:
        trades = cassandra_session.execute(
            "SELECT execution_id FROM trade_executions "
            "WHERE account_id = 'ACC-TW' AND trade_date = '2025-11-22'"
        )
        history = cassandra_session.execute(
            "SELECT event_sequence, event_type FROM event_store "
            "WHERE entity_type = 'order' AND entity_id = 'ACC-TW/ord-1'"  # ids are per account
        )
        return sorted(row.execution_id for row in trades), [row.event_sequence for row in history]

    lookup = make_consumer(kafka_settings, settings.group_id)
    with running(settings):
        wait_for(
            lambda: caught_up(lookup, trades_topic, 2) and caught_up(lookup, orders_topic, 2),
            30,
            "both topics",
        )
    lookup.close()
    assert stored() == (["exec-1", "exec-2"], [1, 2, 3])


def test_rebalances_between_two_writers_lose_nothing(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    """A second writer joins mid-stream (partitions move to it), then the first leaves (they
    move back): every tick is stored once and the group ends committed to the end."""
    topic, dlq = make_topic(4), make_topic(1)
    symbols = [f"REB_{n}" for n in range(8)]
    producer = make_producer(kafka_settings)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    sent = 0

    def produce_round(count: int) -> None:
        nonlocal sent
        ticks = [make_tick(s, n) for n in range(sent + 1, sent + count + 1) for s in symbols]
        produce_ticks(producer, topic, ticks)
        flush_or_fail(producer, kafka_settings.bootstrap_servers)
        sent += count

    try:
        with running(settings) as first:
            produce_round(50)
            wait_for(lambda: first.pipeline.flushes > 0, 30, "the first writer to write")
            with running(settings) as second:
                wait_for(lambda: second.pipeline.assigned_partitions > 0, 30, "the rebalance")
                produce_round(50)
                wait_for(lambda: second.pipeline.flushes > 0, 30, "the second writer to write")
                assert first.pipeline.assigned_partitions + second.pipeline.assigned_partitions == 4
            produce_round(50)  # the second writer left: all partitions are the first's again
            wait_for(lambda: caught_up(lookup, topic, 4), 60, "the group to reach the end")
    finally:
        lookup.close()
    for symbol in symbols:
        assert row_sequences(cassandra_session, symbol) == list(range(1, sent + 1))


def test_sub_micro_prices_sizes_and_a_huge_volume_are_stored_exactly(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    topic, dlq = make_topic(1), make_topic(1)
    sent = exact_tick("ADA/XBT")
    producer = make_producer(kafka_settings)
    produce_ticks(producer, topic, [sent])
    flush_or_fail(producer, kafka_settings.bootstrap_servers)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    try:
        with running(settings):
            wait_for(lambda: caught_up(lookup, topic, 1), 30, "the tick to be written")
    finally:
        lookup.close()
    check_exact_row(cassandra_session, "ADA/XBT", sent)
    # its day bar: the last trade 0.000022881 and the volume, to the nano
    bar = stored_bar(cassandra_session, "ADA/XBT", exchange="KRAKEN")
    assert bar is not None
    assert bar[:5] == (22_881, 22_881, 22_881, 22_881, 999_999_999_999_999_123_456_789)


def _with_malformed(symbol: str, sequence: int, units: int, nanos: int) -> bytes:
    """A tick whose bid is the Decimal (units, nanos) as given, canonical or not (written by
    hand: the helpers only write canonical ones)."""
    tick = make_tick(symbol, sequence, bid_nanos=0)
    tick.bid.units, tick.bid.nanos = units, nanos
    return tick.SerializeToString()


def test_a_non_canonical_decimal_goes_to_the_dlq_as_malformed_decimal(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    topic, dlq = make_topic(1), make_topic(1)
    too_many_nanos = _with_malformed("MAL_SYM", 2, 0, 1_000_000_000)
    mixed_signs = _with_malformed("MAL_SYM", 3, 1, -5)
    producer = make_producer(kafka_settings)
    for value in (
        make_tick("MAL_SYM", 1).SerializeToString(), too_many_nanos, mixed_signs,
        make_tick("MAL_SYM", 4).SerializeToString(),
    ):  # fmt: skip
        producer.produce(topic, value=value, key=b"NASDAQ|MAL_SYM")
    flush_or_fail(producer, kafka_settings.bootstrap_servers)

    with running(writer_settings(kafka_settings, cassandra_settings, topic, dlq)):
        wait_for(lambda: row_sequences(cassandra_session, "MAL_SYM") == [1, 4], 30, "the good rows")
        reader = make_consumer(kafka_settings, f"{dlq}.reader")
        reader.assign([TopicPartition(dlq, 0, OFFSET_BEGINNING)])
        letters = consume_or_fail(reader, 2, kafka_settings.bootstrap_servers)
        reader.close()
    assert [letter.value() for letter in letters] == [too_many_nanos, mixed_signs]
    for letter, offset in zip(letters, (b"1", b"2"), strict=True):
        headers = dict(message_headers(letter))
        assert headers["dlq.reason"] == b"malformed_decimal"
        assert headers["dlq.offset"] == offset
    assert b"units=0 nanos=1000000000" in dict(message_headers(letters[0]))["dlq.error"]
    assert b"units=1 nanos=-5" in dict(message_headers(letters[1]))["dlq.error"]

"""Poison records against the real Kafka and Cassandra: a record the writer cannot store for a
reason no retry fixes goes to the DLQ with its original bytes and the reason, the writer keeps
running, and every good record around it is stored exactly once (offsets committed to the end).
"""

from __future__ import annotations

import pytest
from cassandra.cluster import Session
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from marketinfra.tick_codec import tick_from_proto
from tests.integration.support import consume_or_fail, flush_or_fail
from tests.integration.tickwriter_support import (
    caught_up,
    end_offsets,
    make_tick,
    row_sequences,
    running,
    wait_for,
    writer_settings,
)
from tickwriter import app as tickwriter_app
from tickwriter.adapters.dead_letters import message_headers
from tickwriter.rows import Row, tick_row


def _produce(kafka_settings: KafkaSettings, topic: str, symbol: str, values: list[bytes]) -> None:
    producer = make_producer(kafka_settings)
    for value in values:
        producer.produce(topic, value=value, key=f"NASDAQ|{symbol}".encode())
    flush_or_fail(producer, kafka_settings.bootstrap_servers)


def _letters(kafka_settings: KafkaSettings, dlq: str, count: int) -> list[Message]:
    reader = make_consumer(kafka_settings, f"{dlq}.reader")
    reader.assign([TopicPartition(dlq, 0, OFFSET_BEGINNING)])
    try:
        return consume_or_fail(reader, count, kafka_settings.bootstrap_servers)
    finally:
        reader.close()


def _good(symbol: str, sequence: int) -> bytes:
    return make_tick(symbol, sequence).SerializeToString()


def _with_unknown_field(tick: PriceUpdate, size: int) -> bytes:
    """``tick``'s bytes plus an unknown length-delimited field (number 1000) of ``size`` bytes:
    still a valid PriceUpdate (a newer schema's field), just a big one."""
    tag = (1000 << 3) | 2
    return tick.SerializeToString() + _varint(tag) + _varint(size) + b"x" * size


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


_OVERSIZED = {
    # issue 15's record: too big for a tick before its symbol is even looked at
    "symbol-70000": (
        lambda symbol: make_tick("S" * 70_000, 2).SerializeToString(),
        b"oversized_record",
        b"bytes; at most 16384 for a PriceUpdate",
    ),
    "symbol-65": (
        lambda symbol: make_tick("S" * 65, 2).SerializeToString(),
        b"invalid_tick:oversized_field",
        b"symbol is 65 characters; at most 64",
    ),
    "exchange-200": (
        lambda symbol: make_tick(symbol, 2, exchange="X" * 200).SerializeToString(),
        b"invalid_tick:oversized_field",
        b"exchange is 200 characters",
    ),
    "venue_symbol-65": (
        lambda symbol: make_tick(symbol, 2, venue_symbol="v" * 65).SerializeToString(),
        b"invalid_tick:oversized_field",
        b"venue_symbol is 65 characters",
    ),
    "feed_handler_id-300": (
        lambda symbol: make_tick(symbol, 2, feed_handler_id="f" * 300).SerializeToString(),
        b"invalid_tick:oversized_field",
        b"feed_handler_id is 300 characters",
    ),
    "record-200KB": (
        lambda symbol: _with_unknown_field(make_tick(symbol, 2), 200_000),
        b"oversized_record",
        b"bytes; at most",
    ),
}


@pytest.mark.parametrize("case", list(_OVERSIZED))
def test_an_oversized_tick_goes_to_the_dlq_and_the_writer_keeps_writing(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
    case: str,
) -> None:
    make_poison, reason, error_part = _OVERSIZED[case]
    symbol = f"OVERSIZED_{list(_OVERSIZED).index(case)}"
    poison = make_poison(symbol)
    topic, dlq = make_topic(1), make_topic(1)
    _produce(kafka_settings, topic, symbol, [_good(symbol, 1), poison, _good(symbol, 3)])
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    try:
        with running(settings) as app:
            wait_for(lambda: row_sequences(cassandra_session, symbol) == [1, 3], 30, "good rows")
            (letter,) = _letters(kafka_settings, dlq, 1)
            # still running: a record produced after the poison is written too
            _produce(kafka_settings, topic, symbol, [_good(symbol, 4)])
            wait_for(
                lambda: row_sequences(cassandra_session, symbol) == [1, 3, 4], 30, "a later row"
            )
            wait_for(lambda: caught_up(lookup, topic, 1), 30, "offsets committed to the end")
            assert app.pipeline.crashed is None
    finally:
        lookup.close()
    assert letter.value() == poison
    headers = dict(message_headers(letter))
    assert headers["dlq.reason"] == reason
    assert headers["dlq.offset"] == b"1"
    assert error_part in headers["dlq.error"]
    assert len(headers["dlq.error"]) < 1000, "the reason does not echo the huge value"
    assert row_sequences(cassandra_session, symbol) == [1, 3, 4]  # exactly once each


def _unchecked_decode(payload: bytes | None) -> Row:
    """A decoder without the limits and rules: a record that slips past validation (a limit
    the decoder does not know of yet) reaches Cassandra's driver and Cassandra."""
    return tick_row(tick_from_proto(PriceUpdate.FromString(payload or b"")), payload or b"")


_REFUSED_AT_WRITE = {
    # the driver cannot pack a key part over 64 KiB: struct.error, before anything is sent
    "key-part-70000": ("S" * 70_000, b"write_refused:serialization", b"'H' format requires"),
    # each part packs, the whole key does not fit: Cassandra answers InvalidRequest
    "key-65555": ("K" * 65_530, b"write_refused:invalid_request", b"InvalidRequest"),
}


@pytest.mark.parametrize("case", list(_REFUSED_AT_WRITE))
def test_a_row_cassandra_cannot_take_goes_to_the_dlq_and_the_rest_of_its_batch_is_written(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    monkeypatch.setitem(tickwriter_app._DECODERS, "ticks", _unchecked_decode)  # type: ignore[index]  # a dict at run time
    bad_symbol, reason, error_part = _REFUSED_AT_WRITE[case]
    symbol = f"REFUSED_{list(_REFUSED_AT_WRITE).index(case)}"
    poison = make_tick(bad_symbol, 3).SerializeToString()
    topic, dlq = make_topic(1), make_topic(1)
    # one poll takes them all: the poison is in the same flush as the good ones around it
    good = [_good(symbol, n) for n in (1, 2, 4, 5)]
    _produce(kafka_settings, topic, symbol, [*good[:2], poison, *good[2:]])
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    try:
        with running(settings) as app:
            wait_for(
                lambda: row_sequences(cassandra_session, symbol) == [1, 2, 4, 5], 30, "good rows"
            )
            (letter,) = _letters(kafka_settings, dlq, 1)
            _produce(kafka_settings, topic, symbol, [_good(symbol, 6)])
            wait_for(
                lambda: row_sequences(cassandra_session, symbol) == [1, 2, 4, 5, 6], 30, "later"
            )
            wait_for(lambda: caught_up(lookup, topic, 1), 30, "offsets committed to the end")
            assert app.pipeline.crashed is None
    finally:
        lookup.close()
    assert letter.value() == poison
    headers = dict(message_headers(letter))
    assert headers["dlq.reason"] == reason
    assert headers["dlq.offset"] == b"2"
    assert error_part in headers["dlq.error"]
    assert len(headers["dlq.error"]) <= 1000
    assert row_sequences(cassandra_session, symbol) == [1, 2, 4, 5, 6]


def test_big_ticks_under_the_record_limit_are_all_stored_eight_to_a_batch(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic,
) -> None:
    """Ticks of 10 KB (a newer schema's big field; the limit is 16 KiB) of one instrument make
    80 KB batches, over the server's batch_size_fail_threshold of 50 KiB; a batch of one
    partition is one mutation, which that threshold does not refuse: all are stored."""
    symbol = "BIG_BATCH"
    topic, dlq = make_topic(1), make_topic(1)
    values = [_with_unknown_field(make_tick(symbol, n), 10_000) for n in range(1, 17)]
    _produce(kafka_settings, topic, symbol, values)
    settings = writer_settings(kafka_settings, cassandra_settings, topic, dlq)
    lookup = make_consumer(kafka_settings, settings.group_id)
    try:
        with running(settings) as app:
            wait_for(
                lambda: row_sequences(cassandra_session, symbol) == list(range(1, 17)),
                60,
                "all 16 rows",
            )
            wait_for(lambda: caught_up(lookup, topic, 1), 30, "offsets committed to the end")
            assert app.pipeline.crashed is None
    finally:
        lookup.close()
    reader = make_consumer(kafka_settings, f"{dlq}.reader")
    try:
        assert end_offsets(reader, dlq, 1) == {0: 0}, "nothing dead-lettered"
    finally:
        reader.close()

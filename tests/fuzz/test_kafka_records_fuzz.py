"""Every Kafka consumer's decode, fed adversarial records: random bytes, valid protobufs with
adversarial values (huge strings, Decimals with nanos out of range, units of -2^63, negative
sizes, zero and negative times, unknown enum numbers) and truncated or corrupted records. Each
must give its value or its documented rejection (a DLQ reason, a skip reason), never an
unhandled exception, so one record never stops a consumer.

- the tick writer (``tickwriter.decode``): ticks.raw.v2, trades.executed.v2, orders.lifecycle.v2
  -> a row, or RecordRejected (the record goes to the DLQ with its reason); a row keeps the
  limits that Cassandra needs (key parts far under 64 KiB, times in int64)
- the gateway's feed (``gateway.service.convert.decode_update``): a FeedUpdate or a reason
- the gateway's trading-log recovery (``order_from_status``, ``position_from_proto``): the
  order or position, or Malformed (DecodeError for bytes that are no message: skipped)
- ``mdgw migrate`` (v1 -> v2): a v2 message, or DecodeError (counted, skipped)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import given

from financial.marketdata.v1 import orders_pb2 as v1
from financial.marketdata.v2.orders_pb2 import ExecutionReport, OrderStatusUpdate, PositionUpdate
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from gateway.core.updates import FeedUpdate
from gateway.service.convert import decode_update
from gateway.trading.convert import Malformed, order_from_status, position_from_proto
from marketcore.ticks import MAX_FEED_HANDLER_ID_CHARS, MAX_IDENTIFIER_CHARS, check_tick
from marketcore.trading.model import Order
from marketcore.trading.positions import Position
from mdgw.migration_v1 import execution_v2, order_status_v2, position_v2
from tests.fuzz.messages import INT64, record_bytes
from tests.fuzz.support import tried
from tickwriter.decode import (
    MAX_RECORD_BYTES,
    MAX_TRADING_STRING_CHARS,
    decode_order_event,
    decode_tick,
    decode_trade,
)
from tickwriter.errors import RecordRejected
from tickwriter.rows import OrderEventRow, Row, TickRow, TradeRow

_KEY_PART_BYTES = 65_535  # what Cassandra's driver can encode for one part of a key


def _key_parts_fit(*parts: str) -> bool:
    return all(len(part.encode()) < _KEY_PART_BYTES // 4 for part in parts)


def _check_row(row: Row, payload: bytes) -> None:
    assert row.payload == payload  # the original bytes, stored as they came
    if isinstance(row, TickRow):
        tick = row.tick
        assert check_tick(tick) is None
        assert len(row.symbol) <= MAX_IDENTIFIER_CHARS
        assert len(row.exchange) <= MAX_IDENTIFIER_CHARS
        assert len(tick.feed_handler_id) <= MAX_FEED_HANDLER_ID_CHARS
        assert INT64[0] <= tick.event_time_ns <= INT64[1]
        assert INT64[0] <= tick.received_time_ns <= INT64[1]
        assert row.tick_time.version == 1
        assert len(row.trade_date) == 10
    elif isinstance(row, TradeRow):
        assert _key_parts_fit(row.account_id, row.trade_date, row.execution_id)
        assert row.quantity_nanos > 0
        assert len(row.trade_date) == 10
    else:
        assert isinstance(row, OrderEventRow)
        assert _key_parts_fit(row.entity_type, row.entity_id)
        assert row.event_sequence > 0


_TICKWRITER: dict[str, tuple[type[Message], Callable[[bytes | None], Row]]] = {
    "ticks": (PriceUpdate, decode_tick),
    "trades": (ExecutionReport, decode_trade),
    "orders": (OrderStatusUpdate, decode_order_event),
}


def _tickwriter_case(kind: str) -> Any:
    message_type, decode = _TICKWRITER[kind]

    @given(payload=record_bytes(message_type))
    def case(payload: bytes) -> None:
        tried(f"kafka:tickwriter:{kind}")
        try:
            row = decode(payload)
        except RecordRejected as rejected:
            problem = rejected  # the DLQ reason
        else:
            _check_row(row, payload)
            return
        assert problem.reason
        assert len(str(problem)) < 2_000, "a reason never echoes a huge value"

    return case


test_tick_writer_decodes_any_tick_record_or_dead_letters_it = _tickwriter_case("ticks")
test_tick_writer_decodes_any_trade_record_or_dead_letters_it = _tickwriter_case("trades")
test_tick_writer_decodes_any_order_record_or_dead_letters_it = _tickwriter_case("orders")


@pytest.mark.parametrize("kind", list(_TICKWRITER))
def test_oversized_trading_records_and_strings_are_dead_lettered(kind: str) -> None:
    message_type, decode = _TICKWRITER[kind]
    too_big = b"\x0a" + (MAX_RECORD_BYTES).to_bytes(4, "little")  # any bytes over the limit
    with pytest.raises(RecordRejected, match="oversized_record"):
        decode(too_big + b"x" * (MAX_RECORD_BYTES + 16_000))
    if kind == "ticks":
        return
    long_string = "o" * (MAX_TRADING_STRING_CHARS + 1)
    message = message_type(order_id=long_string)  # type: ignore[call-arg]  # both have order_id
    with pytest.raises(RecordRejected, match="oversized_field") as caught:
        decode(message.SerializeToString())
    assert f"order_id is {len(long_string)} characters" in str(caught.value)


@given(payload=record_bytes(PriceUpdate))
def test_the_gateway_feed_decodes_any_record_or_names_why_not(payload: bytes) -> None:
    tried("kafka:gateway:feed")
    outcome = decode_update(payload)
    if isinstance(outcome, str):
        assert outcome  # the reason, a bounded metric label
        assert len(outcome) < 64
        return
    assert isinstance(outcome, FeedUpdate)
    assert check_tick(outcome.tick) is None


@given(payload=record_bytes(OrderStatusUpdate))
def test_trading_log_recovery_restores_any_order_record_or_skips_it(payload: bytes) -> None:
    tried("kafka:gateway:recovery")
    try:
        update = OrderStatusUpdate.FromString(payload)
    except DecodeError:
        return  # counted as skipped by recovery
    order = order_from_status(update)
    assert isinstance(order, Order | Malformed)


@given(payload=record_bytes(PositionUpdate))
def test_trading_log_recovery_restores_any_position_record_or_skips_it(payload: bytes) -> None:
    tried("kafka:gateway:recovery")
    try:
        update = PositionUpdate.FromString(payload)
    except DecodeError:
        return
    position = position_from_proto(update)
    assert isinstance(position, Position | Malformed)


_MIGRATIONS: dict[str, tuple[type[Message], Callable[[Any], Message]]] = {
    "orders": (v1.OrderStatusUpdate, order_status_v2),
    "trades": (v1.ExecutionReport, execution_v2),
    "positions": (v1.PositionUpdate, position_v2),
}


def _migration_case(kind: str) -> Any:
    message_type, convert = _MIGRATIONS[kind]

    @given(payload=record_bytes(message_type))
    def case(payload: bytes) -> None:
        tried(f"kafka:migrate:{kind}")
        try:
            old = message_type.FromString(payload)
        except DecodeError:
            return  # `mdgw migrate` counts it and goes on
        converted = convert(old)
        type(converted).FromString(converted.SerializeToString())  # a valid v2 record

    return case


test_migration_converts_any_v1_order_record = _migration_case("orders")
test_migration_converts_any_v1_trade_record = _migration_case("trades")
test_migration_converts_any_v1_position_record = _migration_case("positions")


def test_an_enum_number_no_version_defines_is_dead_lettered_not_a_crash() -> None:
    """Found by this suite: ``OrderStatus.Name(-2**31)`` raised ValueError out of the decoder."""
    update = OrderStatusUpdate(order_id="o-1", event_sequence=1, status=-(2**31))  # type: ignore[arg-type]  # open enum
    with pytest.raises(RecordRejected, match="invalid_order_event: status -2147483648"):
        decode_order_event(update.SerializeToString())
    report = ExecutionReport(
        execution_id="e-1",
        account_id="a",
        symbol="AAPL",
        execution_time_ns=1,
        side=99,  # type: ignore[arg-type]  # open enum
    )
    report.fill_quantity.units = 1
    with pytest.raises(RecordRejected, match="invalid_trade: side 99"):
        decode_trade(report.SerializeToString())

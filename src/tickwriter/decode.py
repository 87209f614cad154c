"""Kafka record bytes -> rows, or a RecordRejected saying why (the record then goes to the DLQ).

Proto messages stop here: what leaves this module is domain rows. Limits are checked here,
before anything is written: a record over its size limit (``oversized_record``), a tick whose
identifiers are too long (``invalid_tick:oversized_field``, the ``marketcore.ticks`` limits),
a trade or order event whose strings are too long (``oversized_field``). Reasons never echo
the offending value, only its name and length.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import DecodeError, Message

from financial.marketdata.v2.common_pb2 import OrderStatus, Side
from financial.marketdata.v2.orders_pb2 import ExecutionReport, OrderStatusUpdate
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.ticks import check_tick
from marketcore.trading_calendar import trade_date_text
from marketinfra.decimal_codec import MalformedDecimalError, decimal_nanos
from marketinfra.tick_codec import tick_from_proto
from tickwriter.errors import RecordRejected
from tickwriter.rows import OrderEventRow, TickRow, TradeRow, tick_row, utc_datetime

MessageT = TypeVar("MessageT", bound=Message)

# A tick is ~100-600 bytes; 16 KiB leaves room for fields of a newer schema. Trades and order
# events carry the request and free text, and stay well under Kafka's default 1 MB.
MAX_TICK_RECORD_BYTES = 16 * 1024
MAX_RECORD_BYTES = 256 * 1024
# Every string of a trade or order event (ids, symbol, text): a key part must stay far below
# the 64 KiB Cassandra can hold, and order ids are capped at 64 by the gateway already.
MAX_TRADING_STRING_CHARS = 1024


def validated_tick_row(update: PriceUpdate, payload: bytes) -> TickRow:
    """The row of ``update`` (whose bytes are ``payload``), or RecordRejected: the Kafka path
    and TickWriterService share these limits and rules (a string over its limit is named
    first: the clearer answer for a caller)."""
    try:
        tick = tick_from_proto(update)
    except MalformedDecimalError as exc:
        raise RecordRejected("malformed_decimal", str(exc)) from exc
    rejection = check_tick(tick)
    if rejection is not None:
        raise RecordRejected(f"invalid_tick:{rejection.problem}", rejection.detail)
    if len(payload) > MAX_TICK_RECORD_BYTES:
        raise _too_big(len(payload), MAX_TICK_RECORD_BYTES, PriceUpdate)
    return tick_row(tick, payload)


def decode_tick(payload: bytes | None) -> TickRow:
    return validated_tick_row(_parse(PriceUpdate, payload, MAX_TICK_RECORD_BYTES), payload or b"")


def decode_trade(payload: bytes | None) -> TradeRow:
    report = _parse(ExecutionReport, payload, MAX_RECORD_BYTES)
    _check_strings(report)
    missing = [
        name
        for name, value in (
            ("execution_id", report.execution_id),
            ("account_id", report.account_id),
            ("symbol", report.symbol),
        )
        if not value
    ]
    if missing:
        raise RecordRejected("invalid_trade", f"missing {', '.join(missing)}")
    try:
        quantity = decimal_nanos(report.fill_quantity)
        price = decimal_nanos(report.fill_price)
        fees = decimal_nanos(report.fees)
    except MalformedDecimalError as exc:
        raise RecordRejected("malformed_decimal", str(exc)) from exc
    if report.execution_time_ns <= 0 or quantity <= 0:
        raise RecordRejected("invalid_trade", "execution time and fill quantity must be positive")
    side = _enum_name(Side.DESCRIPTOR, report.side, "invalid_trade", "side")
    return TradeRow(
        account_id=report.account_id,
        trade_date=trade_date_text(report.exchange, report.execution_time_ns),
        execution_time=utc_datetime(report.execution_time_ns),
        execution_id=report.execution_id,
        order_id=report.order_id,
        exchange=report.exchange,
        symbol=report.symbol,
        side=side,
        quantity_nanos=quantity,
        price_nanos=price,
        fees_nanos=fees,
        venue=report.venue,
        payload=payload or b"",
    )


def order_entity_id(account_id: str, order_id: str) -> str:
    """An order's ``event_store`` entity: ``ACCOUNT/ORDER_ID``, since order ids are per account
    (two accounts' "o-1" are two orders). Account ids never hold "/" (the token tables refuse
    it), so the first "/" splits them. A record without an account keeps the bare id."""
    return f"{account_id}/{order_id}" if account_id else order_id


def decode_order_event(payload: bytes | None) -> OrderEventRow:
    update = _parse(OrderStatusUpdate, payload, MAX_RECORD_BYTES)
    _check_strings(update)
    if not update.order_id or update.event_sequence == 0:
        raise RecordRejected("invalid_order_event", "order_id and event_sequence are required")
    event_type = _enum_name(OrderStatus.DESCRIPTOR, update.status, "invalid_order_event", "status")
    return OrderEventRow(
        entity_type="order",
        entity_id=order_entity_id(update.account_id, update.order_id),
        event_sequence=update.event_sequence,
        event_time=utc_datetime(update.event_time_ns),
        event_type=event_type,
        payload=payload or b"",
    )


def _parse(message_type: type[MessageT], payload: bytes | None, max_bytes: int) -> MessageT:
    if not payload:
        raise RecordRejected("empty_value", "record has no value")
    if len(payload) > max_bytes:
        raise _too_big(len(payload), max_bytes, message_type)
    try:
        return message_type.FromString(payload)
    except DecodeError as exc:
        raise RecordRejected("undecodable", f"not a {message_type.__name__}: {exc}") from exc


def _enum_name(enum: EnumDescriptor, number: int, reason: str, field: str) -> str:
    """The name of ``number`` in ``enum``; a number this version does not define (proto3 enums
    are open: any int32 decodes) is a rejection, not a crash."""
    value = enum.values_by_number.get(number)
    if value is None:
        raise RecordRejected(reason, f"{field} {number} is not a known {enum.name}")
    return str(value.name)


def _too_big(size: int, limit: int, message_type: type[Message]) -> RecordRejected:
    return RecordRejected(
        "oversized_record", f"{size} bytes; at most {limit} for a {message_type.__name__}"
    )


def _check_strings(message: Message, where: str = "") -> None:
    """Every string field of ``message`` and of its sub-messages within the trading limit."""
    for descriptor, value in message.ListFields():
        name = f"{where}{descriptor.name}"
        if isinstance(value, str) and len(value) > MAX_TRADING_STRING_CHARS:
            raise RecordRejected(
                "oversized_field",
                f"{name} is {len(value)} characters; at most {MAX_TRADING_STRING_CHARS}",
            )
        if isinstance(value, Message):
            _check_strings(value, f"{name}.")

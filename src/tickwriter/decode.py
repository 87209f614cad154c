"""Kafka record bytes -> rows, or a RecordRejected saying why (the record then goes to the DLQ).

Proto messages stop here: what leaves this module is domain rows.
"""

from __future__ import annotations

from typing import TypeVar

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


def validated_tick_row(update: PriceUpdate, payload: bytes) -> TickRow:
    try:
        tick = tick_from_proto(update)
    except MalformedDecimalError as exc:
        raise RecordRejected("malformed_decimal", str(exc)) from exc
    rejection = check_tick(tick)
    if rejection is not None:
        raise RecordRejected(f"invalid_tick:{rejection.problem}", rejection.detail)
    return tick_row(tick, payload)


def decode_tick(payload: bytes | None) -> TickRow:
    return validated_tick_row(_parse(PriceUpdate, payload), payload or b"")


def decode_trade(payload: bytes | None) -> TradeRow:
    report = _parse(ExecutionReport, payload)
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
    return TradeRow(
        account_id=report.account_id,
        trade_date=trade_date_text(report.exchange, report.execution_time_ns),
        execution_time=utc_datetime(report.execution_time_ns),
        execution_id=report.execution_id,
        order_id=report.order_id,
        exchange=report.exchange,
        symbol=report.symbol,
        side=Side.Name(report.side),
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
    update = _parse(OrderStatusUpdate, payload)
    if not update.order_id or update.event_sequence == 0:
        raise RecordRejected("invalid_order_event", "order_id and event_sequence are required")
    return OrderEventRow(
        entity_type="order",
        entity_id=order_entity_id(update.account_id, update.order_id),
        event_sequence=update.event_sequence,
        event_time=utc_datetime(update.event_time_ns),
        event_type=OrderStatus.Name(update.status),
        payload=payload or b"",
    )


def _parse(message_type: type[MessageT], payload: bytes | None) -> MessageT:
    if not payload:
        raise RecordRejected("empty_value", "record has no value")
    try:
        return message_type.FromString(payload)
    except DecodeError as exc:
        raise RecordRejected("undecodable", f"not a {message_type.__name__}: {exc}") from exc

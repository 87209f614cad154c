"""The one schema's ``PriceUpdate`` read into the domain's ``Tick`` and back: shared by every
service that produces or consumes ``ticks.raw.v2`` (the feed handlers, the tick writer, the
gateway), so all of them read and write the same fields the same way."""

from __future__ import annotations

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.fixed_point import NANOS_PER_UNIT
from marketcore.ticks import Tick
from marketinfra.decimal_codec import DecimalRangeError, decimal_nanos, set_decimal

_E = NANOS_PER_UNIT
_MAX = NANOS_PER_UNIT - 1
_FIELDS = ("bid", "ask", "last", "volume", "bid_size", "ask_size", "last_size")


def tick_from_proto(update: PriceUpdate) -> Tick:
    """The domain tick of ``update``; raises ``MalformedDecimalError`` for a value that is not
    a canonical ``Decimal``. Written out field by field because it runs once per tick in every
    consumer: when every part is non-negative and ``nanos`` below 1e9 (the usual case) the
    values are canonical; otherwise ``decimal_codec.decimal_nanos`` decides, field by field."""
    field = update.bid
    bid_u, bid_n = field.units, field.nanos
    field = update.ask
    ask_u, ask_n = field.units, field.nanos
    field = update.last
    last_u, last_n = field.units, field.nanos
    field = update.volume
    volume_u, volume_n = field.units, field.nanos
    field = update.bid_size
    bid_size_u, bid_size_n = field.units, field.nanos
    field = update.ask_size
    ask_size_u, ask_size_n = field.units, field.nanos
    field = update.last_size
    last_size_u, last_size_n = field.units, field.nanos
    nanos = (bid_n, ask_n, last_n, volume_n, bid_size_n, ask_size_n, last_size_n)
    if (
        min(nanos) < 0
        or max(nanos) > _MAX
        or min(bid_u, ask_u, last_u, volume_u, bid_size_u, ask_size_u, last_size_u) < 0
    ):
        v = [decimal_nanos(getattr(update, name)) for name in _FIELDS]
        return Tick(
            update.exchange, update.symbol, v[0], v[1], v[2], v[3], v[4], v[5], v[6],
            update.event_time_ns, update.received_time_ns, update.feed_handler_id,
            update.venue_symbol, update.feed_sequence,
        )  # fmt: skip
    return Tick(
        update.exchange, update.symbol, bid_u * _E + bid_n, ask_u * _E + ask_n,
        last_u * _E + last_n, volume_u * _E + volume_n, bid_size_u * _E + bid_size_n,
        ask_size_u * _E + ask_size_n, last_size_u * _E + last_size_n, update.event_time_ns,
        update.received_time_ns, update.feed_handler_id, update.venue_symbol,
        update.feed_sequence,
    )  # fmt: skip


def tick_to_proto(  # noqa: C901 - one branch per field, written out: the hot path
    tick: Tick, *, feed_handler_id: str | None = None, feed_sequence: int | None = None
) -> PriceUpdate:
    """``tick`` as a ``PriceUpdate`` (with the feed handler's id and sequence when given);
    raises ``DecimalRangeError`` for a value beyond the wire range. Values of 0 stay unset
    (the wire's "not present"). Runs once per tick in the feed handler, so the common case
    (a positive value: whole units and nanos by one ``divmod``) is written out per field;
    a negative value takes ``set_decimal``, and int64 itself refuses units beyond range."""
    update = PriceUpdate(
        exchange=tick.exchange,
        symbol=tick.symbol,
        event_time_ns=tick.event_time_ns,
        received_time_ns=tick.received_time_ns,
        feed_handler_id=tick.feed_handler_id if feed_handler_id is None else feed_handler_id,
        venue_symbol=tick.venue_symbol,
        feed_sequence=tick.feed_sequence if feed_sequence is None else feed_sequence,
    )
    try:
        value = tick.bid_nanos
        if value > 0:
            target = update.bid
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.bid, value)
        value = tick.ask_nanos
        if value > 0:
            target = update.ask
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.ask, value)
        value = tick.last_nanos
        if value > 0:
            target = update.last
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.last, value)
        value = tick.volume_nanos
        if value > 0:
            target = update.volume
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.volume, value)
        value = tick.bid_size_nanos
        if value > 0:
            target = update.bid_size
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.bid_size, value)
        value = tick.ask_size_nanos
        if value > 0:
            target = update.ask_size
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.ask_size, value)
        value = tick.last_size_nanos
        if value > 0:
            target = update.last_size
            target.units, target.nanos = divmod(value, _E)
        elif value:
            set_decimal(update.last_size, value)
    except ValueError as exc:  # int64 units overflowed: beyond the Decimal range
        raise DecimalRangeError(f"{tick.exchange}|{tick.symbol}: {exc}") from exc
    return update

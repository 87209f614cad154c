"""Turning decoded records into idempotent Cassandra rows. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from marketcore.tick_identity import tick_timeuuid
from marketcore.ticks import Tick
from marketcore.trading_calendar import trade_date_text


@dataclass(frozen=True, slots=True)
class TickRow:
    exchange: str
    symbol: str
    trade_date: str
    tick_time: uuid.UUID
    tick: Tick
    payload: bytes

    @property
    def partition(self) -> tuple[str, str, str]:
        return (self.exchange, self.symbol, self.trade_date)


def tick_discriminator(tick: Tick, payload: bytes) -> bytes:
    """What tells apart two ticks of one instrument at the same event time.

    The feed handler's (feed_handler_id, feed_sequence) when it set them; otherwise the
    tick's own bytes. Either way a replayed tick gives the same row, never a new one.
    """
    if tick.feed_handler_id and tick.feed_sequence:
        return f"{tick.feed_handler_id}:{tick.feed_sequence}".encode()
    return payload


def tick_event_time_ns(tick: Tick) -> int:
    """Venue time when the venue gave one, else our receipt time (documented fallback)."""
    return tick.event_time_ns if tick.event_time_ns > 0 else tick.received_time_ns


_QUARTER_HOUR_NS = 15 * 60 * 1_000_000_000


def tick_trade_date(exchange: str, event_time_ns: int) -> str:
    """``trade_date_text`` (the documented rule), remembered per venue and quarter hour: every
    time zone's UTC offset is a whole number of quarter hours, so no local midnight falls inside
    one and all its instants share a date. Saves a time-zone conversion per tick."""
    return _quarter_hour_trade_date(exchange, event_time_ns // _QUARTER_HOUR_NS)


@lru_cache(maxsize=4096)
def _quarter_hour_trade_date(exchange: str, quarter_hour: int) -> str:
    return trade_date_text(exchange, quarter_hour * _QUARTER_HOUR_NS)


def tick_row(tick: Tick, payload: bytes) -> TickRow:
    event_time_ns = tick_event_time_ns(tick)
    return TickRow(
        exchange=tick.exchange,
        symbol=tick.symbol,
        trade_date=tick_trade_date(tick.exchange, event_time_ns),
        tick_time=tick_timeuuid(event_time_ns, tick_discriminator(tick, payload)),
        tick=tick,
        payload=payload,
    )


@dataclass(frozen=True, slots=True)
class TradeRow:
    account_id: str
    trade_date: str
    execution_time: datetime
    execution_id: str
    order_id: str
    exchange: str
    symbol: str
    side: str
    quantity_nanos: int
    price_nanos: int
    fees_nanos: int
    venue: str
    payload: bytes

    @property
    def partition(self) -> tuple[str, str]:
        return (self.account_id, self.trade_date)


@dataclass(frozen=True, slots=True)
class OrderEventRow:
    entity_type: str
    entity_id: str
    event_sequence: int
    event_time: datetime
    event_type: str
    payload: bytes

    @property
    def partition(self) -> tuple[str, str]:
        return (self.entity_type, self.entity_id)


def utc_datetime(time_ns: int) -> datetime:
    """A timezone-aware UTC datetime at millisecond precision (what a CQL timestamp holds)."""
    return datetime.fromtimestamp(time_ns // 1_000_000 / 1000, tz=UTC)


Row = TickRow | TradeRow | OrderEventRow

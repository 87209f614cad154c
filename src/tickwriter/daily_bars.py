"""The day's open, high, low and close per instrument, folded from ticks. Pure.

Price of a tick: its last trade price, or the mid of bid and ask when the venue sends quotes
only. ``merge`` is idempotent and order-independent (open = earliest event, close = latest,
high/low = max/min, volume = the largest cumulative volume seen), so a replay or a record
read twice leaves the same bar.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tickwriter.rows import TickRow, tick_event_time_ns

BarKey = tuple[str, str, str]  # exchange, symbol, trade_date


@dataclass(frozen=True, slots=True)
class DailyBar:
    exchange: str
    symbol: str
    trade_date: str
    open_micros: int
    high_micros: int
    low_micros: int
    close_micros: int
    volume_micros: int
    first_event_ns: int
    last_event_ns: int

    @property
    def key(self) -> BarKey:
        return (self.exchange, self.symbol, self.trade_date)


def tick_price(row: TickRow) -> int:
    tick = row.tick
    if tick.last_micros > 0:
        return tick.last_micros
    if tick.bid_micros > 0 and tick.ask_micros > 0:
        return (tick.bid_micros + tick.ask_micros) // 2
    return 0


def bar_of(row: TickRow) -> DailyBar | None:
    price = tick_price(row)
    if price <= 0:
        return None
    at = tick_event_time_ns(row.tick)
    return DailyBar(
        row.exchange, row.symbol, row.trade_date, price, price, price, price,
        row.tick.volume_micros, at, at,
    )  # fmt: skip


def merge(existing: DailyBar | None, new: DailyBar) -> DailyBar:
    if existing is None:
        return new
    first, last = (existing, new), (existing, new)
    opener = min(first, key=lambda bar: (bar.first_event_ns, bar.open_micros))
    closer = max(last, key=lambda bar: (bar.last_event_ns, bar.close_micros))
    return DailyBar(
        exchange=new.exchange,
        symbol=new.symbol,
        trade_date=new.trade_date,
        open_micros=opener.open_micros,
        high_micros=max(existing.high_micros, new.high_micros),
        low_micros=min(existing.low_micros, new.low_micros),
        close_micros=closer.close_micros,
        volume_micros=max(existing.volume_micros, new.volume_micros),
        first_event_ns=opener.first_event_ns,
        last_event_ns=closer.last_event_ns,
    )


def fold(rows: Iterable[TickRow]) -> dict[BarKey, DailyBar]:
    """One bar per (exchange, symbol, trade_date) touched by ``rows``."""
    bars: dict[BarKey, DailyBar] = {}
    for row in rows:
        bar = bar_of(row)
        if bar is not None:
            bars[bar.key] = merge(bars.get(bar.key), bar)
    return bars

"""The day's open, high, low and close per instrument, folded from ticks. Pure.

Price of a tick: its last trade price, or the mid of bid and ask when the venue sends quotes
only. ``merge`` is idempotent, commutative and associative (open = earliest event, close =
latest, high/low = max/min, volume = the largest cumulative volume seen; equal event times
keep the larger price), so a replay, a record read twice or a batch folded in any order
leaves the same bar.

Storing a bar needs no read: Cassandra keeps, per cell, the value written with the highest
write timestamp (on equal timestamps, the larger value). ``bar_timestamps`` gives each column
group the timestamp that makes that rule compute ``merge``: ``close`` is written at its event
time (the latest wins), ``open`` at ``CEILING - event time`` (the earliest wins), ``high`` at
its price, ``low`` at ``CEILING - price``, ``volume`` at its value. So any number of writers
(pipeline instances, TickWriterService calls, a replay) may upsert partial bars of one
instrument in any order and the row ends as the merge of all of them, with no lost update.
The price of this: those cells carry synthetic write timestamps, so a manual fix of a
``daily_bars`` row must use ``USING TIMESTAMP`` with a larger value (or delete the row with
``USING TIMESTAMP 9223372036854775807``); nothing but the tick writer writes this table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from marketcore.fixed_point import INT64_MAX
from tickwriter.rows import TickRow, tick_event_time_ns

BarKey = tuple[str, str, str]  # exchange, symbol, trade_date
# Subtracting from this keeps every "smaller wins" timestamp positive for any int64 >= 0 input.
CEILING = INT64_MAX


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


@dataclass(frozen=True, slots=True)
class BarTimestamps:
    """Cassandra write timestamps per column group; see the module docstring."""

    open: int  # open_micros, first_event_ns
    close: int  # close_micros, last_event_ns
    high: int
    low: int
    volume: int


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
        max(0, row.tick.volume_micros), at, at,
    )  # fmt: skip


def merge(existing: DailyBar | None, new: DailyBar) -> DailyBar:
    if existing is None:
        return new
    # Ties on event time keep the larger price: what Cassandra does on equal write timestamps.
    opener = min((existing, new), key=lambda bar: (bar.first_event_ns, -bar.open_micros))
    closer = max((existing, new), key=lambda bar: (bar.last_event_ns, bar.close_micros))
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


def fold(
    rows: Iterable[TickRow], into: Mapping[BarKey, DailyBar] | None = None
) -> dict[BarKey, DailyBar]:
    """One bar per (exchange, symbol, trade_date) touched by ``rows``, merged into ``into``
    (not modified) when given. Same result as merging ``bar_of`` of each row, faster."""
    points: dict[BarKey, list[tuple[int, int, int]]] = {}  # event time, price, volume
    for row in rows:
        price = tick_price(row)
        if price > 0:
            point = (tick_event_time_ns(row.tick), price, row.tick.volume_micros)
            points.setdefault(row.partition, []).append(point)
    bars: dict[BarKey, DailyBar] = dict(into or {})
    for key, seen in points.items():
        first_ns, negative_open = min((at, -price) for at, price, _ in seen)
        last_ns, close = max((at, price) for at, price, _ in seen)
        prices = [price for _, price, _ in seen]
        volume = max(0, max(volume for _, _, volume in seen))
        bar = DailyBar(
            *key, -negative_open, max(prices), min(prices), close, volume, first_ns, last_ns
        )
        bars[key] = merge(bars.get(key), bar)
    return bars


def bar_timestamps(bar: DailyBar) -> BarTimestamps:
    return BarTimestamps(
        open=CEILING - bar.first_event_ns,
        close=bar.last_event_ns,
        high=bar.high_micros,
        low=CEILING - bar.low_micros,
        volume=bar.volume_micros,
    )

"""The day's open, high, low and close per instrument, folded from ticks. Pure.

Price of a tick: its last trade price, or the mid of bid and ask when the venue sends quotes
only. ``merge`` is idempotent, commutative and associative (open = earliest event, close =
latest, high/low = max/min, volume = the largest cumulative volume seen; equal event times
keep the larger price), so a replay, a record read twice or a batch folded in any order
leaves the same bar.

Storing a bar needs no read: Cassandra keeps, per cell, the value written with the highest
write timestamp (on equal timestamps, the larger value: the cells' bytes compared unsigned).
``bar_timestamps`` gives each column group the timestamp that makes that rule compute
``merge``: ``close`` is written at its event time (the latest wins), ``open`` at ``CEILING -
event time`` (the earliest wins), ``high`` at its whole units, ``low`` at ``CEILING - units``,
``volume`` at its whole units. Values are exact (nanos) and stored as one cell each, (units,
nanos), whose bytes order like the values (nothing here is negative): so equal timestamps,
which for high, low and volume mean equal units, are decided by the value itself. ``low``
stores its nanos bit-inverted so that the lower one wins those ties (``bar_cells``). A whole
unit is at most int64, so every price and volume the wire carries fits a timestamp. Any
number of writers (pipeline instances, TickWriterService calls, a replay) may upsert partial
bars of one instrument in any order and the row ends as the merge of all of them, with no
lost update.
Checked on the real server, every order, in the memtable and across SSTables, including
ties at the top of the range (tests/integration/test_tickwriter_daily_bars.py). The rule holds
only for cells without a TTL (on equal timestamps Cassandra prefers the cell that expires
later): the table has none and must keep none.
The price of this: those cells carry synthetic write timestamps, so a manual fix of a
``daily_bars`` row must use ``USING TIMESTAMP`` with a larger value (or delete the row with
``USING TIMESTAMP 9223372036854775807``, after which nothing can write it again until the
tombstone is purged); nothing but the tick writer writes this table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from marketcore.fixed_point import INT64_MAX, NANOS_PER_UNIT
from marketinfra.bar_cells import Cell, cell, low_cell
from tickwriter.rows import TickRow, tick_event_time_ns

BarKey = tuple[str, str, str]  # exchange, symbol, trade_date
# Subtracting from this keeps every "smaller wins" timestamp positive for any int64 >= 0 input.
CEILING = INT64_MAX


@dataclass(frozen=True, slots=True)
class DailyBar:
    exchange: str
    symbol: str
    trade_date: str
    open_nanos: int
    high_nanos: int
    low_nanos: int
    close_nanos: int
    volume_nanos: int
    first_event_ns: int
    last_event_ns: int

    @property
    def key(self) -> BarKey:
        return (self.exchange, self.symbol, self.trade_date)


@dataclass(frozen=True, slots=True)
class BarTimestamps:
    """Cassandra write timestamps per column group; see the module docstring."""

    open: int  # open_nanos, first_event_ns
    close: int  # close_nanos, last_event_ns
    high: int
    low: int
    volume: int


def tick_price(row: TickRow) -> int:
    tick = row.tick
    if tick.last_nanos > 0:
        return tick.last_nanos
    if tick.bid_nanos > 0 and tick.ask_nanos > 0:
        return (tick.bid_nanos + tick.ask_nanos) // 2
    return 0


def bar_of(row: TickRow) -> DailyBar | None:
    price = tick_price(row)
    if price <= 0:
        return None
    at = tick_event_time_ns(row.tick)
    return DailyBar(
        row.exchange, row.symbol, row.trade_date, price, price, price, price,
        max(0, row.tick.volume_nanos), at, at,
    )  # fmt: skip


def merge(existing: DailyBar | None, new: DailyBar) -> DailyBar:
    if existing is None:
        return new
    # Ties on event time keep the larger price: what Cassandra does on equal write timestamps.
    opener = min((existing, new), key=lambda bar: (bar.first_event_ns, -bar.open_nanos))
    closer = max((existing, new), key=lambda bar: (bar.last_event_ns, bar.close_nanos))
    return DailyBar(
        exchange=new.exchange,
        symbol=new.symbol,
        trade_date=new.trade_date,
        open_nanos=opener.open_nanos,
        high_nanos=max(existing.high_nanos, new.high_nanos),
        low_nanos=min(existing.low_nanos, new.low_nanos),
        close_nanos=closer.close_nanos,
        volume_nanos=max(existing.volume_nanos, new.volume_nanos),
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
            point = (tick_event_time_ns(row.tick), price, row.tick.volume_nanos)
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
        high=bar.high_nanos // NANOS_PER_UNIT,
        low=CEILING - bar.low_nanos // NANOS_PER_UNIT,
        volume=bar.volume_nanos // NANOS_PER_UNIT,
    )


@dataclass(frozen=True, slots=True)
class BarCells:
    """A bar's values as ``daily_bars`` stores them (see the module docstring)."""

    open: Cell
    high: Cell
    low: Cell  # (units, ~nanos)
    close: Cell
    volume: Cell


def bar_cells(bar: DailyBar) -> BarCells:
    return BarCells(
        open=cell(bar.open_nanos),
        high=cell(bar.high_nanos),
        low=low_cell(bar.low_nanos),
        close=cell(bar.close_nanos),
        volume=cell(bar.volume_nanos),
    )

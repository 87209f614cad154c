"""The in-memory quote view: latest value and the day's bar per instrument. Pure.

- **Latest.** ``apply`` keeps, per instrument, the newest update by ``updates.is_newer``; an
  older or repeated one is not the latest and is not fanned out (it still counts for the day's
  high and low). So a stream never receives an older value after a newer one, even across a
  feed replay or the snapshot-to-live hand-over.
- **Day.** The trading day is ``marketcore.trading_calendar.trade_date`` of the tick's event
  time (venue time zone), the rule the tick writer uses for ``daily_bars``. Open is the
  earliest event's price, close the latest, high and low the extremes (``day_price_nanos``).
- **Completeness.** Memory has seen every tick of a day only if the gateway started before
  that day began. For the day the gateway started in, the bar is merged once with the stored
  ``daily_bars`` row (``merge_stored``); merging is order-independent and idempotent. The
  previous close is the close of the previous complete bar in memory, else the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.core.subscriptions import QuoteQuery, Subscription
from gateway.core.updates import FeedUpdate, day_price_nanos, is_newer
from marketcore.instruments import InstrumentKey
from marketcore.trading_calendar import trade_date, venue_time_zone

NANOS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class DayBar:
    trade_date: str  # YYYY-MM-DD
    open_nanos: int
    high_nanos: int
    low_nanos: int
    close_nanos: int
    first_event_ns: int
    last_event_ns: int


def merge_bars(existing: DayBar | None, new: DayBar) -> DayBar:
    """Union of two bars of one day: commutative, associative and idempotent (the tick
    writer's ``daily_bars.merge`` rule)."""
    if existing is None:
        return new
    # ties on event time keep the larger price, as the tick writer's daily_bars do
    opener = min((existing, new), key=lambda bar: (bar.first_event_ns, -bar.open_nanos))
    closer = max((existing, new), key=lambda bar: (bar.last_event_ns, bar.close_nanos))
    return DayBar(
        trade_date=new.trade_date,
        open_nanos=opener.open_nanos,
        high_nanos=max(existing.high_nanos, new.high_nanos),
        low_nanos=min(existing.low_nanos, new.low_nanos),
        close_nanos=closer.close_nanos,
        first_event_ns=opener.first_event_ns,
        last_event_ns=closer.last_event_ns,
    )


def extend_bar(bar: DayBar, price: int, event_ns: int) -> DayBar:
    """``merge_bars(bar, <one tick of price at event_ns>)`` for a tick later than every tick in
    ``bar`` (the feed's usual case), without building the tick's bar or comparing openers."""
    return DayBar(
        bar.trade_date,
        bar.open_nanos,
        price if price > bar.high_nanos else bar.high_nanos,
        price if price < bar.low_nanos else bar.low_nanos,
        price,
        bar.first_event_ns,
        event_ns,
    )


@dataclass(frozen=True, slots=True)
class Quote:
    """What GetQuote answers."""

    latest: FeedUpdate
    bar: DayBar | None
    prev_close_nanos: int  # 0: unknown
    trade_date: str


@dataclass(frozen=True, slots=True)
class MemoryQuote:
    quote: Quote
    # the day's bar or the previous close may be missing ticks memory never saw: merge the
    # stored daily_bars first (once per instrument and day)
    needs_store: bool


class TradingDays:
    """``trade_date`` per exchange with the current day's bounds cached (one tick costs a
    comparison, not a time-zone conversion)."""

    __slots__ = ("_bounds",)

    def __init__(self) -> None:
        self._bounds: dict[str, tuple[int, int, str]] = {}

    def of(self, exchange: str, event_ns: int) -> str:
        bounds = self._bounds.get(exchange)
        if bounds is not None and bounds[0] <= event_ns < bounds[1]:
            return bounds[2]
        day = trade_date(exchange, event_ns)
        zone = venue_time_zone(exchange)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=zone)
        text = day.isoformat()
        self._bounds[exchange] = (
            int(start.timestamp()) * NANOS_PER_SECOND,
            int(end.timestamp()) * NANOS_PER_SECOND,
            text,
        )
        return text


@dataclass(slots=True)
class _Entry:
    latest: FeedUpdate
    bar: DayBar | None = None
    bar_complete: bool = False
    prev_close_nanos: int = 0
    store_merged_date: str = ""


class QuoteBook:
    def __init__(self, started_ns: int) -> None:
        self._started_ns = started_ns
        self._days = TradingDays()
        self._start_days: dict[str, str] = {}
        self._entries: dict[InstrumentKey, _Entry] = {}
        self._by_symbol: dict[str, list[InstrumentKey]] = {}

    def apply(self, update: FeedUpdate) -> bool:
        """Fold ``update`` in; True when it is the instrument's new latest value (fan it out)."""
        key = update.key
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(update)
            self._entries[key] = entry
            self._by_symbol.setdefault(key.symbol, []).append(key)
            fresh = True
        else:
            fresh = is_newer(update, entry.latest)
            if fresh:
                entry.latest = update
        self._fold_day(entry, update)
        return fresh

    def _fold_day(self, entry: _Entry, update: FeedUpdate) -> None:
        price = day_price_nanos(update.tick)
        if price <= 0:
            return
        at = update.event_ns
        day = self._days.of(update.key.exchange, at)
        current = entry.bar
        if current is not None and current.trade_date == day and at > current.last_event_ns:
            entry.bar = extend_bar(current, price, at)  # in order: the common case, cheaper
            return
        bar = DayBar(day, price, price, price, price, at, at)
        if current is None or current.trade_date == day:
            if current is None:
                entry.bar_complete = self._started_before(update.key.exchange, day)
            entry.bar = merge_bars(current, bar)
        elif day > current.trade_date:  # a new trading day for this instrument
            entry.prev_close_nanos = current.close_nanos if entry.bar_complete else 0
            entry.bar = bar
            entry.bar_complete = self._started_before(update.key.exchange, day)
        # else: a late tick of an earlier day; that day is no longer served from memory

    def _started_before(self, exchange: str, day: str) -> bool:
        start_day = self._start_days.get(exchange)
        if start_day is None:
            start_day = trade_date(exchange, self._started_ns).isoformat()
            self._start_days[exchange] = start_day
        return start_day < day

    def latest(self, key: InstrumentKey) -> FeedUpdate | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.latest

    def snapshot(self, subscription: Subscription) -> list[FeedUpdate]:
        """The latest value of every known instrument the subscription covers, oldest first."""
        found = [
            self._entries[key].latest
            for symbol in subscription.symbols
            for key in self._by_symbol.get(symbol, ())
            if subscription.exchange is None or key.exchange == subscription.exchange
        ]
        found.sort(key=lambda update: update.event_ns)
        return found

    def unknown_symbols(self, subscription: Subscription) -> list[str]:
        """Symbols of the subscription with no instrument in memory (sorted)."""
        return sorted(
            symbol
            for symbol in subscription.symbols
            if not any(
                subscription.exchange is None or key.exchange == subscription.exchange
                for key in self._by_symbol.get(symbol, ())
            )
        )

    def quote(self, query: QuoteQuery) -> MemoryQuote | None:
        """The quote of ``query`` from memory, or None when memory has no such instrument. With
        no exchange, the exchange whose latest update is the most recent."""
        keys = [
            key
            for key in self._by_symbol.get(query.symbol, ())
            if query.exchange is None or key.exchange == query.exchange
        ]
        if not keys:
            return None
        entry = max((self._entries[key] for key in keys), key=lambda e: e.latest.event_ns)
        bar = entry.bar
        day = bar.trade_date if bar is not None else ""
        if not day:
            day = self._days.of(entry.latest.key.exchange, entry.latest.event_ns)
        needs_store = entry.store_merged_date != day and (
            not entry.bar_complete or entry.prev_close_nanos == 0
        )
        return MemoryQuote(Quote(entry.latest, bar, entry.prev_close_nanos, day), needs_store)

    def merge_stored(
        self, key: InstrumentKey, day: str, stored: DayBar | None, previous_close_nanos: int
    ) -> None:
        """Merge the store's bar of ``day`` (and the previous close) into memory, once per day.
        Ignored when memory has moved on to another day meanwhile."""
        entry = self._entries.get(key)
        if entry is None:
            return
        bar = entry.bar
        current_day = bar.trade_date if bar is not None else day
        if current_day != day:
            return
        if stored is not None and stored.trade_date == day:
            entry.bar = merge_bars(bar, stored) if bar is not None else stored
        if entry.prev_close_nanos == 0:
            entry.prev_close_nanos = previous_close_nanos
        entry.bar_complete = True
        entry.store_merged_date = day

    def __len__(self) -> int:
        return len(self._entries)

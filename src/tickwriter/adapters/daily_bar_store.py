"""Keeps ``daily_bars`` current from the ticks written.

Each flush folds its ticks into bars and upserts the merged bar. The last bar written per
instrument and day is cached, so Cassandra is read only on a cache miss; the cache is cleared
whenever partitions move, because another writer may have owned the instrument meanwhile.
One Kafka partition carries all ticks of an instrument, so one writer updates a bar at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement

from marketinfra.cassandra import Consistency, prepare
from tickwriter.daily_bars import BarKey, DailyBar, fold, merge
from tickwriter.rows import TickRow

_COLUMNS = (
    "open_micros, high_micros, low_micros, close_micros, volume_micros, "
    "first_event_ns, last_event_ns"
)
_MAX_CACHED = 100_000  # bars; about one trading day of a large universe


class DailyBarStore:
    def __init__(self, session: Session, keyspace: str, max_in_flight: int) -> None:
        self._session = session
        self._max_in_flight = max_in_flight
        self._select = prepare(
            session,
            f"SELECT {_COLUMNS} FROM {keyspace}.daily_bars "
            "WHERE exchange = ? AND symbol = ? AND trade_date = ?",
            Consistency.READ,
        )
        self._upsert = prepare(
            session,
            f"INSERT INTO {keyspace}.daily_bars (exchange, symbol, trade_date, {_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            Consistency.TICK_WRITE,
        )
        self._cache: dict[BarKey, DailyBar] = {}

    def forget(self) -> None:
        self._cache.clear()

    def upserts(
        self, rows: Sequence[TickRow]
    ) -> tuple[list[tuple[PreparedStatement, tuple[object, ...]]], dict[BarKey, DailyBar]]:
        """The upserts that bring the bars touched by ``rows`` up to date, and the bars they
        write; pass those to ``remember`` once the writes succeeded. Reads Cassandra only for
        bars not cached (raises the driver's error if that read fails)."""
        fresh = fold(rows)
        missing = [key for key in fresh if key not in self._cache]
        if missing:
            results = execute_concurrent_with_args(
                self._session, self._select, missing, concurrency=self._max_in_flight,
                raise_on_first_error=True,
            )  # fmt: skip
            for key, (_success, stored) in zip(missing, results, strict=True):
                row = stored.one()
                if row is not None:
                    self._cache[key] = DailyBar(*key, *row)
        merged = {key: merge(self._cache.get(key), bar) for key, bar in fresh.items()}
        statements = [(self._upsert, (*bar.key, *_values(bar))) for bar in merged.values()]
        return statements, merged

    def remember(self, written: dict[BarKey, DailyBar]) -> None:
        if len(self._cache) > _MAX_CACHED:
            self._cache.clear()
        self._cache.update(written)


def _values(bar: DailyBar) -> tuple[int, ...]:
    return (
        bar.open_micros, bar.high_micros, bar.low_micros, bar.close_micros, bar.volume_micros,
        bar.first_event_ns, bar.last_event_ns,
    )  # fmt: skip

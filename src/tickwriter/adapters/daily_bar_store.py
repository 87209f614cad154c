"""Keeps ``daily_bars`` current from the ticks written.

Written rows' ticks are folded into staged bars; those are upserted at the next checkpoint
(before offsets are committed), or at once for a synchronous WriteTick. The last bar written per
instrument and day is cached, so Cassandra is read only on a cache miss; the cache is cleared
whenever partitions move, because another writer may have owned the instrument meanwhile.
One Kafka partition carries all ticks of an instrument, so one writer updates a bar at a time.
"""

from __future__ import annotations

import threading
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
        self._cache: dict[BarKey, DailyBar] = {}  # as last written
        self._staged: dict[BarKey, DailyBar] = {}  # merged from written rows, not yet upserted
        # the pipeline thread and TickWriterService calls share one store
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop the cache (partitions moved: another writer may have written these bars since).
        Staged bars stay: they merge rows that are written, and are upserted at the next
        checkpoint; rewriting them later is harmless since merging is idempotent."""
        with self._lock:
            self._cache.clear()

    def stage(self, rows: Sequence[TickRow]) -> None:
        """Merge the bars touched by ``rows`` (already written) into the staged bars. Reads
        Cassandra only for bars neither cached nor staged; raises the driver's error if that
        read fails."""
        fresh = fold(rows)
        with self._lock:
            missing = [key for key in fresh if key not in self._staged and key not in self._cache]
        stored_bars: dict[BarKey, DailyBar] = {}
        if missing:
            results = execute_concurrent_with_args(
                self._session, self._select, missing, concurrency=self._max_in_flight,
                raise_on_first_error=True,
            )  # fmt: skip
            for key, (_success, stored) in zip(missing, results, strict=True):
                row = stored.one()
                if row is not None:
                    stored_bars[key] = DailyBar(*key, *row)
        with self._lock:
            for key, bar in fresh.items():
                base = self._staged.get(key) or self._cache.get(key) or stored_bars.get(key)
                self._staged[key] = merge(base, bar)

    def staged_upserts(
        self,
    ) -> tuple[list[tuple[PreparedStatement, tuple[object, ...]]], dict[BarKey, DailyBar]]:
        """The upserts of every staged bar, and the snapshot to pass to ``mark_written``."""
        with self._lock:
            snapshot = dict(self._staged)
        return [(self._upsert, (*bar.key, *_values(bar))) for bar in snapshot.values()], snapshot

    def mark_written(self, snapshot: dict[BarKey, DailyBar]) -> None:
        """Those bars are in Cassandra: unstage them, unless they changed since the snapshot."""
        with self._lock:
            if len(self._cache) > _MAX_CACHED:
                self._cache.clear()
            for key, bar in snapshot.items():
                self._cache[key] = bar
                if self._staged.get(key) == bar:
                    del self._staged[key]


def _values(bar: DailyBar) -> tuple[int, ...]:
    return (
        bar.open_micros, bar.high_micros, bar.low_micros, bar.close_micros, bar.volume_micros,
        bar.first_event_ns, bar.last_event_ns,
    )  # fmt: skip

"""``daily_bars`` upserts that merge inside Cassandra, so no bar is ever read before it is written.

Each bar becomes one UNLOGGED batch on its partition: one UPDATE per column group, each with the
write timestamp from ``tickwriter.daily_bars.bar_timestamps``. Cassandra's per-cell
last-write-wins then keeps the earliest open, the latest close, the highest high, the lowest low
and the largest volume of everything any writer ever upserted, in whatever order it arrived.
"""

from __future__ import annotations

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from marketinfra.cassandra import Consistency, prepare
from tickwriter.daily_bars import DailyBar, bar_cells, bar_timestamps

_WHERE = "WHERE exchange = ? AND symbol = ? AND trade_date = ?"
_CONSISTENCY = Consistency.TICK_WRITE  # derived from ticks: rewritten by any replay


class DailyBarStatements:
    def __init__(self, session: Session, keyspace: str) -> None:
        def update(assignments: str) -> PreparedStatement:
            return prepare(
                session,
                f"UPDATE {keyspace}.daily_bars USING TIMESTAMP ? SET {assignments} {_WHERE}",
                _CONSISTENCY,
            )

        self._open = update("open = ?, first_event_ns = ?")
        self._close = update("close = ?, last_event_ns = ?")
        self._high = update("high = ?")
        self._low = update("low = ?")
        self._volume = update("volume = ?")

    def batch(self, bar: DailyBar) -> BatchStatement:
        """The upsert of one bar: a single mutation of its partition."""
        stamps = bar_timestamps(bar)
        cells = bar_cells(bar)
        batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=_CONSISTENCY.value)
        batch.add(self._open, (stamps.open, cells.open, bar.first_event_ns, *bar.key))
        batch.add(self._close, (stamps.close, cells.close, bar.last_event_ns, *bar.key))
        batch.add(self._high, (stamps.high, cells.high, *bar.key))
        batch.add(self._low, (stamps.low, cells.low, *bar.key))
        batch.add(self._volume, (stamps.volume, cells.volume, *bar.key))
        return batch

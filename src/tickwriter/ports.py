"""What the pipeline and TickWriterService need from the outside world. ``app.py`` plugs in
the Cassandra and Kafka adapters; tests plug in fakes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from tickwriter.daily_bars import DailyBar
from tickwriter.rows import Row

if TYPE_CHECKING:
    from tickwriter.adapters.dead_letters import DeadLetter


class RowWriter(Protocol):
    def write(self, rows: Sequence[Row], bars: Collection[DailyBar] = ()) -> float:
        """Write ``rows`` and upsert ``bars``; the seconds it took. Raises WriteFailed (retriable)
        when the store did not take all of them; a retry is harmless (idempotent upserts)."""
        ...


class DeadLetterSink(Protocol):
    def publish(self, letters: Sequence[DeadLetter], now_ns: int) -> None:
        """Deliver every letter or raise WriteFailed."""
        ...

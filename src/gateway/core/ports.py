"""What the core needs from the outside world, as Protocols; tests pass fakes."""

from __future__ import annotations

from typing import Protocol

from gateway.core.quotes import DayBar
from marketcore.instruments import InstrumentKey


class QuoteStore(Protocol):
    """Stored market data (Cassandra). Methods raise ``errors.QuoteStoreError`` on failure."""

    async def day_bars(self, key: InstrumentKey, limit: int) -> list[DayBar]:
        """The instrument's most recent daily bars, newest first."""
        ...

    async def latest_payload(self, key: InstrumentKey, trade_date: str) -> bytes | None:
        """The newest stored tick of that trading day (PriceUpdate bytes), or None."""
        ...


class Feed(Protocol):
    """Where ticks come from (Kafka in production). ``start`` blocks until the feed is
    positioned, then delivers on its own; ``stop`` blocks until it has stopped."""

    def start(self, timeout_s: float) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...

    @property
    def alive(self) -> bool: ...

    @property
    def crashed(self) -> BaseException | None: ...

    @property
    def connected(self) -> bool:
        """Reaches its source (Kafka: a broker connected, in the latest statistics)."""
        ...

"""Ticks already seen, dropped before the quote view, the streams or the trading desk. Pure.

Kafka delivers ``ticks.raw`` at least once: after a broker outage longer than the feed
handler's delivery timeout, a record reported as timed out may have been written, and the
handler's retry writes it again (seen: 29,589 duplicates in one run). The tick writer is
idempotent by primary key; the gateway drops them here.

Rule: ``feed_sequence`` counts the ticks of one (feed_handler_id, exchange, symbol) from 1
(``marketcore.normalization``), so per instrument and feed handler a tick whose sequence is not
greater than the last one seen is a duplicate, when it is also no later in event time than the
last one seen. The second condition keeps a feed handler that restarted under a fixed id
(``FEED_HANDLER_ID`` set by hand; by default each process has its own id): its count starts at 1
again, but its ticks are new, so they are taken and the count follows them. A tick without a
sequence (0: not known) is never called a duplicate.

Memory is bounded whatever the producer writes: at most ``max_entries`` (instrument, feed
handler id) pairs, the oldest entered forgotten first, so a producer inventing ids or symbols
cannot grow it. A duplicate of a forgotten pair is taken (the quote view's "never older than the
latest" rule still stands behind it); a fresh tick is never dropped. (Oldest entered, not least
recently seen: keeping recency costs a reordering per tick, more than the check itself, and a
busy pair forgotten is entered again by its next tick.)
"""

from __future__ import annotations

DEFAULT_MAX_ENTRIES = 200_000  # pairs; about 200 bytes each


class SeenTicks:
    """The last (feed_sequence, event time) per (exchange, symbol, feed handler id)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("SeenTicks needs room for at least one entry")
        self._max_entries = max_entries
        # plain strings in the key: their hashes are cached, so a lookup costs one tuple hash
        self._last: dict[tuple[str, str, str], tuple[int, int]] = {}
        self.evicted = 0  # entries forgotten to stay within bounds, ever

    def is_duplicate(
        self, exchange: str, symbol: str, feed_handler_id: str, feed_sequence: int, event_ns: int
    ) -> bool:
        """Whether this tick was seen already; when it was not, remember it."""
        if feed_sequence <= 0:
            return False
        entry = (exchange, symbol, feed_handler_id)
        last = self._last.get(entry)
        if last is None:
            if len(self._last) >= self._max_entries:
                del self._last[next(iter(self._last))]
                self.evicted += 1
            self._last[entry] = (feed_sequence, event_ns)
            return False
        last_sequence, last_event_ns = last
        if feed_sequence > last_sequence:
            self._last[entry] = (feed_sequence, max(last_event_ns, event_ns))
            return False
        if event_ns > last_event_ns:  # the count restarted under the same id: new ticks
            self._last[entry] = (feed_sequence, event_ns)
            return False
        return True

    def __len__(self) -> int:
        """Entries held: (instrument, feed handler id) pairs."""
        return len(self._last)

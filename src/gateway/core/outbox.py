"""One subscriber's conflating outbox: what a price stream sends next, and when.

Rules (StreamPrices and StreamPriceBatches alike):
- Conflation: at most one pending update per instrument; a newer one replaces it (latest
  value wins), so memory is bounded by the instruments subscribed, whatever the client's pace.
- Throttle: an instrument is sent at most once per ``throttle_ns`` window; 0 sends as soon as
  the client takes it.
- Order: per instrument, values go out in the order they were offered, and never an older one
  after a newer one (the pending slot only ever moves forward).
- Fairness: among ready instruments, the one waiting longest goes first.
- Slow client: conflation keeps it current instead of queueing; if its oldest pending update
  has waited more than ``max_lag_ns`` it is cut off (the adapter ends the stream with
  RESOURCE_EXHAUSTED and the reason from ``lag_exceeded``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Update = TypeVar("Update")


@dataclass(slots=True)
class _Slot(Generic[Update]):
    update: Update
    waiting_since_ns: int  # when the oldest value this slot replaced was offered


@dataclass(slots=True)
class Outbox(Generic[Key, Update]):
    throttle_ns: int = 0
    max_lag_ns: int = 5_000_000_000
    _pending: dict[Key, _Slot[Update]] = field(default_factory=dict)
    _last_sent_ns: dict[Key, int] = field(default_factory=dict)
    conflated: int = 0  # updates replaced before they were sent

    def offer(self, key: Key, update: Update, now_ns: int) -> None:
        slot = self._pending.get(key)
        if slot is None:
            self._pending[key] = _Slot(update, now_ns)
        else:
            slot.update = update  # latest wins; the slot keeps its place and its age
            self.conflated += 1

    def take(self, now_ns: int, max_count: int) -> list[Update]:
        """Up to ``max_count`` updates whose throttle window has passed, longest waiting first."""
        ready = [
            (slot.waiting_since_ns, key)
            for key, slot in self._pending.items()
            if now_ns - self._last_sent_ns.get(key, -self.throttle_ns) >= self.throttle_ns
        ]
        ready.sort(key=lambda item: item[0])
        taken = []
        for _, key in ready[:max_count]:
            taken.append(self._pending.pop(key).update)
            self._last_sent_ns[key] = now_ns
        return taken

    def next_ready_ns(self) -> int | None:
        """When the next pending update may be sent (now or later), or None when nothing waits."""
        if not self._pending:
            return None
        return min(
            self._last_sent_ns.get(key, -self.throttle_ns) + self.throttle_ns
            for key in self._pending
        )

    def lag_exceeded(self, now_ns: int) -> str | None:
        """Why this subscriber must be cut off, or None while it keeps up."""
        if not self._pending:
            return None
        oldest = min(slot.waiting_since_ns for slot in self._pending.values())
        lag_ns = now_ns - oldest
        if lag_ns > self.max_lag_ns:
            return (
                f"client too slow: an update waited {lag_ns // 1_000_000} ms "
                f"(limit {self.max_lag_ns // 1_000_000} ms); "
                f"{len(self._pending)} instruments pending"
            )
        return None

    def __len__(self) -> int:
        return len(self._pending)

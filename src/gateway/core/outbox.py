"""One subscriber's conflating outbox: what a price stream sends next, and when.

Rules (StreamPrices and StreamPriceBatches alike):
- Depth: at most ``depth`` pending values per instrument. Throttled streams use 1 (one value per
  window: the latest). Unthrottled streams use a few (``GATEWAY_STREAM_DEPTH``), so a client
  that keeps up gets every tick even when Kafka hands the gateway a burst of one instrument at
  once; memory stays bounded by instruments x depth, whatever the client's pace. Queued values
  are for bursts only: once the oldest has waited ``queue_max_age_ns``, an instrument's queue
  collapses to its latest value (conflation), so a client that falls behind catches up on
  fresh prices instead of working through stale ones (checked in ``lag_exceeded``).
- Conflation: when an instrument's values fill its depth, a newer one replaces the newest
  pending one (latest value wins); the older pending ones still go out first.
- Throttle: an instrument is sent at most once per ``throttle_ns`` window; 0 sends as soon as
  the client takes it.
- Order: per instrument, values go out in the order they were offered, and never an older one
  after a newer one (the caller offers only values newer than the last one it offered, see
  ``quotes.QuoteBook.apply``).
- Fairness: among ready instruments, the one waiting longest goes first. The pending dict is
  kept in waiting order (a replaced value keeps its place; an instrument with more values
  goes to the back after each send), so no sort is needed.
- Slow client: conflation keeps it current instead of queueing without end; if a value has been
  ready to send (offered, and out of its throttle window) for more than ``max_lag_ns`` without
  the client taking it, the client is cut off (the adapter ends the stream with
  RESOURCE_EXHAUSTED and the reason from ``lag_exceeded``). Time spent inside the throttle
  window is the client's choice and never counts as lag.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Update = TypeVar("Update")


@dataclass(slots=True)
class _Slot(Generic[Update]):
    """An instrument's pending values, oldest first; ``since_ns[i]`` is when ``values[i]``
    (or the oldest value it replaced) was offered."""

    values: deque[Update]
    since_ns: deque[int]

    @property
    def waiting_since_ns(self) -> int:
        return self.since_ns[0]


@dataclass(slots=True)
class Outbox(Generic[Key, Update]):
    throttle_ns: int = 0
    max_lag_ns: int = 5_000_000_000
    depth: int = 1
    queue_max_age_ns: int = 100_000_000
    _pending: dict[Key, _Slot[Update]] = field(default_factory=dict)
    _last_sent_ns: dict[Key, int] = field(default_factory=dict)
    _count: int = 0  # values pending, all instruments together
    conflated: int = 0  # updates replaced before they were sent

    def offer(self, key: Key, update: Update, now_ns: int) -> bool:
        """Queue ``update`` for ``key``; True when it added a value to send (the sender may have
        something new), False when it replaced a pending one (conflation)."""
        slot = self._pending.get(key)
        if slot is None:
            self._pending[key] = _Slot(deque((update,)), deque((now_ns,)))
            self._count += 1
            return True
        if len(slot.values) < self.depth:
            slot.values.append(update)
            slot.since_ns.append(now_ns)
            self._count += 1
            return True
        slot.values[-1] = update  # latest wins; the value keeps its place and its age
        self.conflated += 1
        return False

    def seed(self, key: Key, update: Update, now_ns: int) -> bool:
        """Offer ``update`` only if nothing was ever offered for ``key`` (a snapshot read late,
        for example from the store, must not overtake a live value); True when it was taken."""
        if key in self._pending or key in self._last_sent_ns:
            return False
        self._pending[key] = _Slot(deque((update,)), deque((now_ns,)))
        self._count += 1
        return True

    def take(self, now_ns: int, max_count: int) -> list[Update]:
        """Up to ``max_count`` updates whose throttle window has passed, longest waiting first
        (one value per instrument per round, so one busy instrument cannot starve the rest)."""
        taken: list[Update] = []
        pending = self._pending
        throttle_ns = self.throttle_ns
        last_sent = self._last_sent_ns
        while pending and len(taken) < max_count:
            keys: list[Key] = []
            for key in pending:
                if throttle_ns and now_ns - last_sent.get(key, now_ns - throttle_ns) < throttle_ns:
                    continue
                keys.append(key)
                if len(keys) + len(taken) >= max_count:
                    break
            if not keys:
                break
            for key in keys:
                slot = pending.pop(key)
                taken.append(slot.values.popleft())
                slot.since_ns.popleft()
                last_sent[key] = now_ns
                if slot.values:
                    pending[key] = slot  # to the back: the others have waited longer
            self._count -= len(keys)
        return taken

    def pending(self) -> list[Update]:
        """Everything pending, in waiting order, left in place."""
        return [update for slot in self._pending.values() for update in slot.values]

    def drain(self) -> list[Update]:
        """Everything pending, in waiting order, whatever the throttle (the stream is ending)."""
        taken = self.pending()
        self._pending.clear()
        self._count = 0
        return taken

    def next_ready_ns(self) -> int | None:
        """When the next pending update may be sent, or None when nothing waits. Unthrottled,
        every pending update is ready: the answer is the first in line's offer time (in the
        past), found without a scan."""
        if not self._pending:
            return None
        if not self.throttle_ns:
            return next(iter(self._pending.values())).since_ns[0]
        return min(self._ready_ns(key, slot) for key, slot in self._pending.items())

    def lag_exceeded(self, now_ns: int) -> str | None:
        """Why this subscriber must be cut off, or None while it keeps up. Collapses queues
        whose oldest value is older than ``queue_max_age_ns`` first: lag is judged on the
        freshest values, so only a client that cannot keep up even with those is cut off."""
        if not self._pending:
            return None
        if self.depth > 1:
            self._collapse_stale(now_ns)
        oldest = min(self._ready_ns(key, slot) for key, slot in self._pending.items())
        lag_ns = now_ns - oldest
        if lag_ns > self.max_lag_ns:
            return (
                f"client too slow: an update waited {lag_ns // 1_000_000} ms "
                f"(limit {self.max_lag_ns // 1_000_000} ms); "
                f"{len(self._pending)} instruments pending"
            )
        return None

    def _collapse_stale(self, now_ns: int) -> None:
        oldest_allowed_ns = now_ns - self.queue_max_age_ns
        for slot in self._pending.values():
            queued = len(slot.values)
            if queued > 1 and slot.since_ns[0] < oldest_allowed_ns:
                # latest wins and keeps the queue's age, as any conflated value does: a
                # client that stopped reading is still cut off while the feed flows
                latest, since = slot.values[-1], slot.since_ns[0]
                slot.values.clear()
                slot.since_ns.clear()
                slot.values.append(latest)
                slot.since_ns.append(since)
                self.conflated += queued - 1
                self._count -= queued - 1

    def _ready_ns(self, key: Key, slot: _Slot[Update]) -> int:
        if not self.throttle_ns:
            return slot.waiting_since_ns
        window_end = self._last_sent_ns.get(key, slot.waiting_since_ns - self.throttle_ns)
        return max(slot.waiting_since_ns, window_end + self.throttle_ns)

    def __len__(self) -> int:
        """Values pending (all instruments)."""
        return self._count

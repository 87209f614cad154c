"""Fan-out of feed updates to subscribers. Pure: the caller supplies time and the wake-up.

Each update arrives once (decoded once, its bytes kept) and is offered, as the same object, to
the outbox of every subscriber whose subscription matches; nothing is copied or encoded per
subscriber here. Subscribers are indexed by symbol, so an update costs one dict lookup plus
one ``Outbox.offer`` per matching subscriber, and nothing for the others.

A subscriber's ``wake`` (a callable port: the adapter passes an ``asyncio.Event.set``) is
called when its outbox gains a value to send, so an idle sender resumes; a busy one finds the
update when it next takes from its outbox. Replacing a pending value wakes nobody. A batching
sender that waits for its batch to fill raises ``wake_at`` to the batch size meanwhile, so it
is woken once when the batch is full instead of once per update (its own timer covers the
batch's max delay).

Sequence numbers: ``Subscriber.number`` assigns 1, 2, 3... to the updates of one stream in the
order they are sent. Conflated updates never reach the wire and take no number, so numbers
are contiguous; a client that sees a gap lost a message after the gateway sent it.

Issue 7 (batches built once per subscription shape) hooks in at ``Subscriber``: subscribers of
one ``Subscription`` can share a group outbox and an encoded batch while they keep pace, and
fall back to their own outbox when one falls behind; the index and ``publish`` stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gateway.core.outbox import Outbox
from gateway.core.subscriptions import Subscription
from marketcore.instruments import InstrumentKey

Update = TypeVar("Update")


class Subscriber(Generic[Update]):
    __slots__ = ("closing", "cut_reason", "outbox", "sent", "subscription", "wake", "wake_at")

    def __init__(
        self,
        subscription: Subscription,
        wake: Callable[[], None],
        max_lag_ns: int,
        unthrottled_depth: int = 1,
    ) -> None:
        self.subscription = subscription
        self.wake = wake
        self.outbox: Outbox[InstrumentKey, Update] = Outbox(
            throttle_ns=subscription.throttle_ns,
            max_lag_ns=max_lag_ns,
            # a throttled stream sends one value per window: the latest is all it needs
            depth=1 if subscription.throttle_ns else unthrottled_depth,
        )
        self.sent = 0  # the last stream_sequence assigned
        self.wake_at = 1  # wake the sender when this many values are pending
        self.cut_reason: str | None = None  # set when cut off for being too slow
        self.closing: str | None = None  # set when the server ends every stream (shutdown)

    def number(self, count: int) -> int:
        """Reserve ``count`` sequence numbers; returns the first."""
        first = self.sent + 1
        self.sent += count
        return first

    @property
    def done(self) -> bool:
        return self.cut_reason is not None or self.closing is not None


class FanOut(Generic[Update]):
    def __init__(self, max_lag_ns: int, unthrottled_depth: int = 1) -> None:
        self._max_lag_ns = max_lag_ns
        self._unthrottled_depth = unthrottled_depth
        self._by_symbol: dict[str, list[Subscriber[Update]]] = {}
        self._subscribers: set[Subscriber[Update]] = set()
        self.offered = 0  # updates offered to outboxes, all subscribers together

    def add(self, subscription: Subscription, wake: Callable[[], None]) -> Subscriber[Update]:
        subscriber: Subscriber[Update] = Subscriber(
            subscription, wake, self._max_lag_ns, self._unthrottled_depth
        )
        self._subscribers.add(subscriber)
        for symbol in subscription.symbols:
            self._by_symbol.setdefault(symbol, []).append(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber[Update]) -> None:
        if subscriber not in self._subscribers:
            return
        self._subscribers.discard(subscriber)
        for symbol in subscriber.subscription.symbols:
            subscribers = self._by_symbol.get(symbol)
            if subscribers is None:
                continue
            subscribers.remove(subscriber)
            if not subscribers:
                del self._by_symbol[symbol]

    def publish(self, key: InstrumentKey, update: Update, now_ns: int) -> int:
        """Offer ``update`` to every matching subscriber; returns how many matched."""
        subscribers = self._by_symbol.get(key.symbol)
        if not subscribers:
            return 0
        exchange = key.exchange
        matched = 0
        for subscriber in subscribers:
            wanted = subscriber.subscription.exchange
            if wanted is not None and wanted != exchange:
                continue
            matched += 1
            outbox = subscriber.outbox
            if outbox.offer(key, update, now_ns) and len(outbox) >= subscriber.wake_at:
                subscriber.wake()
        self.offered += matched
        return matched

    def lagging(self, now_ns: int) -> list[tuple[Subscriber[Update], str]]:
        """Subscribers past the lag limit, with the reason; the caller cuts them off."""
        found = []
        for subscriber in self._subscribers:
            if subscriber.outbox and not subscriber.done:
                reason = subscriber.outbox.lag_exceeded(now_ns)
                if reason is not None:
                    found.append((subscriber, reason))
        return found

    def close_all(self, reason: str) -> int:
        """Tell every subscriber to send what is pending and end (the server is stopping)."""
        for subscriber in self._subscribers:
            subscriber.closing = reason
            subscriber.wake()
        return len(self._subscribers)

    def __iter__(self) -> Iterator[Subscriber[Update]]:
        return iter(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)

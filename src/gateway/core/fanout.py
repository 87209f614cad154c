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

Shared batches (``share``): batched, unthrottled streams of one ``Subscription`` (a "shape")
form a ``ShapeGroup`` once there are two. The group's lead stands in the index for all of them,
so an update is offered and taken once per shape; the caller takes each batch from the lead's
outbox and ``deliver`` queues it, as the same list, in every member's ``inbox``. Each stream
still numbers and stamps its own messages. The rules that keep a member's stream exactly what
its own outbox would have sent:

- Join: a waiting stream joins at a ``deliver`` that left the lead's outbox empty. Every update
  offered to the lead before that moment has been delivered (without it), and every one offered
  to the stream itself is either sent or still in its own outbox, which moves to its inbox
  ahead of the group's next batch. Nothing is lost, repeated or reordered.
- Keeping pace: a member whose oldest queued batch has waited ``queue_max_age_ns`` (the same
  age at which an outbox collapses a burst queue) is detached: its queued batches, and what the
  lead still holds, are offered to its own outbox, which conflates them, and it is indexed
  again. It rejoins only once its own outbox is empty at a join moment (caught up), so a
  stalled client cannot escape the lag limit by rejoining.
- Lag: a member's lag is its oldest queued batch's age; it is cut off past ``max_lag_ns`` as
  any stream is.
- A group stops when fewer than two streams share it; the last member is detached.
Throttled streams never share: their windows are per stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic

from gateway.core.subscriber import Delivery, ShapeGroup, Subscriber, Update
from gateway.core.subscriptions import Subscription
from marketcore.instruments import InstrumentKey

__all__ = ["Delivery", "FanOut", "ShapeGroup", "Subscriber"]


def _nobody() -> None:
    """A group's wake until its driver is attached."""


class FanOut(Generic[Update]):
    def __init__(
        self,
        max_lag_ns: int,
        unthrottled_depth: int = 1,
        queue_max_age_ns: int = 100_000_000,
    ) -> None:
        self._max_lag_ns = max_lag_ns
        self._unthrottled_depth = unthrottled_depth
        self._queue_max_age_ns = queue_max_age_ns
        self._by_symbol: dict[str, list[Subscriber[Update]]] = {}
        self._subscribers: set[Subscriber[Update]] = set()
        self._groups: dict[Subscription, ShapeGroup[Update]] = {}
        self.offered = 0  # updates offered to outboxes, all subscribers together

    def add(self, subscription: Subscription, wake: Callable[[], None]) -> Subscriber[Update]:
        subscriber = self._new_subscriber(subscription, wake)
        self._subscribers.add(subscriber)
        self._index(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber[Update], now_ns: int) -> ShapeGroup[Update] | None:
        """Forget ``subscriber``; returns its shape's group when this stopped it (the caller
        stops the group's driver)."""
        if subscriber not in self._subscribers:
            return None
        self._subscribers.discard(subscriber)
        group = subscriber.group
        if subscriber.joined:
            assert group is not None
            group.members.remove(subscriber)
            subscriber.joined = False
        else:
            self._unindex(subscriber)
            if group is not None:
                group.waiting.remove(subscriber)
        if group is None or group.active:
            return None
        if not group.members and not group.waiting:
            del self._groups[group.shape]
        if not group.running:
            return None
        for member in list(group.members):  # the last one
            self._detach(group, member, (), now_ns)
        group.lead.outbox.drain()
        self._unindex(group.lead)
        group.running = False
        return group

    def publish(self, key: InstrumentKey, update: Update, now_ns: int) -> int:
        """Offer ``update`` to every matching subscriber; returns how many outboxes took it (a
        shape group's lead counts once for all its members)."""
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

    # -- shared batches ----------------------------------------------------------------------

    def share(self, subscriber: Subscriber[Update]) -> ShapeGroup[Update] | None:
        """Let ``subscriber`` (a batched stream whose snapshot is queued) take the batches its
        shape's group builds. Returns the group when this started it: the caller then drives it
        (sets ``group.lead.wake``, takes batches from ``group.lead.outbox``, calls
        ``deliver``)."""
        shape = subscriber.subscription
        if shape.throttle_ns or subscriber.group is not None or subscriber.done:
            return None
        if subscriber not in self._subscribers:
            return None
        group = self._groups.get(shape)
        if group is None:
            group = self._groups[shape] = ShapeGroup(self._new_subscriber(shape, _nobody))
        subscriber.group = group
        group.waiting.append(subscriber)
        if not group.active or group.running:
            return None
        group.running = True
        self._index(group.lead)
        return group

    def deliver(self, group: ShapeGroup[Update], batch: list[Update], now_ns: int) -> None:
        """Queue ``batch`` (taken from the group's lead outbox) for every member; a member too
        far behind goes back to its own outbox; waiting streams join when they can."""
        if batch:
            delivery = Delivery(now_ns, batch)
            oldest_allowed_ns = now_ns - self._queue_max_age_ns
            behind = None
            for member in group.members:
                inbox = member.inbox
                if inbox and inbox[0].at_ns < oldest_allowed_ns:
                    behind = [member] if behind is None else [*behind, member]
                    continue
                inbox.append(delivery)
                if len(inbox) == 1:
                    member.wake()
            for member in behind or ():
                self._detach(group, member, batch, now_ns)
        if group.waiting and not group.lead.outbox:
            self._join_waiting(group, now_ns)

    def _join_waiting(self, group: ShapeGroup[Update], now_ns: int) -> None:
        still_waiting = []
        for subscriber in group.waiting:
            outbox = subscriber.outbox
            if subscriber.done or (subscriber.was_detached and outbox):
                still_waiting.append(subscriber)
                continue
            size = subscriber.subscription.max_batch_size
            pending = outbox.drain()
            for start in range(0, len(pending), size):
                subscriber.inbox.append(Delivery(now_ns, pending[start : start + size]))
            self._unindex(subscriber)
            subscriber.joined = True
            group.members.append(subscriber)
            if subscriber.inbox:
                subscriber.wake()
        group.waiting = still_waiting

    def _detach(
        self,
        group: ShapeGroup[Update],
        member: Subscriber[Update],
        undelivered: Sequence[Update],
        now_ns: int,
    ) -> None:
        """Back to its own outbox, with everything the group owes it, in order: its queued
        batches, the batch being delivered, and what the lead still holds."""
        group.members.remove(member)
        member.joined = False
        member.was_detached = True
        outbox = member.outbox
        for delivery in member.inbox:
            for update in delivery.updates:
                outbox.offer(update.key, update, delivery.at_ns)
        member.inbox.clear()
        for update in (*undelivered, *group.lead.outbox.pending()):
            outbox.offer(update.key, update, now_ns)
        self._index(member)
        group.waiting.append(member)
        member.wake()

    # -- slow clients and shutdown -----------------------------------------------------------

    def lagging(self, now_ns: int) -> list[tuple[Subscriber[Update], str]]:
        """Subscribers past the lag limit, with the reason; the caller cuts them off."""
        found = []
        for subscriber in self._subscribers:
            if subscriber.done:
                continue
            if subscriber.joined:
                reason = self._inbox_lag_exceeded(subscriber, now_ns)
            elif subscriber.outbox:
                reason = subscriber.outbox.lag_exceeded(now_ns)
            else:
                continue
            if reason is not None:
                found.append((subscriber, reason))
        return found

    def _inbox_lag_exceeded(self, member: Subscriber[Update], now_ns: int) -> str | None:
        inbox = member.inbox
        if not inbox:
            return None
        lag_ns = now_ns - inbox[0].at_ns
        if lag_ns <= self._max_lag_ns:
            return None
        return (
            f"client too slow: a batch waited {lag_ns // 1_000_000} ms "
            f"(limit {self._max_lag_ns // 1_000_000} ms); {len(inbox)} batches pending"
        )

    def close_all(self, reason: str, now_ns: int) -> int:
        """Tell every subscriber to send what is pending and end (the server is stopping).
        What a group's lead holds is handed to its members first, and the lead leaves the
        index: a closing stream receives nothing more."""
        for group in self._groups.values():
            if group.running:
                self._unindex(group.lead)
                pending = group.lead.outbox.drain()
                size = group.shape.max_batch_size
                for start in range(0, len(pending), size):
                    delivery = Delivery(now_ns, pending[start : start + size])
                    for member in group.members:
                        member.inbox.append(delivery)
        for subscriber in self._subscribers:
            subscriber.closing = reason
            subscriber.wake()
        return len(self._subscribers)

    # -- the index ---------------------------------------------------------------------------

    def _new_subscriber(
        self, subscription: Subscription, wake: Callable[[], None]
    ) -> Subscriber[Update]:
        return Subscriber(
            subscription, wake, self._max_lag_ns, self._unthrottled_depth, self._queue_max_age_ns
        )

    def _index(self, subscriber: Subscriber[Update]) -> None:
        for symbol in subscriber.subscription.symbols:
            self._by_symbol.setdefault(symbol, []).append(subscriber)

    def _unindex(self, subscriber: Subscriber[Update]) -> None:
        for symbol in subscriber.subscription.symbols:
            subscribers = self._by_symbol.get(symbol)
            if subscribers is None or subscriber not in subscribers:
                continue
            subscribers.remove(subscriber)
            if not subscribers:
                del self._by_symbol[symbol]

    @property
    def groups(self) -> int:
        """Shape groups being driven."""
        return sum(1 for group in self._groups.values() if group.running)

    def __iter__(self) -> Iterator[Subscriber[Update]]:
        return iter(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)

"""One price stream's state in the fan-out, and the group that builds batches once for the
streams of one subscription shape. Pure: plain state, the rules are in ``fanout``."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from gateway.core.outbox import Outbox
from gateway.core.subscriptions import Subscription
from marketcore.instruments import InstrumentKey


class Keyed(Protocol):
    @property
    def key(self) -> InstrumentKey: ...


Update = TypeVar("Update", bound=Keyed)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[Update]):
    """A batch a shape group built, handed to a member at ``at_ns`` (its age counts as lag)."""

    at_ns: int
    updates: list[Update]


class Subscriber(Generic[Update]):
    """A stream: its own conflating outbox, or, while it shares, the batches its group hands
    it (``inbox``); and the sequence numbers it has sent."""

    __slots__ = (
        "closing", "cut_reason", "group", "inbox", "joined", "outbox", "sent", "subscription",
        "wake", "wake_at", "was_detached",
    )  # fmt: skip

    def __init__(
        self,
        subscription: Subscription,
        wake: Callable[[], None],
        max_lag_ns: int,
        unthrottled_depth: int = 1,
        queue_max_age_ns: int = 100_000_000,
    ) -> None:
        self.subscription = subscription
        self.wake = wake
        self.outbox: Outbox[InstrumentKey, Update] = Outbox(
            throttle_ns=subscription.throttle_ns,
            max_lag_ns=max_lag_ns,
            # a throttled stream sends one value per window: the latest is all it needs
            depth=1 if subscription.throttle_ns else unthrottled_depth,
            queue_max_age_ns=queue_max_age_ns,
        )
        self.sent = 0  # the last stream_sequence assigned
        self.wake_at = 1  # wake the sender when this many values are pending
        self.cut_reason: str | None = None  # set when cut off for being too slow
        self.closing: str | None = None  # set when the server ends every stream (shutdown)
        self.group: ShapeGroup[Update] | None = None  # its shape's group, once it shares
        self.joined = False  # fed by its group's batches, not by the fan-out index
        self.inbox: deque[Delivery[Update]] = deque()  # the group's batches, oldest first
        self.was_detached = False  # fell behind its group once: rejoins only when caught up

    def number(self, count: int) -> int:
        """Reserve ``count`` sequence numbers; returns the first."""
        first = self.sent + 1
        self.sent += count
        return first

    @property
    def done(self) -> bool:
        return self.cut_reason is not None or self.closing is not None


class ShapeGroup(Generic[Update]):
    """The batched, unthrottled streams of one ``Subscription``. The group's ``lead`` stands in
    the fan-out index for all of them: an update is offered once to the lead's outbox, the
    caller takes batches from it and ``FanOut.deliver`` hands each batch to every member.
    ``waiting`` streams share the shape but are fed by their own outbox until they can join."""

    __slots__ = ("lead", "members", "running", "waiting")

    def __init__(self, lead: Subscriber[Update]) -> None:
        self.lead = lead
        self.members: list[Subscriber[Update]] = []
        self.waiting: list[Subscriber[Update]] = []
        self.running = False  # the lead is indexed and driven

    @property
    def shape(self) -> Subscription:
        return self.lead.subscription

    @property
    def active(self) -> bool:
        """Shared by two streams or more: only then is the lead fed (and driven)."""
        return len(self.members) + len(self.waiting) >= 2

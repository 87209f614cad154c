"""A price update as the gateway handles it: decoded once, its wire bytes kept. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from marketcore.instruments import InstrumentKey
from marketcore.ticks import Tick


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """One tick from ``ticks.raw``: the domain view, and the ``PriceUpdate`` bytes exactly as
    they arrived (one schema everywhere), which every stream sends without re-encoding."""

    key: InstrumentKey
    tick: Tick
    payload: bytes
    record_time_ns: int = 0  # its Kafka record's timestamp (0: not from Kafka, or none)

    @property
    def event_ns(self) -> int:
        """Venue time when the venue gave one, else our receipt time (the tick writer's rule)."""
        tick = self.tick
        return tick.event_time_ns if tick.event_time_ns > 0 else tick.received_time_ns


def is_newer(update: FeedUpdate, current: FeedUpdate) -> bool:
    """Whether ``update`` supersedes ``current`` (same instrument) as its latest value.

    Later event time wins. At the same event time, a later ``feed_sequence`` of the same feed
    handler wins, and an identical tick (a redelivery) does not; ticks of different handlers
    at the same nanosecond are both taken, in arrival order.
    """
    new_ns, old_ns = update.event_ns, current.event_ns
    if new_ns != old_ns:
        return new_ns > old_ns
    new, old = update.tick, current.tick
    if new.feed_handler_id == old.feed_handler_id:
        if new.feed_sequence or old.feed_sequence:
            return new.feed_sequence > old.feed_sequence
        return update.payload != current.payload
    return True


def day_price_nanos(tick: Tick) -> int:
    """The price a tick contributes to the day's bar: the last trade, else the mid of a two-sided
    quote, else 0 (none). The tick writer's ``daily_bars`` use the same rule."""
    if tick.last_nanos > 0:
        return tick.last_nanos
    if tick.bid_nanos > 0 and tick.ask_nanos > 0:
        return (tick.bid_nanos + tick.ask_nanos) // 2
    return 0

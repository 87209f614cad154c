"""Domain tick -> ``PriceUpdate`` bytes, in the feed hot path (``marketinfra.tick_codec``)."""

from __future__ import annotations

from marketcore.ticks import Tick
from marketinfra.tick_codec import tick_to_proto


def encode_tick(tick: Tick, feed_handler_id: str, feed_sequence: int) -> bytes:
    return tick_to_proto(
        tick, feed_handler_id=feed_handler_id, feed_sequence=feed_sequence
    ).SerializeToString()

"""Domain tick -> ``PriceUpdate`` bytes: where the proto message is built (and only here)."""

from __future__ import annotations

from financial.marketdata.v1.prices_pb2 import PriceUpdate
from marketcore.ticks import Tick


def encode_tick(tick: Tick, feed_handler_id: str, feed_sequence: int) -> bytes:
    return PriceUpdate(
        exchange=tick.exchange,
        symbol=tick.symbol,
        bid_micros=tick.bid_micros,
        ask_micros=tick.ask_micros,
        last_micros=tick.last_micros,
        volume_micros=tick.volume_micros,
        event_time_ns=tick.event_time_ns,
        received_time_ns=tick.received_time_ns,
        feed_handler_id=feed_handler_id,
        venue_symbol=tick.venue_symbol,
        bid_size_micros=tick.bid_size_micros,
        ask_size_micros=tick.ask_size_micros,
        last_size_micros=tick.last_size_micros,
        feed_sequence=feed_sequence,
    ).SerializeToString()

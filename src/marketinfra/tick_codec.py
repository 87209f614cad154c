"""The one schema's ``PriceUpdate`` read into the domain's ``Tick``: shared by every service
that consumes ``ticks.raw`` (the tick writer, the gateway), so both read the same fields."""

from __future__ import annotations

from financial.marketdata.v1.prices_pb2 import PriceUpdate
from marketcore.ticks import Tick


def tick_from_proto(update: PriceUpdate) -> Tick:
    return Tick(
        exchange=update.exchange,
        symbol=update.symbol,
        bid_micros=update.bid_micros,
        ask_micros=update.ask_micros,
        last_micros=update.last_micros,
        volume_micros=update.volume_micros,
        bid_size_micros=update.bid_size_micros,
        ask_size_micros=update.ask_size_micros,
        last_size_micros=update.last_size_micros,
        event_time_ns=update.event_time_ns,
        received_time_ns=update.received_time_ns,
        feed_handler_id=update.feed_handler_id,
        venue_symbol=update.venue_symbol,
        feed_sequence=update.feed_sequence,
    )

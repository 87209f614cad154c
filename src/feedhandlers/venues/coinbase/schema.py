"""Coinbase Exchange WebSocket feed: the messages we send and the ones we read.

One JSON object per frame, ``"type"`` says which. Prices and sizes are decimal strings;
times are ISO 8601 UTC with microseconds.

Read (channel -> types):
- ``level2``: ``snapshot`` {product_id, bids: [[price, size]], asks} then ``l2update``
  {product_id, changes: [[side "buy"|"sell", price, size]], time}; size "0" removes a level.
- ``ticker``: {product_id, price, best_bid, best_ask, [best_bid_size, best_ask_size],
  volume_24h, last_size, time, sequence}. The first one on subscribe describes an older
  trade (its best bid/ask may be stale).
- ``matches``: ``last_match`` (on subscribe) then ``match`` {product_id, price, size, time,
  sequence, trade_id}.
- ``heartbeat``: {product_id, sequence, last_trade_id, time}, once a second per product.
- ``subscriptions`` (acknowledgement), ``error`` {message, reason}.

Product ids are already ``BASE-QUOTE`` (``BTC-USD``): the normalized symbol is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

EXCHANGE = "COINBASE"
DEFAULT_URL = "wss://ws-feed.exchange.coinbase.com"
CHANNELS = ("level2", "ticker", "matches", "heartbeat")

SNAPSHOT = "snapshot"
L2UPDATE = "l2update"
TICKER = "ticker"
MATCH = "match"
LAST_MATCH = "last_match"
HEARTBEAT = "heartbeat"
SUBSCRIPTIONS = "subscriptions"
ERROR = "error"
BUY = "buy"
SELL = "sell"


def subscribe_message(product_ids: Sequence[str], channels: Sequence[str] = CHANNELS) -> bytes:
    return orjson.dumps(
        {"type": "subscribe", "product_ids": list(product_ids), "channels": list(channels)}
    )


def unsubscribe_message(product_ids: Sequence[str], channels: Sequence[str]) -> bytes:
    return orjson.dumps(
        {"type": "unsubscribe", "product_ids": list(product_ids), "channels": list(channels)}
    )


def venue_symbol(symbol: str) -> str:
    """Our symbol -> Coinbase's product id (the same spelling)."""
    return symbol.upper()


def normalized_symbol(product_id: str) -> str:
    return product_id.upper()

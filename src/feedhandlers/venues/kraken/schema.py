"""Kraken WebSocket API v1 (public): what we send and what we read.

Events are JSON objects with ``"event"``: ``heartbeat`` (about once a second when nothing
else is sent), ``systemStatus``, ``subscriptionStatus`` (``status`` ``subscribed`` |
``unsubscribed`` | ``error`` with ``errorMessage``), ``pong``.

Data are JSON arrays ``[channelID, payload..., channelName, pair]``:
- ticker: ``{a: [price, wholeLotVolume, lotVolume], b: [...], c: [price, lotVolume],
  v: [today, last24Hours], ...}`` — no event time.
- trade: ``[[price, volume, time, side, orderType, misc], ...]`` (time: decimal seconds).
- book-N: snapshot ``{as: [[price, volume, time]], bs: [...]}``; update ``{a: [...]}``
  and/or ``{b: [...]}``, each level ``[price, volume, time]`` or with a 4th ``"r"``
  (republished after truncation); volume 0 deletes; the last object carries ``c``: the
  CRC32 of the top 10 asks then bids (see ``parse.book_checksum``).

Pairs are ``BASE/QUOTE`` with Kraken's asset names (``XBT/USD``); normalized symbols use
the common names (``BTC-USD``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

EXCHANGE = "KRAKEN"
DEFAULT_URL = "wss://ws.kraken.com"
CHANNELS = ("ticker", "trade", "book")
DEFAULT_BOOK_DEPTH = 10
CHECKSUM_LEVELS = 10

TICKER = "ticker"
TRADE = "trade"
BOOK_PREFIX = "book-"
HEARTBEAT = "heartbeat"
SUBSCRIPTION_STATUS = "subscriptionStatus"

# Kraken asset name -> common name
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_COMMON_TO_KRAKEN = {common: kraken for kraken, common in ASSET_ALIASES.items()}


def subscription(channel: str, depth: int = DEFAULT_BOOK_DEPTH) -> dict[str, object]:
    return {"name": "book", "depth": depth} if channel == "book" else {"name": channel}


def subscribe_message(
    pairs: Sequence[str], channel: str, depth: int = DEFAULT_BOOK_DEPTH, request_id: int = 0
) -> bytes:
    message: dict[str, object] = {
        "event": "subscribe",
        "pair": list(pairs),
        "subscription": subscription(channel, depth),
    }
    if request_id:
        message["reqid"] = request_id
    return orjson.dumps(message)


def unsubscribe_message(
    pairs: Sequence[str], channel: str, depth: int = DEFAULT_BOOK_DEPTH
) -> bytes:
    return orjson.dumps(
        {"event": "unsubscribe", "pair": list(pairs), "subscription": subscription(channel, depth)}
    )


def normalized_symbol(pair: str) -> str | None:
    """``XBT/USD`` -> ``BTC-USD``; None when ``pair`` is not ``BASE/QUOTE``."""
    base, sep, quote = pair.partition("/")
    if not sep or not base or not quote or "/" in quote:
        return None
    base, quote = base.upper(), quote.upper()
    return f"{ASSET_ALIASES.get(base, base)}-{ASSET_ALIASES.get(quote, quote)}"


def venue_symbol(symbol: str) -> str:
    """``BTC-USD`` -> ``XBT/USD``."""
    base, sep, quote = symbol.upper().partition("-")
    if not sep or not base or not quote:
        raise ValueError(f"expected BASE-QUOTE, got {symbol!r}")
    return f"{_COMMON_TO_KRAKEN.get(base, base)}/{_COMMON_TO_KRAKEN.get(quote, quote)}"

"""Binance spot and USD-M futures WebSocket streams: what we send and what we read.

Combined streams wrap each event as ``{"stream": "btcusdt@bookTicker", "data": {...}}``;
raw streams send the event alone. Prices and quantities are decimal strings.

- ``<symbol>@bookTicker``: spot ``{u, s, b, B, a, A}`` (no event time); USD-M futures
  ``{e: "bookTicker", u, E, T, s, b, B, a, A}`` (``T``: transaction time, ms).
- ``<symbol>@aggTrade``: ``{e: "aggTrade", E, s, a, p, q, f, l, T, m[, M]}`` (``T``: trade
  time, ms).
- Replies to our requests: ``{"result": null, "id": 1}``; errors ``{"error": {...}}``.

Symbols are concatenated (``BTCUSDT``); we split them into ``BASE-QUOTE`` with the
instruments we subscribed, else by the longest known quote asset. USD-M perpetuals are
``BASE-QUOTE-PERP``, delivery contracts (``BTCUSDT_240329``) ``BASE-QUOTE-240329``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import orjson


class Market(StrEnum):
    SPOT = "spot"
    USDM = "usdm"


EXCHANGES = {Market.SPOT: "BINANCE", Market.USDM: "BINANCE_USDM"}
DEFAULT_URLS = {
    Market.SPOT: "wss://stream.binance.com:9443/stream",
    Market.USDM: "wss://fstream.binance.com/stream",
}
STREAMS = ("bookTicker", "aggTrade")
BOOK_TICKER = "bookTicker"
AGG_TRADE = "aggTrade"
PERPETUAL_SUFFIX = "PERP"

# Longest first, so that "BUSD" wins over "USD" and "FDUSD" over "USD".
QUOTE_ASSETS = tuple(
    sorted(
        (
            "USDT", "BUSD", "USDC", "FDUSD", "TUSD", "DAI", "USD", "BTC", "ETH", "BNB",
            "EUR", "GBP", "TRY", "AUD", "BRL", "RUB", "UAH", "NGN", "BIDR", "IDRT",
            "ZAR", "PAX", "XRP", "TRX", "DOGE", "DOT", "JPY", "PLN", "RON", "ARS",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip


def stream_names(venue_symbols: Sequence[str], streams: Sequence[str] = STREAMS) -> list[str]:
    return [f"{symbol.lower()}@{stream}" for symbol in venue_symbols for stream in streams]


def subscribe_message(venue_symbols: Sequence[str], request_id: int = 1) -> bytes:
    return orjson.dumps(
        {"method": "SUBSCRIBE", "params": stream_names(venue_symbols), "id": request_id}
    )


def split_symbol(venue_symbol: str) -> tuple[str, str] | None:
    """``NKNUSDT`` -> (``NKN``, ``USDT``) by the longest known quote asset, else None."""
    pair = venue_symbol.partition("_")[0]
    for quote in QUOTE_ASSETS:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    return None


def venue_symbol(symbol: str) -> str:
    """Our ``BTC-USDT`` (or ``BTC-USDT-PERP``, ``BTC-USDT-240329``) -> Binance's ``BTCUSDT``."""
    base, _, rest = symbol.upper().partition("-")
    quote, _, contract = rest.partition("-")
    if not base or not quote:
        raise ValueError(f"expected BASE-QUOTE, got {symbol!r}")
    if contract and contract != PERPETUAL_SUFFIX:
        return f"{base}{quote}_{contract}"
    return f"{base}{quote}"


def normalized_symbol(venue: str, market: Market) -> str | None:
    """Binance's ``BTCUSDT`` -> ``BTC-USDT`` (spot) or ``BTC-USDT-PERP`` (USD-M), else None."""
    split = split_symbol(venue)
    if split is None:
        return None
    base, quote = split
    if market is Market.SPOT:
        return f"{base}-{quote}"
    _, _, expiry = venue.partition("_")
    return f"{base}-{quote}-{expiry or PERPETUAL_SUFFIX}"

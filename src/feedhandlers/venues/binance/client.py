"""Binance connection details: the combined-stream endpoint and its SUBSCRIBE request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feedhandlers.venues.binance import schema
from feedhandlers.venues.binance.schema import Market


@dataclass(frozen=True, slots=True)
class BinanceClient:
    symbols: Sequence[str]  # ours: BTC-USDT (spot) or BTC-USDT-PERP (USD-M)
    market: Market = Market.SPOT
    url: str = ""
    venue: str = "binance"

    def endpoint(self) -> str:
        return self.url or schema.DEFAULT_URLS[self.market]

    def venue_symbols(self) -> dict[str, str]:
        """Binance spelling -> ours, for the parser."""
        return {schema.venue_symbol(symbol): symbol.upper() for symbol in self.symbols}

    def subscribe_messages(self) -> list[str]:
        return [schema.subscribe_message(list(self.venue_symbols())).decode()]

    def resync_messages(self, venue_symbols: Sequence[str]) -> list[str]:
        """Nothing to resnapshot: every bookTicker is a whole top of book."""
        return []

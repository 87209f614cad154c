"""Coinbase connection details: where to connect, what to subscribe, how to resnapshot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feedhandlers.venues.coinbase import schema


@dataclass(frozen=True, slots=True)
class CoinbaseClient:
    symbols: Sequence[str]  # ours: BTC-USD
    channels: Sequence[str] = schema.CHANNELS
    url: str = ""
    venue: str = "coinbase"

    def endpoint(self) -> str:
        return self.url or schema.DEFAULT_URL

    def subscribe_messages(self) -> list[str]:
        product_ids = [schema.venue_symbol(symbol) for symbol in self.symbols]
        return [schema.subscribe_message(product_ids, self.channels).decode()]

    def resync_messages(self, venue_symbols: Sequence[str]) -> list[str]:
        """Unsubscribe and subscribe level2 again: Coinbase answers with a new snapshot."""
        return [
            schema.unsubscribe_message(venue_symbols, ["level2"]).decode(),
            schema.subscribe_message(venue_symbols, ["level2"]).decode(),
        ]

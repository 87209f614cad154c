"""Kraken connection details: one subscribe per channel, book resnapshot by resubscribing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feedhandlers.venues.kraken import schema


@dataclass(frozen=True, slots=True)
class KrakenClient:
    symbols: Sequence[str]  # ours: BTC-USD
    channels: Sequence[str] = schema.CHANNELS
    book_depth: int = schema.DEFAULT_BOOK_DEPTH
    url: str = ""
    venue: str = "kraken"

    def endpoint(self) -> str:
        return self.url or schema.DEFAULT_URL

    def subscribe_messages(self) -> list[str]:
        pairs = [schema.venue_symbol(symbol) for symbol in self.symbols]
        return [
            schema.subscribe_message(pairs, channel, self.book_depth).decode()
            for channel in self.channels
        ]

    def resync_messages(self, venue_symbols: Sequence[str]) -> list[str]:
        """Unsubscribe and subscribe the book again: Kraken answers with a new snapshot."""
        return [
            schema.unsubscribe_message(venue_symbols, "book", self.book_depth).decode(),
            schema.subscribe_message(venue_symbols, "book", self.book_depth).decode(),
        ]

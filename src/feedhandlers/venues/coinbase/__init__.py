"""Coinbase Exchange WebSocket feed (ticker, level2, matches)."""

"""Kraken WebSocket API v1 (ticker, trade, book with CRC32 checksum)."""

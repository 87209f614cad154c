"""Binance spot and USD-M futures WebSocket streams (bookTicker, aggTrade)."""

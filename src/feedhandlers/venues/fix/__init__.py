"""FIX 4.4 market data over TCP (MarketDataRequest, snapshot, incremental refresh)."""

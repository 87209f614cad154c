"""Order specs for the trading core's unit tests: one builder, so a field added to
``OrderSpec`` is added here once."""

from __future__ import annotations

from marketcore.instruments import InstrumentKey
from marketcore.trading import lifecycle
from marketcore.trading.model import Order, OrderSpec, OrderType, Side, TimeInForce

UNIT = 1_000_000_000  # one share (or coin, or dollar) in nanos (1e-9)
TRADE_DATE = "2026-11-20"


def order_spec(
    order_id: str = "o-1",
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.MARKET,
    quantity: int = 100 * UNIT,
    limit: int = 0,
    stop: int = 0,
    *,
    account: str = "acct",
    symbol: str = "AAPL",
    exchange: str = "NASDAQ",
    tif: TimeInForce = TimeInForce.DAY,
) -> OrderSpec:
    return OrderSpec(
        order_id, account, symbol, exchange, side, order_type, quantity, limit, stop, tif
    )


def accepted(spec: OrderSpec) -> Order:
    """``spec`` accepted at the venue: a NEW order of ``TRADE_DATE``."""
    return lifecycle.accept(spec, InstrumentKey(spec.exchange, spec.symbol), TRADE_DATE)

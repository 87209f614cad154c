"""A gateway with trading on a real grpc.aio server, the in-memory feed and trading log
behind it (gateway.fakes), and helpers to build ticks and orders."""

from __future__ import annotations

import asyncio
import decimal
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import OrderRequest, TradingMessage
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from gateway.fakes import ManualFeed, MemoryQuoteStore, MemoryTradingLog
from gateway.market import MarketData
from gateway.trading.convert import Record
from tests.support import price_update, proto

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef01"
VIEWER = "viewer-token-0123456789abcde"
TOKENS = json.dumps(
    {
        ALICE: {"account": "alice", "permissions": ["market_data", "trading"]},
        BOB: {"account": "bob", "permissions": ["trading"]},
        VIEWER: {"account": "viewer", "permissions": ["market_data"]},
    }
)
EXCHANGE = "COINBASE"  # trades around the clock: the tests do not depend on the time of day
SYMBOL = "BTC-USD"
_sequence = 0


Amount = str | int  # decimal text ("0.5", "0.00002288") or whole units


def exact(value: Amount) -> int:
    """Decimal text (or whole units) in nanos, by ``decimal.Decimal`` arithmetic: the tests'
    numbers never go through the parser under test. Refuses a value finer than a nano."""
    scaled = decimal.Decimal(value).scaleb(9)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} is finer than a nano")
    return int(scaled)


def tick(
    bid: Amount,
    ask: Amount,
    *,
    bid_size: Amount = 0,
    ask_size: Amount = 0,
    last: Amount = 0,
    symbol: str = SYMBOL,
    exchange: str = EXCHANGE,
) -> PriceUpdate:
    global _sequence
    _sequence += 1
    now = time.time_ns()
    return price_update(
        exchange=exchange,
        symbol=symbol,
        bid_nanos=exact(bid),
        ask_nanos=exact(ask),
        bid_size_nanos=exact(bid_size),
        ask_size_nanos=exact(ask_size),
        last_nanos=exact(last),
        event_time_ns=now,
        received_time_ns=now,
        feed_handler_id="contract",
        feed_sequence=_sequence,
    )


def order(
    order_id: str,
    side: str,
    quantity: Amount,
    *,
    limit: Amount = 0,
    stop: Amount = 0,
    tif: int = common.TIME_IN_FORCE_DAY,
    symbol: str = SYMBOL,
    exchange: str = EXCHANGE,
    account_id: str = "",
) -> OrderRequest:
    limit_nanos, stop_nanos = exact(limit), exact(stop)
    kind = {
        (False, False): common.ORDER_TYPE_MARKET,
        (True, False): common.ORDER_TYPE_LIMIT,
        (False, True): common.ORDER_TYPE_STOP,
        (True, True): common.ORDER_TYPE_STOP_LIMIT,
    }[(limit_nanos != 0, stop_nanos != 0)]
    return proto(
        OrderRequest,
        order_id=order_id,
        symbol=symbol,
        exchange=exchange,
        side=common.SIDE_BUY if side == "buy" else common.SIDE_SELL,
        quantity_nanos=exact(quantity),
        limit_price_nanos=limit_nanos,
        stop_price_nanos=stop_nanos,
        order_type=kind,
        time_in_force=tif,
        account_id=account_id,
    )


@dataclass
class TradingServed:
    gateway: app.Gateway
    feed: ManualFeed
    log: MemoryTradingLog
    clients: dict[str, GatewayClient] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    def client(self, token: str) -> GatewayClient:
        if token not in self.clients:
            self.clients[token] = GatewayClient(self.target, token=token, timeout_s=30)
        return self.clients[token]

    def records(self, topic: str) -> list[Record]:
        return [record for record in self.log.records if record.topic == topic]


@asynccontextmanager
async def trading_gateway(
    records: list[Record] | None = None,
    reference: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[TradingServed]:
    settings = GatewaySettings(
        insecure=True,
        port=0,
        auth_tokens=TOKENS,
        shutdown_grace_s=2,
        trading="own",
        trading_reference_file=reference,
        **overrides,
    )
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        return feeds[0]

    log = MemoryTradingLog(records)
    gateway = await app.start(
        settings, store=MemoryQuoteStore(), feed_factory=feed_factory, trading_log=log
    )
    served = TradingServed(gateway, feeds[0], log)
    try:
        yield served
    finally:
        for client in served.clients.values():
            await client.close()
        await app.stop(gateway)


async def read_until(call: Any, predicate: Any, timeout_s: float = 30.0) -> list[TradingMessage]:
    """Read a LiveTrading call until ``predicate(message)``; returns everything read."""
    seen: list[TradingMessage] = []

    async def read() -> None:
        while True:
            message = await call.read()
            assert message is not None, f"stream ended; read so far: {seen}"
            seen.append(message)
            if predicate(message):
                return

    await asyncio.wait_for(read(), timeout_s)
    return seen

"""A relaying worker while its trading owner is away: trading calls end UNAVAILABLE with a retry
hint that names nothing internal (no socket path), its trading health says NOT_SERVING, and
both recover when the owner is back. Owner and relay are two in-process gateways (in-memory
feed and trading log) joined by a Unix socket, as `mdgw gateway --workers 2` joins its workers.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from financial.marketdata.v2 import common_pb2 as common
from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from gateway.errors import OrderOutcomeUnknown
from gateway.fakes import ManualFeed, MemoryQuoteStore, MemoryTradingLog
from gateway.market import MarketData
from gateway.trading.relay import OWNER_UNREACHABLE, TRADING_HEALTH
from tests.contract.trading_support import ALICE, TOKENS, order, tick


def _settings(**fields: object) -> GatewaySettings:
    return GatewaySettings(
        insecure=True, port=0, auth_tokens=TOKENS, shutdown_grace_s=1, **fields
    )  # fmt: skip


async def _start(settings: GatewaySettings, log: MemoryTradingLog | None = None) -> app.Gateway:
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        return feeds[0]

    gateway = await app.start(
        settings, store=MemoryQuoteStore(), feed_factory=feed_factory, trading_log=log
    )
    feeds[0].push([tick(100, 101)])  # after the trading desk listens to the feed
    return gateway


@pytest.fixture
def socket_path() -> AsyncIterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mdgw-t-", dir="/tmp"))  # short: sun_path limit
    yield directory / "trading.sock"
    shutil.rmtree(directory, ignore_errors=True)


async def _trading_health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=TRADING_HEALTH), timeout=5)
        return int(reply.status)


async def _until_trading_health(port: int, status: int) -> None:
    """Until the worker's trading health reads ``status`` (it follows the owner's socket)."""
    async with asyncio.timeout(30):  # a guard against a hang, far above the ~1 s it takes
        while await _trading_health(port) != status:  # noqa: ASYNC110 - a remote condition
            await asyncio.sleep(0.05)


async def test_while_the_owner_is_away_relayed_trading_is_unavailable_with_a_clear_hint(
    socket_path: Path,
) -> None:
    records: list = []
    owner = await _start(
        _settings(trading="own", trading_relay_socket=socket_path), MemoryTradingLog(records)
    )
    relay = await _start(_settings(trading="relay", trading_relay_socket=socket_path))
    client = GatewayClient(f"127.0.0.1:{relay.port}", token=ALICE, timeout_s=5)
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        assert await _trading_health(owner.port) == serving
        await _until_trading_health(relay.port, serving)
        placed = await client.submit_orders([order("r-1", "buy", 1, limit=99)])
        assert placed.results[0].status == common.ORDER_STATUS_NEW

        await app.stop(owner)  # worker 0 restarting: its socket is gone
        with pytest.raises(OrderOutcomeUnknown) as caught:
            await client.submit_orders([order("r-2", "buy", 1, limit=99)], attempts=1)
        assert caught.value.code == "UNAVAILABLE"
        assert caught.value.detail == OWNER_UNREACHABLE
        assert str(socket_path.parent) not in str(caught.value)
        session = client.trading_session()  # ends at once: nothing to relay to
        assert await session.code() == grpc.StatusCode.UNAVAILABLE
        assert await session.details() == OWNER_UNREACHABLE
        # market data is still served here; trading's own health says it cannot be
        assert await _trading_health(relay.port) == health_pb2.HealthCheckResponse.NOT_SERVING
        quote = await client.get_quote("BTC-USD", "COINBASE")
        assert quote.latest.symbol == "BTC-USD"

        owner = await _start(  # back, with its log
            _settings(trading="own", trading_relay_socket=socket_path), MemoryTradingLog(records)
        )
        await _until_trading_health(relay.port, serving)
        again = await client.submit_orders([order("r-1", "buy", 1, limit=99)])
        assert again.results[0].duplicate
    finally:
        await client.close()
        await app.stop(relay)
        if not owner.feed.stopped:  # type: ignore[attr-defined]  # ManualFeed's flag
            await app.stop(owner)

"""The venue connection against the local simulator (a real WebSocket server on 127.0.0.1,
port 0), with a list instead of Kafka: subscribe, read, reconnect after a restart with
backoff, the silence watchdog, and a book resync."""

import json
from decimal import Decimal

from websockets.asyncio.server import ServerConnection, serve

from feedhandlers.adapters.ws_connection import ConnectionSettings, WsFeedConnection
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.simulator.coinbase_feed import CoinbaseFeed
from feedhandlers.simulator.ws_server import SimulatorServer
from feedhandlers.venues.coinbase.client import CoinbaseClient
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from marketcore.backoff import BackoffPolicy
from tests.support import ListSink, nanos, running, until

SYMBOLS = ["SIM0-USD", "SIM1-USD", "SIM2-USD", "ADA-BTC"]  # ADA-BTC: 8-decimal prices and sizes
# Fast reconnects; silence and open timeouts far beyond a starved process's pauses (these tests
# count connections, and a busy machine must not add one).
FAST = ConnectionSettings(
    silence_timeout_s=30.0, open_timeout_s=30.0, backoff=BackoffPolicy(base_s=0.05, cap_s=0.2)
)


def _nanos(text: str) -> int:
    """The simulator's price text in nanos, by Python's decimal (not the parser under test)."""
    value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value(), text
    return int(value)


async def test_handler_follows_the_simulated_book_and_resumes_after_a_restart() -> None:
    feed = CoinbaseFeed(SYMBOLS, seed=3)
    server = SimulatorServer(feed, rate_per_s=400)
    await server.start(0)
    sink = ListSink()
    pipeline = FeedPipeline(CoinbaseParser(), sink, "fh-test")
    connection = WsFeedConnection(CoinbaseClient(SYMBOLS, url=server.url), pipeline, FAST)
    async with running(connection.run()):
        await until(lambda: len(sink.records) >= 100)
        await server.stop()
        before = len(sink.records)
        await until(lambda: connection.reconnects.total() >= 2)  # closed, then refused
        await server.start()  # same port, same market
        await until(lambda: connection.connections == 2 and len(sink.records) >= before + 100)
        seen = connection.reconnects.total()
        await server.stop()  # its last quotes are now final
        # read all it sent before its close (the disconnect is seen after the last frame)
        await until(lambda: connection.reconnects.total() > seen)
    assert connection.reconnects["closed"] >= 1
    assert connection.reconnects["unreachable"] >= 1
    updates = sink.updates()
    last = {u.symbol: (nanos(u.bid), nanos(u.ask)) for u in updates}
    truth = {symbol: (_nanos(bid), _nanos(ask)) for symbol, (bid, ask) in feed.truth.items()}
    assert last == truth  # what came out is the book the simulator published
    for symbol in SYMBOLS:
        sequences = [u.feed_sequence for u in updates if u.symbol == symbol]
        assert sequences == list(range(1, len(sequences) + 1))
    assert all(0 < nanos(u.bid) < nanos(u.ask) for u in updates)
    assert pipeline.counters.rejected.total() == 0
    assert pipeline.counters.sizes_dropped == 0
    ada = [u for u in updates if u.symbol == "ADA-BTC"]
    assert ada
    assert any(nanos(u.bid) % 1000 for u in ada)  # prices finer than a micro, exact
    assert any(nanos(u.bid_size) % 1000 for u in ada)  # and sizes


async def test_silent_venue_is_dropped_by_the_watchdog_and_reconnected() -> None:
    accepted = 0

    async def mute(websocket: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        await websocket.recv()  # the subscribe; then say nothing (pings are still answered)
        await websocket.wait_closed()

    async with serve(mute, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings = ConnectionSettings(
            silence_timeout_s=0.3, backoff=BackoffPolicy(base_s=0.05, cap_s=0.1)
        )
        connection = WsFeedConnection(
            CoinbaseClient(["BTC-USD"], url=f"ws://127.0.0.1:{port}"),
            FeedPipeline(CoinbaseParser(), ListSink(), "fh"),
            settings,
        )
        async with running(connection.run()):
            await until(lambda: connection.reconnects["silence"] >= 2, timeout_s=10)
    assert accepted >= 2


async def test_an_update_before_its_snapshot_resubscribes_that_product() -> None:
    received: list[dict[str, object]] = []

    async def venue(websocket: ServerConnection) -> None:
        async for raw in websocket:
            request = json.loads(raw)
            received.append(request)
            if len(received) == 1:  # the subscribe: answer with an update and no snapshot
                await websocket.send(
                    '{"type":"l2update","product_id":"BTC-USD","changes":[["buy","1.00","1"]],'
                    '"time":"2021-04-17T16:43:37.075687Z"}'
                )

    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        pipeline = FeedPipeline(CoinbaseParser(), ListSink(), "fh")
        connection = WsFeedConnection(
            CoinbaseClient(["BTC-USD"], url=f"ws://127.0.0.1:{port}"), pipeline, FAST
        )
        async with running(connection.run()):
            await until(lambda: len(received) >= 3)
    assert [r["type"] for r in received[:3]] == ["subscribe", "unsubscribe", "subscribe"]
    assert received[1]["channels"] == ["level2"]
    assert received[2]["product_ids"] == ["BTC-USD"]
    assert pipeline.counters.resyncs == 1

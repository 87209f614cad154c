"""MarketDataService over a real grpc.aio server on port 0, with the in-memory feed and store
(gateway.fakes) behind it: the wire contract, status codes, auth, streams and shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.orders_pb2 import OrderRequest, TradingMessage
from financial.marketdata.v2.prices_pb2 import (
    PriceSubscription,
    PriceUpdate,
    PriceUpdateBatch,
    QuoteRequest,
    QuoteResponse,
    QuoteSource,
)
from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from gateway.core.quotes import DayBar
from gateway.fakes import ManualFeed, MemoryQuoteStore, decoded
from gateway.market import MarketData
from gateway.metrics import REGISTRY
from marketcore.backoff import BackoffPolicy
from marketcore.instruments import InstrumentKey
from marketcore.trading_calendar import trade_date_text
from tests.support import drain_to_error, nanos, price_update, subscribed, until

TOKEN = "contract-token-0123456789abcdef"
TRADER = "contract-trader-0123456789abcdef"
TOKENS = json.dumps(
    {
        TOKEN: {"account": "acct-md", "permissions": ["market_data"]},
        TRADER: {"account": "acct-tr", "permissions": ["trading"]},
    }
)
NOW_NS = time.time_ns()
AAPL = InstrumentKey("NASDAQ", "AAPL")


def tick(symbol: str, n: int, *, exchange: str = "NASDAQ", last: int = 0) -> PriceUpdate:
    return price_update(
        exchange=exchange,
        symbol=symbol,
        bid_nanos=100_000_000 + n,
        ask_nanos=100_100_000 + n,
        last_nanos=last or 100_050_000 + n,
        event_time_ns=NOW_NS + n * 1_000,
        received_time_ns=NOW_NS + n * 1_000 + 500,
        feed_handler_id="contract",
        feed_sequence=n,
    )


@dataclass
class Served:
    gateway: app.Gateway
    feed: ManualFeed
    store: MemoryQuoteStore
    client: GatewayClient

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    @property
    def market(self) -> MarketData:
        return self.gateway.market


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    settings = GatewaySettings(
        insecure=True,
        port=0,
        trading="off",
        auth_tokens=TOKENS,
        # a reader that keeps reading is never this far behind, even on a busy machine; the
        # slow-client test waits for its cut-off as long as it takes
        max_lag_ms=2_000,
        shutdown_grace_s=2,
    )
    store = MemoryQuoteStore()
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        return feeds[0]

    gateway = await app.start(settings, store=store, feed_factory=feed_factory)
    client = GatewayClient(f"127.0.0.1:{gateway.port}", token=TOKEN, timeout_s=30)
    yield Served(gateway, feeds[0], store, client)
    await client.close()
    if not feeds[0].stopped:
        await app.stop(gateway)


async def _take(call: grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdate], count: int):
    received = []
    async with asyncio.timeout(30):  # a guard against a hang
        async for update in call:
            received.append(update)
            if len(received) == count:
                break
    return received


# -- GetQuote -------------------------------------------------------------------------------


async def test_get_quote_from_memory_merges_the_stored_day(served: Served) -> None:
    today = trade_date_text("NASDAQ", NOW_NS)
    # the store saw the day start before this gateway did: an earlier open and a lower low
    served.store.add_bar(
        AAPL,
        DayBar(today, 99_000_000, 100_000_000, 98_000_000, 99_500_000, NOW_NS - 10**9, NOW_NS - 1),
    )
    served.store.add_bar(AAPL, DayBar("2001-01-02", 1, 2, 1, 97_000_000, 1, 2))
    served.feed.push([tick("AAPL", 1, last=101_000_000), tick("AAPL", 2, last=100_500_000)])

    quote = await served.client.get_quote("AAPL", "NASDAQ")

    assert quote.source == QuoteSource.QUOTE_SOURCE_MEMORY
    assert quote.latest.feed_sequence == 2
    assert nanos(quote.latest.last) == 100_500_000
    assert (nanos(quote.open), nanos(quote.day_high), nanos(quote.day_low)) == (
        99_000_000,
        101_000_000,
        98_000_000,
    )
    assert nanos(quote.prev_close) == 97_000_000
    assert quote.trade_date == today
    reads = served.store.reads
    await served.client.get_quote("AAPL")  # merged once per day: no second store read
    assert served.store.reads == reads


async def test_get_quote_without_exchange_picks_the_most_recent_one(served: Served) -> None:
    served.feed.push([tick("MSFT", 5, exchange="NYSE"), tick("MSFT", 9, exchange="NASDAQ")])
    quote = await served.client.get_quote("MSFT")
    assert quote.latest.exchange == "NASDAQ"


async def test_get_quote_falls_back_to_the_store(served: Served) -> None:
    key = InstrumentKey("NYSE", "IBM")
    stored = tick("IBM", 3, exchange="NYSE")
    served.store.add_bar(key, DayBar("2026-11-20", 5, 9, 4, 8, 1, 2))
    served.store.add_bar(key, DayBar("2026-11-19", 1, 1, 1, 7, 1, 2))
    served.store.add_tick(key, "2026-11-20", stored)

    quote = await served.client.get_quote("IBM")

    assert quote.source == QuoteSource.QUOTE_SOURCE_STORE
    assert quote.latest == stored
    assert (nanos(quote.open), nanos(quote.day_high), nanos(quote.day_low)) == (5, 9, 4)
    assert nanos(quote.prev_close) == 7
    assert quote.trade_date == "2026-11-20"


async def test_unknown_symbol_is_not_found(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.get_quote("NOPE", "NASDAQ")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "NOPE" in (caught.value.details() or "")


async def test_store_down_is_unavailable(served: Served) -> None:
    served.store.failing = True
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.get_quote("NOPE", "NASDAQ", timeout_s=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("symbol", "exchange"), [("", ""), ("AA PL", ""), ("AAPL", "NAS|DAQ"), ("X" * 65, "")]
)
async def test_malformed_quote_request_is_invalid_argument(
    served: Served, symbol: str, exchange: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.get_quote(symbol, exchange)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_lower_case_symbol_is_refused_with_the_spelling_that_works(
    served: Served,
) -> None:
    served.feed.push([tick("AAPL", 1)])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.get_quote("aapl")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'AAPL'" in (caught.value.details() or "")
    for call in (served.client.subscribe(["aapl"]), served.client.subscribe_batches(["aapl"])):
        _, error = await drain_to_error(call)  # refused at once, not silent forever
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'AAPL'" in (error.details() or "")


async def test_undecodable_request_bytes_are_invalid_argument_not_internal(served: Served) -> None:
    for method in ("GetQuote", "StreamPrices"):
        path = f"/financial.marketdata.v2.MarketDataService/{method}"
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        if method == "GetQuote":
            call = served.client.channel.unary_unary(path)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"\xff\xff\xff", timeout=5, metadata=metadata)
        else:
            stream = served.client.channel.unary_stream(path)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stream(b"\x0a\x05ab", timeout=5, metadata=metadata):
                    pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method


async def test_an_unexpected_error_is_internal_without_details(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_query: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(served.market, "quote", broken)
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.get_quote("AAPL")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")
    failures = [entry for entry in logs if entry["event"] == "rpc_failed"]
    assert failures
    assert "secret internal detail" in str(failures[0]["exc_info"])


# -- authentication ---------------------------------------------------------------------------


async def test_calls_without_a_valid_token_are_unauthenticated(served: Served) -> None:
    for token, expected in (
        ("", grpc.StatusCode.UNAUTHENTICATED),
        ("wrong-token-0123456789abcdef", grpc.StatusCode.UNAUTHENTICATED),
        (TRADER, grpc.StatusCode.PERMISSION_DENIED),
    ):
        async with GatewayClient(served.target, token=token) as client:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.get_quote("AAPL")
            assert caught.value.code() == expected, token
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _take(client.subscribe(["AAPL"]), 1)
            assert caught.value.code() == expected, token


async def test_health_needs_no_token_and_reports_serving(served: Served) -> None:
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "financial.marketdata.v2.MarketDataService"):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_trading_rpcs_are_unimplemented_when_trading_is_off(served: Served) -> None:
    async with GatewayClient(served.target, token=TRADER) as client:
        stub = services_pb2_grpc.MarketDataServiceStub(client.channel)
        metadata = (("authorization", f"Bearer {TRADER}"),)

        async def orders() -> AsyncIterator[OrderRequest]:
            yield OrderRequest(order_id="o-1")

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SubmitOrders(orders(), timeout=5, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

        async def messages() -> AsyncIterator[TradingMessage]:
            yield TradingMessage(new_order=OrderRequest(order_id="o-2"))

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.LiveTrading(messages(), timeout=5, metadata=metadata):
                pass
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- streams --------------------------------------------------------------------------------


async def test_new_subscriber_gets_the_snapshot_first_then_live_updates(served: Served) -> None:
    served.feed.push([tick("AAPL", 1), tick("MSFT", 2), tick("GOOG", 3)])
    call = served.client.subscribe(["AAPL", "MSFT", "TSLA"])
    snapshot = await _take(call, 2)
    served.feed.push([tick("AAPL", 4), tick("TSLA", 5), tick("GOOG", 6)])
    live = await _take(call, 2)
    call.cancel()

    assert [(u.symbol, u.feed_sequence) for u in snapshot] == [("AAPL", 1), ("MSFT", 2)]
    assert [(u.symbol, u.feed_sequence) for u in live] == [("AAPL", 4), ("TSLA", 5)]
    assert [u.stream_sequence for u in snapshot + live] == [1, 2, 3, 4]
    assert all(u.gateway_send_time_ns >= NOW_NS for u in snapshot + live)


async def test_store_snapshot_for_symbols_memory_does_not_know(served: Served) -> None:
    key = InstrumentKey("NASDAQ", "ORCL")
    served.store.add_bar(key, DayBar("2026-11-20", 5, 9, 4, 8, 1, 2))
    served.store.add_tick(key, "2026-11-20", tick("ORCL", 1))
    call = served.client.subscribe(["ORCL"], "NASDAQ")
    first = await _take(call, 1)
    call.cancel()
    assert first[0].symbol == "ORCL"
    assert first[0].stream_sequence == 1


async def test_stream_filters_by_exchange(served: Served) -> None:
    call = served.client.subscribe(["AAPL"], "NYSE")
    await subscribed(call)
    served.feed.push([tick("AAPL", 1), tick("AAPL", 2, exchange="NYSE")])
    received = await _take(call, 1)
    call.cancel()
    assert received[0].exchange == "NYSE"


async def test_throttle_conflates_to_the_latest_value(served: Served) -> None:
    call = served.client.subscribe(["AAPL"], throttle_ms=300)
    await subscribed(call)
    served.feed.push([tick("AAPL", 1)])
    first = await _take(call, 1)
    served.feed.push([tick("AAPL", n) for n in range(2, 50)])
    second = await _take(call, 1)
    call.cancel()
    assert first[0].feed_sequence == 1
    assert second[0].feed_sequence == 49  # everything in between was conflated
    gap_ns = second[0].gateway_send_time_ns - first[0].gateway_send_time_ns
    assert gap_ns >= 290_000_000


async def test_older_ticks_never_follow_newer_ones(served: Served) -> None:
    call = served.client.subscribe(["AAPL"])
    await subscribed(call)
    served.feed.push([tick("AAPL", 5)])
    received = await _take(call, 1)
    served.feed.push([tick("AAPL", 3), tick("AAPL", 5)])  # older, and a redelivery
    served.feed.push([tick("AAPL", 7)])
    received += await _take(call, 1)
    call.cancel()
    assert [u.feed_sequence for u in received] == [5, 7]


@pytest.mark.parametrize(
    "request_",
    [
        PriceSubscription(),
        PriceSubscription(symbols=["AAPL"], throttle_ms=-1),
        PriceSubscription(symbols=["AAPL"], throttle_ms=3_600_000),
        PriceSubscription(symbols=["bad symbol"]),
        PriceSubscription(symbols=[f"S{n}" for n in range(1001)]),
    ],
)
async def test_malformed_subscription_is_invalid_argument(
    served: Served, request_: PriceSubscription
) -> None:
    stub = services_pb2_grpc.MarketDataServiceStub(served.client.channel)
    call = stub.StreamPrices(request_, timeout=5, metadata=(("authorization", f"Bearer {TOKEN}"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_client_that_stops_reading_is_cut_off_and_others_are_not_delayed(
    served: Served,
) -> None:
    # a small receive window, so the gateway's writes block soon after the client stops reading
    slow_client = GatewayClient(
        served.target,
        token=TOKEN,
        extra_options=[("grpc.http2.lookahead_bytes", 8192), ("grpc.http2.bdp_probe", 0)],
    )
    symbols = [f"S{n:03d}" for n in range(200)]
    slow = slow_client.subscribe(symbols)
    fast = served.client.subscribe(symbols)
    await subscribed(slow, fast)
    received = 0
    for round_ in range(30):  # 6,000 updates; the slow client reads none of them
        served.feed.push([tick(symbol, round_ * 200 + n + 1) for n, symbol in enumerate(symbols)])
        received += len(await _take(fast, 200))
    assert received == 6000  # the fast one got every update, none conflated

    # the slow one is cut off once an update has been ready for it max_lag_ms (2 s) unread
    await until(lambda: len(served.market.fanout) == 1, 60)
    drained, error = await drain_to_error(slow)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "client too slow" in (error.details() or "")
    assert 0 < len(drained) < 6000
    fast.cancel()
    await slow_client.close()


def _rpcs(code: str) -> float:
    value = REGISTRY.get_sample_value(
        "gateway_rpcs_total", {"rpc": "StreamPrices", "code": code}
    )  # fmt: skip
    return value or 0.0


async def test_a_cut_off_client_that_never_reads_again_is_released_and_counted_once(
    served: Served,
) -> None:
    """The cut-off's status waits behind a write stuck in the client's flow-control window;
    the gateway lets go of the stream at once, and when the client then goes away without
    reading, the undeliverable status is not aborted a second time ("Abort already called!")
    nor counted as an INTERNAL error."""
    slow_client = GatewayClient(
        served.target,
        token=TOKEN,
        extra_options=[("grpc.http2.lookahead_bytes", 8192), ("grpc.http2.bdp_probe", 0)],
    )
    symbols = [f"S{n:03d}" for n in range(200)]
    slow = slow_client.subscribe(symbols)
    await subscribed(slow)
    internal, exhausted = _rpcs("INTERNAL"), _rpcs("RESOURCE_EXHAUSTED")
    for round_ in range(30):
        served.feed.push([tick(symbol, round_ * 200 + n + 1) for n, symbol in enumerate(symbols)])
    await until(lambda: len(served.market.fanout) == 0, 60)  # released, though never read
    await slow_client.close()  # it goes away without reading: the status cannot be delivered
    await until(lambda: _rpcs("RESOURCE_EXHAUSTED") == exhausted + 1, 60)
    assert _rpcs("INTERNAL") == internal


async def test_too_many_streams_is_resource_exhausted(served: Served) -> None:
    served.gateway.servicer._max_streams = 1
    first = served.client.subscribe(["AAPL"])
    served.feed.push([tick("AAPL", 1)])
    await _take(first, 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _take(served.client.subscribe(["AAPL"]), 1)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    first.cancel()


async def test_shutdown_drains_open_streams_and_ends_them_unavailable(served: Served) -> None:
    call = served.client.subscribe(["AAPL", "MSFT"], throttle_ms=5_000)
    served.feed.push([tick("AAPL", 1)])
    await _take(call, 1)
    served.feed.push([tick("AAPL", 2), tick("MSFT", 3)])  # AAPL is throttled for 5 s
    stopping = asyncio.create_task(app.stop(served.gateway))
    rest, error = await drain_to_error(call, 5)
    await stopping
    assert sorted(rest) == [2, 3]  # pending updates are sent before the stream ends
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "resubscribe" in (error.details() or "")
    assert served.feed.stopped


async def test_quote_response_round_trips_through_the_generated_stub(served: Served) -> None:
    served.feed.push([tick("AAPL", 1)])
    stub = services_pb2_grpc.MarketDataServiceStub(served.client.channel)
    response = await stub.GetQuote(
        QuoteRequest(symbol="AAPL"), timeout=5, metadata=(("authorization", f"Bearer {TOKEN}"),)
    )
    assert isinstance(response, QuoteResponse)
    assert response.latest.symbol == "AAPL"


# -- batches (StreamPriceBatches) -------------------------------------------------------------


async def test_batches_respect_the_max_size_and_keep_sequence_numbers(served: Served) -> None:
    symbols = [f"B{n:02d}" for n in range(35)]
    call = served.client.subscribe_batches(symbols, max_batch_size=10, max_delay_ms=50)
    await subscribed(call)
    served.feed.push([tick(symbol, n + 1) for n, symbol in enumerate(symbols)])
    updates = []
    sizes = []
    async with asyncio.timeout(30):  # a guard against a hang
        async for batch in call:
            sizes.append(len(batch.updates))
            updates += batch.updates
            if len(updates) >= 35:
                break
    call.cancel()
    assert max(sizes) <= 10
    assert [u.symbol for u in updates] == symbols
    assert [u.stream_sequence for u in updates] == list(range(1, 36))


async def test_a_lone_update_is_sent_after_max_delay_though_its_batch_is_not_full(
    served: Served,
) -> None:
    call = served.client.subscribe_batches(["AAPL"], max_batch_size=100, max_delay_ms=80)
    await subscribed(call)
    pushed_ns = time.time_ns()
    served.feed.push([tick("AAPL", 1)])
    async with asyncio.timeout(30):  # a guard: on a busy machine it may come late, never early
        batch = await call.read()
    call.cancel()
    assert [u.feed_sequence for u in batch.updates] == [1]  # sent alone, 99 short of full
    assert batch.updates[0].gateway_send_time_ns - pushed_ns >= 75_000_000  # it waited


async def _read_batches_until_round(call, symbols: list[str], last_round: int) -> list[PriceUpdate]:
    """A batched stream's updates until every symbol's tick of ``last_round`` (the round is the
    feed sequence // 100) has arrived."""
    updates: list[PriceUpdate] = []
    async with asyncio.timeout(10):
        async for batch in call:
            updates += batch.updates
            if sum(1 for u in updates if u.feed_sequence // 100 == last_round) == len(symbols):
                return updates
    raise AssertionError("the stream ended")


def _rounds(updates: list[PriceUpdate], symbol: str) -> list[int]:
    return [u.feed_sequence // 100 for u in updates if u.symbol == symbol]


async def test_streams_of_one_shape_share_batches_and_a_late_joiner_misses_nothing(
    served: Served,
) -> None:
    """Three streams of one shape, one of them opened while ticks flow: each gets its snapshot,
    then every later tick of each symbol in order, numbered 1, 2, 3... on its own."""
    symbols = [f"G{n}" for n in range(4)]

    def subscribe() -> grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdateBatch]:
        return served.client.subscribe_batches(symbols, max_batch_size=5, max_delay_ms=5)

    calls = [subscribe(), subscribe()]
    await until(lambda: served.market.fanout.groups == 1)
    readers = [asyncio.ensure_future(_read_batches_until_round(c, symbols, 30)) for c in calls]
    for round_ in range(1, 31):
        served.feed.push([tick(symbol, round_ * 100 + n) for n, symbol in enumerate(symbols)])
        if round_ == 10:
            calls.append(subscribe())
            readers.append(asyncio.ensure_future(_read_batches_until_round(calls[-1], symbols, 30)))
        await asyncio.sleep(0.005)
    *early, late = await asyncio.gather(*readers)
    assert sum(stream.joined for stream in served.market.fanout) == 3
    for call in calls:
        call.cancel()
    await until(lambda: served.market.fanout.groups == 0)

    for updates in (*early, late):
        assert [u.stream_sequence for u in updates] == list(range(1, len(updates) + 1))
    for symbol in symbols:
        for updates in early:
            assert _rounds(updates, symbol) == list(range(1, 31))
        first = _rounds(late, symbol)[0]  # its snapshot: the latest value when it subscribed
        assert 9 <= first <= 11
        assert _rounds(late, symbol) == list(range(first, 31)), "then every tick, in order"


async def test_shutdown_ends_shared_streams_after_what_their_group_held(served: Served) -> None:
    calls = [served.client.subscribe_batches(["AAPL"], max_delay_ms=60_000) for _ in range(2)]
    await until(lambda: served.market.fanout.groups == 1)
    served.feed.push([tick("AAPL", 1)])  # waits for its batch to fill (up to a minute)
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(app.stop(served.gateway))
    for call in calls:
        read, error = await _drain_batches_to_error(call)
        assert read == [1]
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    await stopping


async def _drain_batches_to_error(call) -> tuple[list[int], grpc.aio.AioRpcError]:
    read: list[int] = []
    try:
        async with asyncio.timeout(30):  # a guard against a hang
            async for batch in call:
                read += [u.feed_sequence for u in batch.updates]
    except grpc.aio.AioRpcError as exc:
        return read, exc
    raise AssertionError("the stream ended without an error")


async def test_connections_age_out_and_the_client_resubscribes() -> None:
    settings = GatewaySettings(
        insecure=True,
        port=0,
        trading="off",
        auth_tokens=TOKENS,
        max_connection_age_s=0.5,
        max_connection_age_grace_s=0.3,
    )
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        market.apply(decoded([tick("AAPL", 1)]))
        return feeds[0]

    gateway = await app.start(settings, store=MemoryQuoteStore(), feed_factory=feed_factory)
    client = GatewayClient(f"127.0.0.1:{gateway.port}", token=TOKEN)
    client.resubscribe_backoff = BackoffPolicy(base_s=0.05, cap_s=0.1)
    sequences = []
    async with asyncio.timeout(10):
        async for update in client.stream_prices(["AAPL"]):
            sequences.append(update.stream_sequence)  # each new stream starts with a snapshot
            if len(sequences) == 2:
                break
    await client.close()
    await app.stop(gateway)
    assert sequences == [1, 1]


async def test_calls_are_counted_per_method_and_status_code(served: Served) -> None:
    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    found = {"rpc": "GetQuote", "code": "OK"}
    missing = {"rpc": "GetQuote", "code": "NOT_FOUND"}
    before = sample("gateway_rpcs_total", found), sample("gateway_rpcs_total", missing)
    timed = sample("gateway_rpc_handling_seconds_count", {"rpc": "GetQuote"})
    served.feed.push([tick("AAPL", 1)])
    await served.client.get_quote("AAPL")
    with pytest.raises(grpc.aio.AioRpcError):
        await served.client.get_quote("NOPE")
    # the client can see the status before the server's interceptor has finished the call
    await until(
        lambda: sample("gateway_rpc_handling_seconds_count", {"rpc": "GetQuote"}) > timed + 1
    )
    assert sample("gateway_rpcs_total", found) == before[0] + 1
    assert sample("gateway_rpcs_total", missing) == before[1] + 1
    assert sample("gateway_rpc_handling_seconds_count", {"rpc": "GetQuote"}) == timed + 2


async def test_the_client_falls_back_to_stream_prices_on_a_server_without_batches() -> None:
    """An older server: StreamPriceBatches is UNIMPLEMENTED, so the client's batched stream
    switches to StreamPrices and still yields every update."""

    class OnlyStreamPrices(services_pb2_grpc.MarketDataServiceServicer):
        async def StreamPrices(self, request, context):
            for n in (1, 2):
                yield price_update(symbol="AAPL", exchange="NASDAQ", stream_sequence=n)

    server = grpc.aio.server()
    services_pb2_grpc.add_MarketDataServiceServicer_to_server(OnlyStreamPrices(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = GatewayClient(f"127.0.0.1:{port}")
    try:
        async with asyncio.timeout(10):
            received = [u.stream_sequence async for u in client.stream_prices(["AAPL"])]
    finally:
        await client.close()
        await server.stop(0)
    assert received == [1, 2]

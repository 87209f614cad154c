"""Every gateway RPC fed random, oversized, empty, malformed and adversarial requests (issue 15):
the answer is always OK or a documented status (INVALID_ARGUMENT, NOT_FOUND,
RESOURCE_EXHAUSTED), never INTERNAL or UNKNOWN, and after each input the gateway still answers
a good request and its health says SERVING.

One in-process gateway (trading on, the in-memory feed, store and trading log of
``gateway.fakes``) serves the whole module from an event loop on a thread of its own; the
examples call it with the synchronous gRPC client, as any outside client would."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import event, given
from hypothesis import strategies as st

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.orders_pb2 import (
    OrderCancelRequest,
    OrderRequest,
    OrderStatusUpdate,
    TradingMessage,
)
from financial.marketdata.v2.prices_pb2 import PriceSubscription, QuoteRequest
from gateway import app
from gateway.config import GatewaySettings
from gateway.fakes import ManualFeed, MemoryQuoteStore, MemoryTradingLog, decoded
from gateway.market import MarketData
from gateway.security import SERVICE
from tests.contract.trading_support import ALICE, EXCHANGE, SYMBOL, TOKENS, tick
from tests.fuzz.support import answered, tried

METADATA = (("authorization", f"Bearer {ALICE}"),)
CALL_TIMEOUT_S = 30  # a guard against a hang, far above any answer
# What a request may be answered, per RPC: the documented codes (service/market_data.py and
# service/trading.py); RESOURCE_EXHAUSTED also when the request is over the message size limit.
ANSWERS = {
    "GetQuote": {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND},
    "StreamPrices": {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT},
    "StreamPriceBatches": {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT},
    "SubmitOrders": {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT},
    "LiveTrading": {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT},
}
ALWAYS_ALLOWED = {grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass
class Served:
    channel: grpc.Channel
    stub: services_pb2_grpc.MarketDataServiceStub
    health: health_pb2_grpc.HealthStub
    log: MemoryTradingLog


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-gateway", daemon=True)
    thread.start()
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, feed_loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, feed_loop))
        return feeds[0]

    trading_log = MemoryTradingLog()
    settings = GatewaySettings(
        insecure=True,
        port=0,
        auth_tokens=TOKENS,
        shutdown_grace_s=1,
        trading="own",
        worker_name="fuzz",
        # the fuzzer's pace is no attack: orders reach every check, not the rate limit
        max_orders_per_second=1_000_000,
        order_burst=1_000_000,
    )
    gateway = asyncio.run_coroutine_threadsafe(
        app.start(
            settings, store=MemoryQuoteStore(), feed_factory=feed_factory, trading_log=trading_log
        ),
        loop,
    ).result(CALL_TIMEOUT_S)
    feeds[0].push_threadsafe(decoded([tick(100, 101, ask_size=1_000_000)]))
    channel = grpc.insecure_channel(
        f"127.0.0.1:{gateway.port}", options=[("grpc.max_send_message_length", 8 << 20)]
    )
    yield Served(
        channel,
        services_pb2_grpc.MarketDataServiceStub(channel),
        health_pb2_grpc.HealthStub(channel),
        trading_log,
    )
    channel.close()
    asyncio.run_coroutine_threadsafe(app.stop(gateway), loop).result(CALL_TIMEOUT_S)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(CALL_TIMEOUT_S)


def _still_serving(served: Served) -> None:
    """A good request is answered and health says SERVING, for market data and trading."""
    quote = served.stub.GetQuote(
        QuoteRequest(symbol=SYMBOL, exchange=EXCHANGE), metadata=METADATA, timeout=CALL_TIMEOUT_S
    )
    assert quote.latest.symbol == SYMBOL
    for service in ("", SERVICE, "mdgw.trading"):
        answer = served.health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def _check(rpc: str, code: grpc.StatusCode, details: str | None) -> None:
    event(f"{rpc} {code.name}")  # the spread of answers: pytest --hypothesis-show-statistics
    answered("grpc:gateway", code.name)  # mdgw bench fuzz counts INTERNAL/UNKNOWN answers
    assert code in ANSWERS[rpc] | ALWAYS_ALLOWED, f"{rpc} answered {code}: {details}"
    # an answer never carries a huge value back (the limits show a short preview at most)
    assert len(details or "") < 2_000, f"{rpc} answered {len(details or '')} characters"


# -- strategies -------------------------------------------------------------------------------

adversarial_text = st.sampled_from(
    ["AAPL", "BTC-USD", SYMBOL, EXCHANGE, "aapl", "A|B", " AAPL", "AAPL\x00", "\u202e", "🙂", "|"]
)
oversized_text = st.integers(65, 300_000).map(lambda n: "A" * n)
texts = st.one_of(st.just(""), adversarial_text, st.text(max_size=70), oversized_text)
int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)
enums = st.integers(-3, 12)  # proto3 enums are open: numbers we never defined arrive too
decimals = st.one_of(
    st.builds(Decimal),
    st.builds(Decimal, units=st.integers(-5, 200), nanos=st.integers(-(10**9), 10**9)),
    st.builds(Decimal, units=int64s, nanos=int32s),
)


small_decimals = st.builds(
    Decimal, units=st.integers(0, 200), nanos=st.integers(0, 999_999_999)
) | st.builds(Decimal, units=st.integers(99, 102))


def _mutated(valid: st.SearchStrategy[Any], hostile: dict[str, st.SearchStrategy[Any]]) -> Any:
    """Requests that reach every check: valid ones, valid ones with one field made hostile, and
    ones hostile in every field (most of those are refused at the first check)."""

    @st.composite
    def one_field(draw: st.DrawFn) -> Any:
        request = draw(valid)
        name = draw(st.sampled_from(sorted(hostile)))
        value = draw(hostile[name])
        if isinstance(value, Decimal):
            getattr(request, name).CopyFrom(value)
        elif isinstance(value, list):
            del getattr(request, name)[:]
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
        return request

    @st.composite
    def every_field(draw: st.DrawFn) -> Any:
        message_type = type(draw(valid))
        return message_type(**{name: draw(strategy) for name, strategy in hostile.items()})

    return st.one_of(valid, one_field(), every_field())


valid_orders = st.builds(
    OrderRequest,
    order_id=st.uuids().map(str),
    symbol=st.sampled_from([SYMBOL, "ETH-USD", "aapl"]),
    exchange=st.sampled_from(["", EXCHANGE]),
    side=st.sampled_from([common.SIDE_BUY, common.SIDE_SELL]),
    order_type=st.sampled_from(list(common.OrderType.values())[1:]),
    time_in_force=st.sampled_from(list(common.TimeInForce.values())),
    quantity=small_decimals,
    limit_price=small_decimals,
    stop_price=small_decimals,
)
order_requests = _mutated(
    valid_orders,
    {
        "order_id": st.one_of(st.uuids().map(str), texts),
        "symbol": texts,
        "exchange": texts,
        "account_id": st.one_of(st.just("alice"), st.just("bob"), texts),
        "side": enums,
        "order_type": enums,
        "time_in_force": enums,
        "quantity": decimals,
        "limit_price": decimals,
        "stop_price": decimals,
        "client_time_ns": int64s,
    },
)
cancels = _mutated(
    st.builds(OrderCancelRequest, order_id=st.uuids().map(str)),
    {
        "order_id": st.one_of(st.uuids().map(str), texts),
        "reason": texts,
        "account_id": st.one_of(st.just("alice"), texts),
    },
)
trading_messages = st.one_of(
    order_requests.map(lambda request: TradingMessage(new_order=request)),
    cancels.map(lambda cancel: TradingMessage(cancel=cancel)),
    st.just(TradingMessage()),  # no payload
    st.just(TradingMessage(status=OrderStatusUpdate(order_id="x"))),  # a server's message
)
subscriptions = _mutated(
    st.builds(
        PriceSubscription,
        symbols=st.lists(st.sampled_from([SYMBOL, "ETH-USD", "AAPL"]), min_size=1, max_size=3),
        exchange=st.sampled_from(["", EXCHANGE]),
        throttle_ms=st.integers(0, 1_000),
        max_batch_size=st.integers(0, 1_000),
        max_delay_ms=st.integers(0, 1_000),
    ),
    {
        "symbols": st.lists(st.one_of(st.just(SYMBOL), texts), max_size=5)
        | st.lists(st.just("S"), min_size=1_001, max_size=1_001),
        "exchange": texts,
        "throttle_ms": int32s,
        "max_batch_size": int32s,
        "max_delay_ms": int32s,
    },
)
quote_requests = _mutated(
    st.builds(
        QuoteRequest,
        symbol=st.sampled_from([SYMBOL, "ETH-USD", "AAPL"]),
        exchange=st.sampled_from(["", EXCHANGE, "NASDAQ"]),
    ),
    {"symbol": texts, "exchange": texts},
)
garbage = st.one_of(
    st.binary(max_size=200),
    st.just(b"\xff\xff\xff\xff"),  # a field number of 0 with an overlong varint: never protobuf
    st.just(b"\x0a\xff\xff\xff\xff\x0f"),  # a string field claiming 4 GiB
)


# -- the RPCs ---------------------------------------------------------------------------------


@given(quote_requests)
def test_get_quote(served: Served, request: QuoteRequest) -> None:
    tried("gateway.GetQuote")
    try:
        served.stub.GetQuote(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()
    _check("GetQuote", code, details)
    _still_serving(served)


def _open_stream(call: Any) -> tuple[grpc.StatusCode, str | None]:
    """A stream that opened (its initial metadata came) is OK, and cancelled; else its status."""
    call.initial_metadata()  # sent once the stream is registered, or with a refusal
    if call.done():
        return call.code(), call.details()
    call.cancel()
    return grpc.StatusCode.OK, ""


@given(subscriptions)
def test_stream_prices(served: Served, request: PriceSubscription) -> None:
    tried("gateway.StreamPrices")
    call = served.stub.StreamPrices(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)
    _check("StreamPrices", *_open_stream(call))
    _still_serving(served)


@given(subscriptions)
def test_stream_price_batches(served: Served, request: PriceSubscription) -> None:
    tried("gateway.StreamPriceBatches")
    call = served.stub.StreamPriceBatches(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)
    _check("StreamPriceBatches", *_open_stream(call))
    _still_serving(served)


@given(st.lists(order_requests, max_size=6))
def test_submit_orders(served: Served, requests: list[OrderRequest]) -> None:
    tried("gateway.SubmitOrders")
    try:
        summary = served.stub.SubmitOrders(
            iter(requests), metadata=METADATA, timeout=CALL_TIMEOUT_S
        )
        code, details = grpc.StatusCode.OK, ""
        assert len(summary.results) == len(requests)
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()
    _check("SubmitOrders", code, details)
    _still_serving(served)


@given(st.lists(trading_messages, max_size=6))
def test_live_trading(served: Served, messages: list[TradingMessage]) -> None:
    tried("gateway.LiveTrading")
    try:
        for _ in served.stub.LiveTrading(iter(messages), metadata=METADATA, timeout=CALL_TIMEOUT_S):
            pass
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()
    _check("LiveTrading", code, details)
    _still_serving(served)


RPCS = {
    "GetQuote": "unary_unary",
    "StreamPrices": "unary_stream",
    "StreamPriceBatches": "unary_stream",
    "SubmitOrders": "stream_unary",
    "LiveTrading": "stream_stream",
}


def _raw_call(served: Served, rpc: str, payload: bytes) -> tuple[grpc.StatusCode, str | None]:
    """Send ``payload`` as the request bytes, whatever they are (no serializer)."""
    kind = RPCS[rpc]
    method = getattr(served.channel, kind)(f"/{SERVICE}/{rpc}")
    request: Any = payload if kind.startswith("unary_") else iter([payload])
    try:
        if kind.endswith("_stream"):
            call = method(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)
            if kind == "unary_stream":
                return _open_stream(call)
            for _ in call:
                pass
        else:
            method(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


@given(st.sampled_from(sorted(RPCS)), garbage)
def test_garbage_bytes(served: Served, rpc: str, payload: bytes) -> None:
    tried(f"gateway.{rpc}")
    code, details = _raw_call(served, rpc, payload)
    # random bytes may happen to be a valid message: then any answer that message may get
    _check(rpc, code, details)
    _still_serving(served)


@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_bytes_that_are_not_protobuf_are_invalid_argument(served: Served, rpc: str) -> None:
    tried(f"gateway.{rpc}")
    code, details = _raw_call(served, rpc, b"\x0a\xff\xff\xff\xff\x0f")
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    _still_serving(served)

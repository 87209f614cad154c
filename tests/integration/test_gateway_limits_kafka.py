"""Issue 15, item 1, against the real Kafka: one order with a ~600 KB symbol once made a
rejection record Kafka refused (``Message size too large``), which failed the trading log and
took the gateway down. Now the order is refused INVALID_ARGUMENT before anything records it,
and a record the topic refuses anyway (a topic with a small ``max.message.bytes``) withdraws
that one order: the gateway keeps trading and its health stays SERVING."""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from confluent_kafka.admin import AdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.orders_pb2 import OrderRequest, TradingMessage
from gateway.trading.convert import TradingTopics
from gateway.trading.relay import TRADING_HEALTH
from marketinfra.settings import KafkaSettings
from tests.contract.trading_support import ALICE, order, read_until
from tests.integration.support import create_topics_and_wait
from tests.integration.trading_support import TradingHarness, create_topics

pytestmark = pytest.mark.integration
SYMBOL = "LIM-USD"
HUGE_SYMBOL = "A" * 600_000  # the order: under gRPC's 1 MiB message limit


def _reference(path: Path, exchange: str) -> Path:
    path.write_text(
        json.dumps({"exchanges": {exchange: {"tick": "0.01", "lot": "0.001", "hours": "always"}}})
    )
    return path


@pytest.fixture
async def make_harness(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[TradingHarness]]]:
    """A started trading gateway on topics of its own; ``orders_max_bytes`` creates its orders
    topic with that ``max.message.bytes``."""
    made: list[tuple[TradingHarness, list[str]]] = []

    async def make(orders_max_bytes: int | None = None) -> TradingHarness:
        run = uuid.uuid4().hex[:10]
        topics = TradingTopics(f"test.{run}.orders", f"test.{run}.trades", f"test.{run}.positions")
        names = [f"test.{run}.ticks", topics.orders, topics.trades, topics.positions]
        if orders_max_bytes is not None:
            config = {"max.message.bytes": str(orders_max_bytes)}
            create_topics_and_wait(kafka_admin, [topics.orders], 1, config=config)
            create_topics(kafka_admin, [n for n in names if n != topics.orders])
        else:
            create_topics(kafka_admin, names)
        exchange = f"IT{run[:6].upper()}"
        harness = TradingHarness(
            kafka_settings,
            names[0],
            topics,
            trading_id=f"test-trading-{run}",
            exchange=exchange,
            reference=_reference(tmp_path / f"reference-{run}.json", exchange),
        )
        made.append((harness, names))
        await harness.start()
        return harness

    yield make
    for harness, names in made:
        await harness.stop()
        for future in kafka_admin.delete_topics(names, operation_timeout=5).values():
            future.result(timeout=10)


async def _health(harness: TradingHarness, service: str) -> Any:
    assert harness.gateway is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{harness.gateway.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        return answer.status


async def _assert_still_trading(harness: TradingHarness, order_id: str, limit: int = 0) -> None:
    """A good order is answered (a market order fills; a low limit rests), the trading log is
    up and health says SERVING."""
    summary = await harness.client(ALICE, timeout_s=30).submit_orders(
        [order(order_id, "buy", "0.5", limit=limit, symbol=SYMBOL, exchange=harness.exchange)]
    )
    expected = common.ORDER_STATUS_NEW if limit else common.ORDER_STATUS_FILLED
    assert [r.status for r in summary.results] == [expected]
    assert harness.gateway is not None
    assert harness.gateway.trading is not None
    assert harness.gateway.trading.alive
    for service in ("", TRADING_HEALTH):
        assert await _health(harness, service) == health_pb2.HealthCheckResponse.SERVING


async def test_a_600_kb_symbol_is_refused_and_the_gateway_keeps_trading(
    make_harness: Callable[..., Awaitable[TradingHarness]],
) -> None:
    harness = await make_harness()
    await harness.tick(SYMBOL, 100, 101, ask_size=10)
    stub = services_pb2_grpc.MarketDataServiceStub(harness.client(ALICE).channel)
    metadata = (("authorization", f"Bearer {ALICE}"),)
    bad = order("huge-1", "buy", 1, symbol=HUGE_SYMBOL, exchange=harness.exchange)

    async def one() -> AsyncIterator[OrderRequest]:
        yield bad

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitOrders(one(), timeout=30, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "symbol is 600000 characters; at most 64" in details
    assert len(details) < 200  # the value is never echoed

    session = stub.LiveTrading(metadata=metadata, timeout=30)
    await session.write(TradingMessage(new_order=bad))
    assert await session.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 64" in (await session.details() or "")

    await _assert_still_trading(harness, "after-huge-1")
    recorded = [e.message.order_id for e in harness.events("orders")]
    assert "huge-1" not in recorded


async def test_a_record_the_topic_refuses_withdraws_that_order_alone(
    make_harness: Callable[..., Awaitable[TradingHarness]],
) -> None:
    # This order's id, symbol and exchange are at their limits and random (records are lz4
    # compressed): its REJECTED record, 350 to 400 bytes in its batch as measured on this
    # broker, is more than its orders topic takes, while a plain order's, about 200, fits.
    rnd = random.Random(15)
    long_id, long_symbol, long_exchange = (
        "".join(rnd.choice(string.ascii_uppercase + string.digits) for _ in range(64))
        for _ in range(3)
    )
    harness = await make_harness(orders_max_bytes=300)
    await harness.tick(SYMBOL, 100, 101, ask_size=10)
    client = harness.client(ALICE, timeout_s=30)

    summary = await client.submit_orders(
        [
            order("small-1", "buy", 1, limit=100, symbol=SYMBOL, exchange=harness.exchange),
            order(long_id, "buy", 1, symbol=long_symbol, exchange=long_exchange),
            order("small-2", "buy", 1, limit=100, symbol=SYMBOL, exchange=harness.exchange),
        ]
    )

    assert [r.order_id for r in summary.results] == ["small-1", long_id, "small-2"]
    refused = summary.results[1]
    assert refused.status == common.ORDER_STATUS_REJECTED
    assert refused.reject_reason == common.REJECT_REASON_MALFORMED
    assert "not placed" in refused.reject_text
    assert "MSG_SIZE_TOO_LARGE" in refused.reject_text
    assert harness.topics.orders not in refused.reject_text  # no internals to the client
    assert [r.status for r in (summary.results[0], summary.results[2])] == [
        common.ORDER_STATUS_NEW
    ] * 2
    # withdrawn: nothing of it in memory, so asking again is refused the same way
    assert harness.gateway is not None
    assert harness.gateway.trading is not None
    assert harness.gateway.trading.desk.manager.order("alice", long_id) is None

    session = client.trading_session()
    await session.write(
        TradingMessage(
            new_order=order(long_id, "buy", 1, symbol=long_symbol, exchange=harness.exchange)
        )
    )
    seen = await read_until(session, lambda m: m.HasField("reject"))
    assert seen[-1].reject.order_id == long_id
    assert "not placed" in seen[-1].reject.text
    await session.done_writing()
    assert await session.code() == grpc.StatusCode.OK

    await _assert_still_trading(harness, "after-refused-1", limit=100)
    recorded = {e.message.order_id for e in harness.events("orders")}
    assert recorded == {"small-1", "small-2", "after-refused-1"}

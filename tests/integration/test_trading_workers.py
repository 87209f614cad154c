"""Trading with ``mdgw gateway --workers 2``: worker 0 owns the order book, worker 1 relays.
A client gets the same answers whichever worker its connection lands on, every order is
recorded once, and a killed owner comes back with its working orders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from confluent_kafka.admin import AdminClient

from financial.marketdata.v2 import common_pb2 as common
from gateway.client import GatewayClient
from gateway.service.market_data import WORKER_HEADER
from gateway.trading.convert import TradingTopics
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.contract.trading_support import ALICE, TOKENS, order, read_until
from tests.integration.test_gateway_workers import LOCAL_POOL, SOURCE_ROOT, Supervised
from tests.integration.trading_support import TradingHarness, create_topics, read_committed
from tests.support import free_port

pytestmark = pytest.mark.integration
SYMBOL = "WT-USD"


@pytest.fixture
async def two_workers(
    kafka_settings: KafkaSettings,
    kafka_admin: AdminClient,
    cassandra_settings: CassandraSettings,
    cassandra_session: object,  # the keyspace and tables exist
    tmp_path: Path,
) -> AsyncIterator[tuple[Supervised, TradingHarness]]:
    run = uuid.uuid4().hex[:10]
    topics = TradingTopics(f"test.{run}.orders", f"test.{run}.trades", f"test.{run}.positions")
    ticks = f"test.{run}.ticks"
    create_topics(kafka_admin, [ticks, topics.orders, topics.trades, topics.positions])
    exchange = f"WK{run[:6].upper()}"
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps({"exchanges": {exchange: {"tick": "0.01", "lot": "1", "hours": "always"}}})
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(SOURCE_ROOT),
        "LOG_FORMAT": "json",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CASSANDRA_KEYSPACE": cassandra_settings.keyspace,
        "GATEWAY_TICKS_TOPIC": ticks,
        "GATEWAY_AUTH_TOKENS": TOKENS,
        "GATEWAY_TRADING_ID": f"test-trading-{run}",
        "GATEWAY_ORDERS_TOPIC": topics.orders,
        "GATEWAY_TRADES_TOPIC": topics.trades,
        "GATEWAY_POSITIONS_TOPIC": topics.positions,
        "GATEWAY_TRADING_REFERENCE_FILE": str(reference),
        "GATEWAY_SHUTDOWN_GRACE_S": "3",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mdgw", "gateway", "--insecure", "--workers", "2",
        "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    running = Supervised(process, port)
    running.reader = asyncio.create_task(running.read_log())
    # no in-process gateway: the harness only produces ticks and reads the topics back
    harness = TradingHarness(kafka_settings, ticks, topics, f"test-trading-{run}", exchange)
    try:
        await running.until("gateway_serving", 2)
        yield running, harness
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        running.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.reader
        for future in kafka_admin.delete_topics(
            [ticks, topics.orders, topics.trades, topics.positions], operation_timeout=5
        ).values():
            future.result(timeout=10)


async def _client_on(port: int, worker: str) -> GatewayClient:
    """A client whose one connection is served by ``worker`` (found with a price stream's
    x-gateway-worker metadata)."""
    for _ in range(40):
        client = GatewayClient(f"127.0.0.1:{port}", token=ALICE, extra_options=LOCAL_POOL)
        call = client.subscribe(["ANY"])
        served_by = dict(await call.initial_metadata()).get(WORKER_HEADER)
        call.cancel()
        if served_by == worker:
            return client
        await client.close()
    pytest.fail(f"40 connections never reached {worker}")


async def _tick_seen_by_owner(
    harness: TradingHarness, owner: GatewayClient, bid: float, ask: float
) -> None:
    """Produce a tick and wait until the owner's quote view has it (its order book takes
    ticks in the same step)."""
    update = await harness.produce_tick(SYMBOL, bid, ask)
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):  # NOT_FOUND before the first tick
            quote = await owner.get_quote(SYMBOL, harness.exchange)
            if quote.latest.feed_sequence >= update.feed_sequence:
                return
        if time.monotonic() > deadline:
            pytest.fail("the owner did not see the tick in 20 s")
        await asyncio.sleep(0.05)


async def test_orders_through_either_worker_meet_one_order_book(
    two_workers: tuple[Supervised, TradingHarness],
) -> None:
    supervised, harness = two_workers
    owner = await _client_on(supervised.port, "worker-0")
    relayed = await _client_on(supervised.port, "worker-1")
    try:
        await _tick_seen_by_owner(harness, owner, 100, 101)
        request = order("wk-1", "buy", 1, limit=99, exchange=harness.exchange, symbol=SYMBOL)
        first = await relayed.submit_orders([request])
        assert first.results[0].status == common.ORDER_STATUS_NEW, first
        again = await owner.submit_orders([request])
        assert again.results[0].duplicate  # one order book behind both workers
        # a session on the relaying worker hears a fill of the order, in order
        session = relayed.trading_session()
        await read_until(session, lambda m: m.HasField("status"))  # working orders first
        await harness.produce_tick(SYMBOL, 98, 99)
        seen = await read_until(
            session,
            lambda m: m.HasField("status") and m.status.status == common.ORDER_STATUS_FILLED,
            timeout_s=20,
        )
        assert [m.WhichOneof("payload") for m in seen[-2:]] == ["execution", "status"]
        await session.done_writing()
        orders = read_committed(harness.kafka, harness.topics.orders)
        numbers = [(e.message.order_id, e.message.event_sequence) for e in orders]
        assert (request.order_id, 1) in numbers
        assert (request.order_id, 2) in numbers
        assert len(numbers) == len(set(numbers))
    finally:
        await owner.close()
        await relayed.close()


async def test_a_killed_owner_comes_back_with_its_orders(
    two_workers: tuple[Supervised, TradingHarness],
) -> None:
    supervised, harness = two_workers
    owner = await _client_on(supervised.port, "worker-0")
    relayed = await _client_on(supervised.port, "worker-1")
    try:
        await _tick_seen_by_owner(harness, owner, 100, 101)
        await owner.close()
        request = order("kill-1", "sell", 1, limit=102, exchange=harness.exchange, symbol=SYMBOL)
        result = (await relayed.submit_orders([request])).results[0]
        assert result.status == common.ORDER_STATUS_NEW, result
        owner_pid = next(
            int(str(e["pid"]))
            for e in supervised.events("gateway_worker_started")
            if e.get("worker") == 0
        )
        os.kill(owner_pid, signal.SIGKILL)
        await supervised.until("trading_started", 2, timeout_s=60)
        for _ in range(100):  # the relay answers UNAVAILABLE until the owner is back
            try:
                again = await relayed.submit_orders([request])
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(0.2)
        assert again.results[0].duplicate
        assert again.results[0].status == common.ORDER_STATUS_NEW
    finally:
        await relayed.close()

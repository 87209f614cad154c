"""A price finer than a micro, end to end: simulated venue -> feed handler -> Kafka -> tick
writer -> Cassandra, and -> gateway (StreamPrices, GetQuote, an order filled on it), exactly.

The expected values are the venue's own text (the simulator's last published book, written
with its own decimal formatting), never a value our code computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra.query import ValueSequence
from confluent_kafka.admin import AdminClient

from feedhandlers.app import FeedHandler, build
from feedhandlers.config import FeedHandlerSettings
from feedhandlers.simulator.coinbase_feed import CoinbaseFeed
from feedhandlers.simulator.ws_server import SimulatorServer
from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import ExecutionReport, OrderRequest, PositionUpdate
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from marketcore.fixed_point import NANOS_LIMIT, NANOS_PER_UNIT, format_nanos, parse_nanos
from marketcore.trading_calendar import trade_date_text
from marketinfra.cql_decimal import from_cql
from marketinfra.decimal_codec import set_decimal
from marketinfra.kafka import make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration import tickwriter_support
from tests.integration.support import flush_or_fail
from tests.integration.trading_support import create_topics, read_committed
from tests.support import nanos, proto

pytestmark = pytest.mark.integration

PRODUCT = "ADA-BTC"  # quoted in BTC: eight decimals, from 0.00002288
QUANTITY = "0.12345678"  # finer than a micro too; the displayed sizes are 0.001 and up


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Poll objects the code under test updates (no event to wait on)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


@contextlib.asynccontextmanager
async def _feed_running(handler: FeedHandler) -> AsyncIterator[None]:
    async def upkeep() -> None:
        while True:
            handler.upkeep()
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(handler.connection.run()), asyncio.create_task(upkeep())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_sub_micro_instrument_is_exact_through_every_hop(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic: Callable[[int], str],
    kafka_admin: AdminClient,
    tmp_path: Path,
) -> None:
    ticks, dlq = make_topic(4), make_topic(1)
    run = uuid.uuid4().hex[:12]
    orders, trades, positions = (f"test.{run}.{name}" for name in ("orders", "trades", "positions"))
    create_topics(kafka_admin, [orders, trades, positions])
    started_ns = time.time_ns()  # the run may cross a midnight: rows of either day count
    simulator = SimulatorServer(CoinbaseFeed([PRODUCT], seed=21), rate_per_s=200)
    await simulator.start(0)
    handler = build(
        FeedHandlerSettings(
            venue="coinbase",
            url=simulator.url,
            symbols=PRODUCT,
            ticks_topic=ticks,
            feed_handler_id="it-exact",
            kafka=kafka_settings,
        )
    )
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps({"instruments": {f"COINBASE|{PRODUCT}": {"tick": "0.00000001", "lot": "1e-8"}}})
    )
    gateway = await app.start(
        GatewaySettings(
            insecure=True,
            port=0,
            kafka=kafka_settings,
            cassandra=cassandra_settings,
            ticks_topic=ticks,
            trading="own",
            trading_id=f"it-exact-{uuid.uuid4().hex[:8]}",
            orders_topic=orders,
            trades_topic=trades,
            positions_topic=positions,
            trading_reference_file=reference,
            shutdown_grace_s=2,
        )
    )
    client = GatewayClient(f"127.0.0.1:{gateway.port}")
    writer = tickwriter_support.writer_settings(
        kafka_settings, cassandra_settings, ticks, dlq, consume="ticks,trades", trades_topic=trades
    )
    streamed: list[PriceUpdate] = []

    async def stream() -> None:
        async for update in client.stream_prices([PRODUCT], "COINBASE"):
            streamed.append(update)

    try:
        with tickwriter_support.running(writer) as tick_writer:
            reader = asyncio.create_task(stream())
            async with _feed_running(handler):
                await _until(lambda: handler.sink.accepted >= 200, "200 ticks from the venue")
                seen = handler.connection.reconnects.total()
                await simulator.stop()  # the last published book is now final
                await _until(
                    lambda: handler.connection.reconnects.total() > seen, "the venue's disconnect"
                )
            assert handler.sink.close(30) == 0
            sent = handler.sink.accepted
            bid_text, ask_text = simulator.feed.truth[PRODUCT]
            bid, ask = parse_nanos(bid_text), parse_nanos(ask_text)
            assert bid % 1000 or ask % 1000, "the final quote should be finer than a micro"

            # gateway: the stream's last update and GetQuote carry the venue's quote exactly
            def streamed_final() -> bool:
                return bool(streamed) and streamed[-1].feed_sequence == sent

            await _until(streamed_final, "the stream to deliver the last tick")
            last = streamed[-1]
            assert (nanos(last.bid), nanos(last.ask)) == (bid, ask)
            quote = await client.get_quote(PRODUCT, "COINBASE")
            assert (nanos(quote.latest.bid), nanos(quote.latest.ask)) == (bid, ask)
            assert nanos(quote.day_low) > 0  # a day bar of sub-micro prices, not zeros

            # an order on it: filled at the far touch (the ask), quantity and price exact
            summary = await client.submit_orders(
                [
                    proto(
                        OrderRequest,
                        order_id=f"exact-{uuid.uuid4().hex[:8]}",
                        symbol=PRODUCT,
                        exchange="COINBASE",
                        side=common.SIDE_BUY,
                        order_type=common.ORDER_TYPE_MARKET,
                        quantity=QUANTITY,
                    )
                ]
            )
            assert [r.status for r in summary.results] == [common.ORDER_STATUS_FILLED]
            (fill,) = [event.message for event in read_committed(kafka_settings, trades)]
            assert isinstance(fill, ExecutionReport)
            assert nanos(fill.fill_price) == ask
            assert nanos(fill.fill_quantity) == parse_nanos(QUANTITY)
            (position,) = [event.message for event in read_committed(kafka_settings, positions)]
            assert isinstance(position, PositionUpdate)
            exact_cost = parse_nanos(QUANTITY) * ask  # in 1e-18 of a BTC
            assert nanos(position.cost) * 10**9 + position.cost_sub_nanos == exact_cost
            assert nanos(position.net_quantity) == parse_nanos(QUANTITY)

            # Cassandra: every tick once, the last one with the venue's quote as exact decimals
            days = {trade_date_text("COINBASE", at) for at in (started_ns, time.time_ns())}

            def stored() -> dict[int, object]:
                rows = cassandra_session.execute(
                    f"SELECT bid, ask, payload FROM {cassandra_settings.keyspace}.tick_data "
                    "WHERE exchange = 'COINBASE' AND symbol = %s AND trade_date IN %s",
                    (PRODUCT, ValueSequence(sorted(days))),
                )
                return {PriceUpdate.FromString(row.payload).feed_sequence: row for row in rows}

            await _until(lambda: len(stored()) == sent, "the tick writer to store every tick")
            row = stored()[sent]
            assert (row.bid, row.ask) == (Decimal(bid_text), Decimal(ask_text))
            assert (from_cql(row.bid), from_cql(row.ask)) == (bid, ask)

            def trade_rows() -> list[object]:
                return list(
                    cassandra_session.execute(
                        f"SELECT price, quantity FROM {cassandra_settings.keyspace}"
                        ".trade_executions WHERE account_id = %s AND trade_date = %s",
                        (fill.account_id, trade_date_text("COINBASE", fill.execution_time_ns)),
                    )
                )

            await _until(lambda: bool(trade_rows()), "the tick writer to store the fill")
            (trade,) = trade_rows()
            assert (trade.price, trade.quantity) == (Decimal(ask_text), Decimal(QUANTITY))
            assert tick_writer.pipeline.crashed is None
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await client.close()
        await app.stop(gateway)
        await simulator.stop()
        for future in kafka_admin.delete_topics([orders, trades, positions]).values():
            future.result(timeout=10)


def test_random_exact_values_across_the_range_survive_kafka_and_cassandra(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Session,
    make_topic: Callable[[int], str],
) -> None:
    """Through the real servers: random values over the whole Decimal range (prices and sizes
    with nine decimals up to the int64 units limit) produced to Kafka, written by the tick
    writer, read back from Cassandra as decimals and from the stored payload."""
    ticks, dlq = make_topic(4), make_topic(1)
    chooser = random.Random(20261202)
    bounds = (10**10 * NANOS_PER_UNIT, 10**15 * NANOS_PER_UNIT, NANOS_LIMIT - 1)
    values = [chooser.randint(1, chooser.choice(bounds)) for _ in range(200)]
    updates = [
        tickwriter_support.make_tick(f"RND{n % 7}", n + 1, exchange="KRAKEN")
        for n in range(len(values))
    ]
    for update, value in zip(updates, values, strict=True):
        set_decimal(update.bid, value)
        set_decimal(update.ask, value + 1)
        set_decimal(update.last, value)
        set_decimal(update.bid_size, value)
        set_decimal(update.volume, value)
    producer = make_producer(kafka_settings)
    tickwriter_support.produce_ticks(producer, ticks, updates)
    flush_or_fail(producer, kafka_settings.bootstrap_servers)
    keyspace = cassandra_settings.keyspace
    writer = tickwriter_support.writer_settings(kafka_settings, cassandra_settings, ticks, dlq)

    def stored() -> dict[int, object]:
        rows = cassandra_session.execute(
            f"SELECT bid, ask, bid_size, volume, payload FROM {keyspace}.tick_data "
            "WHERE exchange = 'KRAKEN' AND symbol IN %s AND trade_date = '2025-11-22'",
            (ValueSequence([f"RND{n}" for n in range(7)]),),
        )
        return {PriceUpdate.FromString(row.payload).feed_sequence: row for row in rows}

    with tickwriter_support.running(writer):
        tickwriter_support.wait_for(lambda: len(stored()) == len(values), 60, "every row")
    rows = stored()
    for sequence, value in enumerate(values, start=1):
        row = rows[sequence]
        text = format_nanos(value, min_decimals=0)
        assert (row.bid, row.bid_size, row.volume) == (Decimal(text),) * 3
        assert from_cql(row.ask) == value + 1
        assert nanos(PriceUpdate.FromString(row.payload).last) == value

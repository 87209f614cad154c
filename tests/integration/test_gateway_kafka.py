"""The gateway over real gRPC, real Kafka and real Cassandra: ticks produced to a topic of the
test's own reach streams and GetQuote; the fallback reads rows the tests insert themselves."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest
from cassandra.cluster import Session
from confluent_kafka import Producer

from financial.marketdata.v2.prices_pb2 import (
    PriceSubscription,
    PriceUpdate,
    QuoteResponse,
    QuoteSource,
)
from gateway import app
from gateway.adapters.quote_store import CassandraQuoteStore
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from marketcore.instruments import InstrumentKey
from marketcore.tick_identity import tick_timeuuid
from marketcore.trading_calendar import trade_date_text
from marketinfra.bar_cells import cell, low_cell
from marketinfra.kafka import make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import flush_or_fail
from tests.support import drain_to_error, nanos, price_update, subscribed, until

TOKEN = "integration-token-0123456789abcdef"
TOKENS = json.dumps({TOKEN: {"account": "acct-it", "permissions": ["market_data"]}})
SECOND = 1_000_000_000


@dataclass
class Harness:
    gateway: app.Gateway
    client: GatewayClient
    producer: Producer
    topic: str
    exchange: str
    kafka: KafkaSettings

    def tick(self, symbol: str, seq: int, *, last: int = 0, at_ns: int = 0) -> PriceUpdate:
        now = at_ns or time.time_ns()
        return price_update(
            exchange=self.exchange, symbol=symbol, bid_nanos=50_000_000 + seq,
            ask_nanos=50_100_000 + seq, last_nanos=last or 50_050_000 + seq,
            event_time_ns=now, received_time_ns=now + 1000, feed_handler_id="it",
            feed_sequence=seq,
        )  # fmt: skip

    async def produce(self, ticks: Sequence[PriceUpdate]) -> None:
        def send() -> None:
            for tick in ticks:
                self.producer.produce(
                    self.topic,
                    key=InstrumentKey(tick.exchange, tick.symbol).kafka_key(),
                    value=tick.SerializeToString(),
                )
                self.producer.poll(0)
            flush_or_fail(self.producer, self.kafka.bootstrap_servers)

        await asyncio.to_thread(send)

    async def quote_when(self, symbol: str, seq: int, timeout_s: float = 30) -> QuoteResponse:
        """GetQuote, polled until the gateway has consumed the tick with ``seq``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                quote = await self.client.get_quote(symbol, self.exchange)
                if quote.latest.feed_sequence >= seq:
                    return quote
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            if time.monotonic() > deadline:
                pytest.fail(f"the gateway did not consume {symbol} #{seq} in {timeout_s}s")
            await asyncio.sleep(0.05)


@pytest.fixture
async def harness(
    kafka_settings: KafkaSettings,
    cassandra_session: Session,
    cassandra_settings: CassandraSettings,
    make_topic,
) -> AsyncIterator[Harness]:
    topic = make_topic(4)
    exchange = f"IT{uuid.uuid4().hex[:6].upper()}"
    settings = GatewaySettings(
        insecure=True,
        port=0,
        trading="off",
        ticks_topic=topic,
        kafka=kafka_settings,
        cassandra=cassandra_settings,
        auth_tokens=TOKENS,
        max_lag_ms=2_000,  # far beyond a reader that keeps reading, even on a busy machine
        store_exchanges=f"NASDAQ,{exchange}",
    )
    store = CassandraQuoteStore(cassandra_session, cassandra_settings.keyspace, 5.0)
    gateway = await app.start(settings, store=store)
    client = GatewayClient(f"127.0.0.1:{gateway.port}", token=TOKEN, timeout_s=10)
    producer = make_producer(kafka_settings)
    yield Harness(gateway, client, producer, topic, exchange, kafka_settings)
    await client.close()
    await app.stop(gateway)


async def _read_until(
    call: grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdate],
    done: Callable[[list[PriceUpdate]], bool],
    timeout_s: float = 20,
) -> list[PriceUpdate]:
    received: list[PriceUpdate] = []
    async with asyncio.timeout(timeout_s):
        async for update in call:
            received.append(update)
            if done(received):
                break
    return received


async def test_stream_delivers_kafka_ticks_in_order_and_conflates_per_throttle(
    harness: Harness,
) -> None:
    fast = harness.client.subscribe(["ORD"], harness.exchange)
    throttled = harness.client.subscribe(["ORD"], harness.exchange, throttle_ms=200)
    await subscribed(fast, throttled)
    started = time.monotonic()
    for chunk in range(3):
        await harness.produce([harness.tick("ORD", chunk * 100 + n) for n in range(1, 101)])
        await asyncio.sleep(0.15)

    def finished(updates: list[PriceUpdate]) -> bool:
        return updates[-1].feed_sequence == 300

    everything = await _read_until(fast, finished)
    sampled = await _read_until(throttled, finished)
    elapsed = time.monotonic() - started
    fast.cancel()
    throttled.cancel()

    for updates in (everything, sampled):
        sequences = [u.feed_sequence for u in updates]
        assert sequences == sorted(set(sequences)), "an older value after a newer one"
        assert [u.stream_sequence for u in updates] == list(range(1, len(updates) + 1))
    sends = [u.gateway_send_time_ns for u in sampled]
    assert all(later - earlier >= 190_000_000 for earlier, later in itertools.pairwise(sends))
    assert len(sampled) <= elapsed / 0.2 + 2
    assert len(sampled) < len(everything)


async def test_a_slow_subscriber_neither_delays_a_fast_one_nor_stays_connected(
    harness: Harness,
) -> None:
    symbols = [f"SL{n:03d}" for n in range(200)]
    slow_client = GatewayClient(
        f"127.0.0.1:{harness.gateway.port}",
        token=TOKEN,
        extra_options=[("grpc.http2.lookahead_bytes", 8192), ("grpc.http2.bdp_probe", 0)],
    )
    slow = slow_client.subscribe(symbols, harness.exchange)  # never read until the end
    fast = harness.client.subscribe(symbols, harness.exchange)
    await subscribed(slow, fast)
    last_seen: dict[str, int] = {}
    stream_sequences: list[int] = []
    final = 20 * 200

    async def read_fast() -> None:
        async with asyncio.timeout(60):  # a guard against a hang, not a speed limit
            async for update in fast:
                last_seen[update.symbol] = update.feed_sequence
                stream_sequences.append(update.stream_sequence)
                if sum(1 for seq in last_seen.values() if seq > final - 200) == 200:
                    return

    reader = asyncio.create_task(read_fast())
    for round_ in range(20):
        await harness.produce(
            [harness.tick(s, round_ * 200 + n + 1) for n, s in enumerate(symbols)]
        )
    await reader
    # the fast one got every symbol's last tick, numbered without a gap, while the slow one
    # read nothing: the slow one did not hold it up (speed is the benchmark's business)
    assert stream_sequences == list(range(1, len(stream_sequences) + 1))

    # the slow one is cut off once an update has been ready for it max_lag_ms unread
    await until(lambda: len(harness.gateway.market.fanout) == 1, 60)
    drained, error = await drain_to_error(slow, 20)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "client too slow" in (error.details() or "")
    assert len(drained) < final
    fast.cancel()
    await slow_client.close()


async def test_a_new_subscriber_gets_the_latest_quotes_first_then_live_ticks(
    harness: Harness,
) -> None:
    await harness.produce([harness.tick("SNA", 1), harness.tick("SNB", 2), harness.tick("SNA", 3)])
    await harness.quote_when("SNA", 3)
    await harness.quote_when("SNB", 2)
    call = harness.client.subscribe(["SNA", "SNB"], harness.exchange)
    snapshot = await _read_until(call, lambda updates: len(updates) == 2)
    await harness.produce([harness.tick("SNB", 4)])
    live = await _read_until(call, lambda updates: True)
    call.cancel()
    assert sorted((u.symbol, u.feed_sequence) for u in snapshot) == [("SNA", 3), ("SNB", 2)]
    assert [(u.symbol, u.feed_sequence) for u in live] == [("SNB", 4)]
    assert [u.stream_sequence for u in snapshot + live] == [1, 2, 3]


async def test_get_quote_from_memory_with_the_days_range_and_stored_previous_close(
    harness: Harness, cassandra_session: Session, cassandra_settings: CassandraSettings
) -> None:
    now = time.time_ns()
    today = trade_date_text(harness.exchange, now)
    yesterday = (dt.date.fromisoformat(today) - dt.timedelta(days=1)).isoformat()
    _insert_bar(cassandra_session, cassandra_settings.keyspace, harness.exchange, "MEM",
                yesterday, (40_000_000, 47_000_000, 39_000_000, 45_500_000))  # fmt: skip
    await harness.produce(
        [
            harness.tick("MEM", 1, last=50_000_000, at_ns=now),
            harness.tick("MEM", 2, last=52_000_000, at_ns=now + 1000),
            harness.tick("MEM", 3, last=49_000_000, at_ns=now + 2000),
        ]
    )
    quote = await harness.quote_when("MEM", 3)
    assert quote.source == QuoteSource.QUOTE_SOURCE_MEMORY
    assert nanos(quote.latest.last) == 49_000_000
    assert (nanos(quote.open), nanos(quote.day_high), nanos(quote.day_low)) == (
        50_000_000,
        52_000_000,
        49_000_000,
    )
    assert nanos(quote.prev_close) == 45_500_000
    assert quote.trade_date == today


async def test_get_quote_falls_back_to_cassandra_for_symbols_not_in_memory(
    harness: Harness, cassandra_session: Session, cassandra_settings: CassandraSettings
) -> None:
    keyspace = cassandra_settings.keyspace
    event_ns = int(dt.datetime(2026, 11, 20, 20, 59, tzinfo=dt.UTC).timestamp()) * SECOND
    stored = harness.tick("STO", 7, last=61_000_000, at_ns=event_ns)
    _insert_bar(cassandra_session, keyspace, harness.exchange, "STO", "2026-11-19",
                (55_000_000, 58_000_000, 54_000_000, 57_000_000))  # fmt: skip
    _insert_bar(cassandra_session, keyspace, harness.exchange, "STO", "2026-11-20",
                (57_500_000, 62_000_000, 56_000_000, 61_000_000))  # fmt: skip
    cassandra_session.execute(
        f"INSERT INTO {keyspace}.tick_data (exchange, symbol, trade_date, tick_time, "
        "last, event_time_ns, payload) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (harness.exchange, "STO", "2026-11-20", tick_timeuuid(event_ns, b"sto"),
         Decimal("0.061"), event_ns, stored.SerializeToString()),
    )  # fmt: skip

    for exchange in (harness.exchange, ""):  # with no exchange, the configured ones are asked
        quote = await harness.client.get_quote("STO", exchange)
        assert quote.source == QuoteSource.QUOTE_SOURCE_STORE
        assert quote.latest == stored
        assert (nanos(quote.open), nanos(quote.day_high), nanos(quote.day_low)) == (
            57_500_000,
            62_000_000,
            56_000_000,
        )
        assert nanos(quote.prev_close) == 57_000_000
        assert quote.trade_date == "2026-11-20"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.client.get_quote("NOSUCH", harness.exchange)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_malformed_requests_are_invalid_argument_never_internal(harness: Harness) -> None:
    for symbol in ("", "A B", "x" * 100):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.client.get_quote(symbol, harness.exchange)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _read_until(harness.client.subscribe([], throttle_ms=-5), lambda _: True)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _insert_bar(
    session: Session,
    keyspace: str,
    exchange: str,
    symbol: str,
    day: str,
    prices: tuple[int, int, int, int],
) -> None:
    open_, high, low, close = prices
    start = int(dt.datetime.fromisoformat(f"{day}T14:30:00+00:00").timestamp()) * SECOND
    insert = session.prepare(  # prepared: tuple cells bind as tuples (a simple statement
        # would write a Python tuple as a CQL list)
        f"INSERT INTO {keyspace}.daily_bars (exchange, symbol, trade_date, open, high, low, "
        "close, volume, first_event_ns, last_event_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    session.execute(
        insert,
        (exchange, symbol, day, cell(open_), cell(high), low_cell(low), cell(close), cell(0),
         start, start + 6 * 3600 * SECOND),
    )  # fmt: skip


# -- StreamPriceBatches (issue 7) -------------------------------------------------------------


async def test_the_batched_stream_gives_what_stream_prices_gives(harness: Harness) -> None:
    symbols = [f"BE{n}" for n in range(5)]
    plain = harness.client.subscribe(symbols, harness.exchange)
    batched, twin = (
        harness.client.subscribe_batches(
            symbols, harness.exchange, max_batch_size=8, max_delay_ms=20
        )
        for _ in range(2)
    )  # two of one shape: their batches are built once, for both
    await subscribed(plain, batched, twin)
    await until(lambda: harness.gateway.market.fanout.groups == 1, 30)  # after their snapshots
    rounds = 20
    for round_ in range(1, rounds + 1):
        await harness.produce([harness.tick(s, round_) for s in symbols])
        await asyncio.sleep(0.01)

    def finished(updates: Sequence[PriceUpdate]) -> bool:
        return sum(1 for u in updates if u.feed_sequence == rounds) == len(symbols)

    singles = await _read_until(plain, finished)
    flattened, sizes = await _read_batches_until(batched, finished)
    flattened_twin, _ = await _read_batches_until(twin, finished)
    for call in (plain, batched, twin):
        call.cancel()

    def per_symbol(updates: Sequence[PriceUpdate]) -> dict[str, list[int]]:
        return {s: [u.feed_sequence for u in updates if u.symbol == s] for s in symbols}

    expected = {s: list(range(1, rounds + 1)) for s in symbols}  # every tick, in order
    assert per_symbol(singles) == expected
    assert per_symbol(flattened) == expected
    assert per_symbol(flattened_twin) == expected
    for updates in (singles, flattened, flattened_twin):
        assert [u.stream_sequence for u in updates] == list(range(1, len(updates) + 1))
    assert max(sizes) <= 8
    assert len(sizes) < len(flattened), "updates that were ready together went out together"


async def test_a_slow_batched_subscriber_is_conflated_then_cut_off(harness: Harness) -> None:
    """The slow stream shares its shape with a fast one: it falls behind their group, goes back
    to its own (conflating) outbox and is cut off, while the fast one keeps up."""
    symbols = [f"SB{n:03d}" for n in range(200)]
    slow_client = GatewayClient(
        f"127.0.0.1:{harness.gateway.port}",
        token=TOKEN,
        extra_options=[("grpc.http2.lookahead_bytes", 8192), ("grpc.http2.bdp_probe", 0)],
    )
    slow = slow_client.subscribe_batches(symbols, harness.exchange, max_batch_size=50)
    fast = harness.client.subscribe_batches(symbols, harness.exchange, max_batch_size=50)
    await subscribed(slow, fast)
    rounds = 20

    def finished(updates: Sequence[PriceUpdate]) -> bool:
        return sum(1 for u in updates if u.feed_sequence == rounds) == len(symbols)

    reading = asyncio.ensure_future(_read_batches_until(fast, finished))
    for round_ in range(1, rounds + 1):
        await harness.produce([harness.tick(s, round_) for s in symbols])
    # never read meanwhile: cut off once an update has been ready for it max_lag_ms unread
    await until(lambda: len(harness.gateway.market.fanout) == 1, 60)
    read, error = await _drain_batches_to_error(slow, 20)
    await slow_client.close()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "client too slow" in (error.details() or "")
    assert len(read) < rounds * len(symbols), "it was conflated, not sent everything"
    received, _ = await reading  # every symbol's last tick, and no cut-off
    fast.cancel()
    assert [u.stream_sequence for u in received] == list(range(1, len(received) + 1))
    for symbol in symbols:
        ticks = [u.feed_sequence for u in received if u.symbol == symbol]
        assert ticks == sorted(set(ticks)), "in order, once each (bursts may be conflated)"


async def _read_batches_until(
    call, done: Callable[[Sequence[PriceUpdate]], bool]
) -> tuple[list[PriceUpdate], list[int]]:
    """A batched stream's updates, flattened, until ``done``; and the batch sizes."""
    flattened: list[PriceUpdate] = []
    sizes: list[int] = []
    async with asyncio.timeout(20):
        async for batch in call:
            sizes.append(len(batch.updates))
            flattened += batch.updates
            if done(flattened):
                break
    return flattened, sizes


async def _drain_batches_to_error(call, timeout_s: float) -> tuple[list[int], grpc.aio.AioRpcError]:
    read: list[int] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for batch in call:
                read += [u.feed_sequence for u in batch.updates]
    except grpc.aio.AioRpcError as exc:
        return read, exc
    pytest.fail("the batched stream ended without an error")

"""Issue 15, item 11, against the real Kafka: the same records written twice to the ticks
topic (what a producer's retry does after a broker outage longer than its delivery timeout)
reach a stream once each, and the copies are counted as duplicates."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from confluent_kafka import Producer

from financial.marketdata.v2.prices_pb2 import PriceSubscription, PriceUpdate
from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from gateway.fakes import MemoryQuoteStore
from gateway.metrics import REGISTRY
from marketcore.instruments import InstrumentKey
from marketinfra.kafka import make_producer
from marketinfra.settings import KafkaSettings
from tests.integration.support import flush_or_fail
from tests.support import price_update, subscribed

pytestmark = pytest.mark.integration
TOKEN = "integration-token-0123456789abcdef"
TOKENS = json.dumps({TOKEN: {"account": "acct-it", "permissions": ["market_data"]}})


@dataclass
class Harness:
    client: GatewayClient
    producer: Producer
    topic: str
    exchange: str
    kafka: KafkaSettings

    def tick(self, symbol: str, feed: str, sequence: int, at_ns: int) -> PriceUpdate:
        return price_update(
            exchange=self.exchange, symbol=symbol, bid_nanos=50_000_000 + sequence,
            ask_nanos=50_100_000 + sequence, event_time_ns=at_ns, received_time_ns=at_ns + 1000,
            feed_handler_id=feed, feed_sequence=sequence,
        )  # fmt: skip

    async def produce(self, ticks: list[PriceUpdate]) -> None:
        """Each tick as one record, keyed as the feed handlers key them; written again, the
        same bytes are the copy a producer's retry writes."""

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


@pytest.fixture
async def harness(
    kafka_settings: KafkaSettings, make_topic: Callable[[int], str]
) -> AsyncIterator[Harness]:
    topic = make_topic(4)
    settings = GatewaySettings(
        insecure=True,
        port=0,
        trading="off",
        ticks_topic=topic,
        kafka=kafka_settings,
        auth_tokens=TOKENS,
    )
    gateway = await app.start(settings, store=MemoryQuoteStore())
    client = GatewayClient(f"127.0.0.1:{gateway.port}", token=TOKEN, timeout_s=30)
    exchange = f"IT{uuid.uuid4().hex[:6].upper()}"
    yield Harness(client, make_producer(kafka_settings), topic, exchange, kafka_settings)
    await client.close()
    await app.stop(gateway)


def _duplicates() -> float:
    return REGISTRY.get_sample_value("gateway_feed_records_total", {"result": "duplicate"}) or 0.0


async def _read(
    call: grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdate],
    done: Callable[[PriceUpdate], bool],
) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    async with asyncio.timeout(60):  # a guard against a hang
        async for update in call:
            seen.append((update.feed_handler_id, update.feed_sequence))
            if done(update):
                return seen
    return seen


async def test_records_written_twice_reach_a_stream_once(harness: Harness) -> None:
    stream = harness.client.subscribe(["DUP"], harness.exchange)
    await subscribed(stream)
    now = time.time_ns()
    first = [harness.tick("DUP", "it-a", n, now + n * 1_000) for n in range(1, 31)]
    before = _duplicates()
    await harness.produce(first)
    await harness.produce(first)  # the copies
    await harness.produce([harness.tick("DUP", "it-a", 31, now + 31_000)])  # the end

    seen = await _read(stream, lambda update: update.feed_sequence == 31)
    stream.cancel()

    assert seen == [("it-a", n) for n in range(1, 32)]
    assert _duplicates() - before == 30


async def test_a_copy_is_dropped_where_two_feeds_share_a_venue_time(harness: Harness) -> None:
    """Two handlers of one venue (an A and a B line) stamp the venue's time: both ticks of the
    same nanosecond are served, and a copy of the first, coming after the second, is not."""
    stream = harness.client.subscribe(["AB"], harness.exchange)
    await subscribed(stream)
    now = time.time_ns()
    line_a, line_b = harness.tick("AB", "it-a", 1, now), harness.tick("AB", "it-b", 1, now)
    before = _duplicates()
    await harness.produce([line_a, line_b, line_a])
    await harness.produce([harness.tick("AB", "it-a", 2, now + 1_000)])  # the end

    seen = await _read(stream, lambda update: update.feed_sequence == 2)
    stream.cancel()

    assert seen == [("it-a", 1), ("it-b", 1), ("it-a", 2)]
    assert _duplicates() - before == 1

"""A gateway trading over the real Kafka: ticks produced to a topic of the test's own, order
events read back from the test's own trading topics (committed records only)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from financial.marketdata.v2.orders_pb2 import ExecutionReport, OrderStatusUpdate, PositionUpdate
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from gateway import app
from gateway.client import GatewayClient
from gateway.config import GatewaySettings
from gateway.fakes import MemoryQuoteStore
from gateway.trading.convert import TradingTopics
from marketcore.instruments import InstrumentKey
from marketcore.trading.model import Touch
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import KafkaSettings
from tests.contract.trading_support import TOKENS, Amount, exact
from tests.integration.support import create_topics_and_wait, flush_or_fail
from tests.support import nanos, price_update


@dataclass(frozen=True)
class Event:
    key: bytes
    message: Any


def create_topics(admin: AdminClient, names: Sequence[str], partitions: int = 4) -> None:
    """Create the test's topics and wait until they can be used (leaders elected)."""
    create_topics_and_wait(admin, names, partitions)


def read_committed(settings: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[Event]:
    """Every committed record of ``topic`` so far, partition by partition."""
    decode = {
        "orders": OrderStatusUpdate.FromString,
        "trades": ExecutionReport.FromString,
        "positions": PositionUpdate.FromString,
    }[topic.rsplit(".", 1)[-1]]
    consumer = make_consumer(
        settings,
        f"test-reader-{uuid.uuid4().hex[:8]}",
        {"isolation.level": "read_committed", "enable.partition.eof": True},
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        pending = set(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        events: list[Event] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                pytest.fail(f"could not read {topic} to its end in {timeout_s}s")
            for message in consumer.consume(500, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                        continue
                    pytest.fail(f"reading {topic}: {error}")
                events.append(Event(message.key() or b"", decode(message.value() or b"")))
        return events
    finally:
        consumer.close()


@dataclass
class TradingHarness:
    kafka: KafkaSettings
    ticks_topic: str
    topics: TradingTopics
    trading_id: str
    exchange: str
    reference: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    gateway: app.Gateway | None = None
    producer: Producer | None = None
    clients: list[GatewayClient] = field(default_factory=list)
    _sequence: int = 0

    def settings(self) -> GatewaySettings:
        return GatewaySettings(
            insecure=True,
            port=0,
            auth_tokens=TOKENS,
            kafka=self.kafka,
            ticks_topic=self.ticks_topic,
            trading="own",
            trading_id=self.trading_id,
            orders_topic=self.topics.orders,
            trades_topic=self.topics.trades,
            positions_topic=self.topics.positions,
            trading_reference_file=self.reference,
            shutdown_grace_s=2,
            **self.overrides,
        )

    async def start(self) -> app.Gateway:
        self.gateway = await app.start(self.settings(), store=MemoryQuoteStore())
        return self.gateway

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients.clear()
        if self.gateway is not None:
            await app.stop(self.gateway)
            self.gateway = None

    def client(self, token: str, **options: Any) -> GatewayClient:
        assert self.gateway is not None
        client = GatewayClient(f"127.0.0.1:{self.gateway.port}", token=token, **options)
        self.clients.append(client)
        return client

    async def tick(
        self,
        symbol: str,
        bid: Amount,
        ask: Amount,
        *,
        bid_size: Amount = 0,
        ask_size: Amount = 0,
        last: Amount = 0,
    ) -> None:
        """Produce a tick and wait until the gateway's order book has seen it."""
        update = await self.produce_tick(
            symbol, bid, ask, bid_size=bid_size, ask_size=ask_size, last=last
        )
        key = InstrumentKey(self.exchange, symbol)
        await self.until(
            lambda: self._seen(key, update), f"the gateway did not see tick #{self._sequence}"
        )

    async def produce_tick(
        self,
        symbol: str,
        bid: Amount,
        ask: Amount,
        *,
        bid_size: Amount = 0,
        ask_size: Amount = 0,
        last: Amount = 0,
    ) -> PriceUpdate:
        """Produce a tick to the ticks topic (acknowledged by Kafka) and return it."""
        self._sequence += 1
        now = time.time_ns()
        update = price_update(
            exchange=self.exchange,
            symbol=symbol,
            bid_nanos=exact(bid),
            ask_nanos=exact(ask),
            bid_size_nanos=exact(bid_size),
            ask_size_nanos=exact(ask_size),
            last_nanos=exact(last),
            event_time_ns=now,
            received_time_ns=now,
            feed_handler_id="it-trading",
            feed_sequence=self._sequence,
        )
        if self.producer is None:
            self.producer = make_producer(self.kafka)
        producer = self.producer

        def send() -> None:
            producer.produce(
                self.ticks_topic,
                key=InstrumentKey(self.exchange, symbol).kafka_key(),
                value=update.SerializeToString(),
            )
            flush_or_fail(producer, self.kafka.bootstrap_servers)

        await asyncio.to_thread(send)
        return update

    def _seen(self, key: InstrumentKey, update: PriceUpdate) -> bool:
        assert self.gateway is not None
        assert self.gateway.trading is not None
        touch = self.gateway.trading.desk.manager.touch(key)
        return touch is not None and (touch.bid_nanos, touch.ask_nanos) == (
            nanos(update.bid),
            nanos(update.ask),
        )

    async def until(self, condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(what)
            await asyncio.sleep(0.02)

    def events(self, which: str) -> list[Event]:
        return read_committed(self.kafka, getattr(self.topics, which))

    def touch(self, symbol: str) -> Touch | None:
        assert self.gateway is not None
        assert self.gateway.trading is not None
        return self.gateway.trading.desk.manager.touch(InstrumentKey(self.exchange, symbol))

"""Feed handlers against the real Kafka: simulator -> handler -> a topic of the test's own.

- keyed EXCHANGE|SYMBOL on the Java-compatible partition, per-symbol order kept, exactly
  the ticks the handler accepted, the last one equal to the simulator's book (over WebSocket
  with a coin-quoted product, ADA-BTC, whose prices and sizes are finer than a micro);
- the simulator stopped and started again: the handler reconnects and resumes;
- Kafka unreachable, then reachable: the bounded buffer applies its policy and every
  accepted tick is delivered (counted end to end);
- the real broker stopped and started under load: every accepted tick in Kafka exactly once;
- SIGTERM on a running ``python -m feedhandlers``: exit 0 and every accepted tick in Kafka;
- a capture replayed twice gives the same records (same ids and sequences).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from feedhandlers.adapters.itch_connection import SoupFeedConnection
from feedhandlers.adapters.kafka_sink import BUFFER_FULL, CONFLATED, KafkaTickSink
from feedhandlers.app import FeedHandler, build, replay
from feedhandlers.capture import read_frames
from feedhandlers.config import FeedHandlerSettings
from feedhandlers.replay import ReplayPace
from feedhandlers.simulator.coinbase_feed import CoinbaseFeed
from feedhandlers.simulator.fix_acceptor import FixAcceptor
from feedhandlers.simulator.itch_feed import ItchFeed, SoupBinTcpServer
from feedhandlers.simulator.ws_server import SimulatorServer
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketinfra.kafka import make_consumer
from marketinfra.settings import KafkaSettings
from mdgw.localinfra import LocalInfraSettings, down, up
from tests.integration.support import consume_or_fail, murmur2_partition
from tests.support import free_port, nanos, price_update

SYMBOLS = ["SIM0-USD", "SIM1-USD", "SIM2-USD", "SIM3-USD"]
PARTITIONS = 8
REPO = Path(__file__).parents[2]


def _read_all(
    settings: KafkaSettings, topic: str, count: int, timeout_s: float = 30
) -> list[Message]:
    consumer = make_consumer(settings, group_id=f"{topic}.reader")
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        messages = consume_or_fail(consumer, count, settings.bootstrap_servers, timeout_s)
        extra = consumer.poll(1.0)  # nothing beyond what was counted
        assert extra is None or extra.error() is not None, "more records than accepted"
        return messages
    finally:
        consumer.close()


def _check_keyed_and_ordered(messages: list[Message]) -> dict[str, list[PriceUpdate]]:
    by_symbol: dict[str, list[PriceUpdate]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        update = PriceUpdate.FromString(message.value())
        key = message.key()
        assert key == f"{update.exchange}|{update.symbol}".encode()
        assert message.partition() == murmur2_partition(key, PARTITIONS)
        by_symbol[update.symbol].append(update)
        partitions[update.symbol].add(message.partition())
    for symbol, updates in by_symbol.items():
        assert len(partitions[symbol]) == 1
        assert [u.feed_sequence for u in updates] == list(range(1, len(updates) + 1)), symbol
        times = [u.event_time_ns for u in updates]
        assert times == sorted(times), symbol
        # one-sided quotes are valid (0 = side empty: an ITCH book fills one order at a
        # time); a crossed or locked quote never is
        quotes = [(nanos(u.bid), nanos(u.ask)) for u in updates]
        crossed = [q for q in quotes if q[0] and q[1] and q[0] >= q[1]]
        assert not crossed, (symbol, crossed[:3])
        assert all(bid >= 0 and ask >= 0 for bid, ask in quotes)
    return by_symbol


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # polling counters the code under test updates
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _handler_running(handler: FeedHandler) -> AsyncIterator[None]:
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
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _nanos(text: str) -> int:
    """The simulator's price text in nanos, by Python's decimal (not the parser under test)."""
    value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value(), text
    return int(value)


@pytest.mark.parametrize("protocol", ["websocket", "fix", "itch"])
async def test_simulated_feed_lands_keyed_in_order_and_resumes_after_a_venue_restart(
    kafka_settings: KafkaSettings, make_topic, protocol: str
) -> None:
    topic = make_topic(PARTITIONS)
    # the WebSocket simulator also quotes a coin-quoted product: 8-decimal prices and sizes
    symbols = [*SYMBOLS, "ADA-BTC"] if protocol == "websocket" else SYMBOLS
    simulator: SimulatorServer | FixAcceptor | SoupBinTcpServer
    if protocol == "itch":
        simulator = SoupBinTcpServer(ItchFeed(SYMBOLS, seed=11), rate_per_s=500)
        await simulator.start(0)
        venue: dict[str, object] = {"venue": "itch", "url": f"tcp://127.0.0.1:{simulator.port}"}
        exchange = "NASDAQ"
    elif protocol == "fix":
        simulator = FixAcceptor(SYMBOLS, rate_per_s=500, seed=11)
        await simulator.start(0)
        venue = {
            "venue": "fix",
            "url": f"tcp://127.0.0.1:{simulator.port}",
            "fix_target_comp_id": "SIM",
            "fix_exchange": "FIXSIM",
        }
        exchange = "FIXSIM"
    else:
        simulator = SimulatorServer(CoinbaseFeed(symbols, seed=11), rate_per_s=500)
        await simulator.start(0)
        venue = {"venue": "coinbase", "url": simulator.url}
        exchange = "COINBASE"
    settings = FeedHandlerSettings(
        symbols=",".join(symbols),
        ticks_topic=topic,
        feed_handler_id="it-sim",
        reconnect_base_s=0.05,
        reconnect_cap_s=0.5,
        kafka=kafka_settings,
        **venue,  # type: ignore[arg-type]  # the venue's own settings
    )
    handler = build(settings)
    sink = handler.sink
    try:
        async with _handler_running(handler):
            await _until(lambda: sink.accepted >= 300, 20, "300 ticks before the restart")
            await simulator.stop()
            before = sink.accepted
            await _until(lambda: handler.connection.reconnects.total() >= 1, 10, "a disconnect")
            await simulator.start()  # same port, the market goes on
            await _until(
                lambda: handler.connection.connections == 2 and sink.accepted >= before + 300,
                20,
                "300 ticks after the restart",
            )
            if isinstance(simulator, SoupBinTcpServer):  # let it send all it has first
                await simulator.pause_market()
                connection = handler.connection
                assert isinstance(connection, SoupFeedConnection)
                history = simulator.feed.history
                await _until(lambda: connection.next_sequence == len(history) + 1, 30, "the rest")
            seen = handler.connection.reconnects.total()
            await simulator.stop()  # the last published book is now final
            # the disconnect is seen after the last byte: everything it sent has been read
            await _until(lambda: handler.connection.reconnects.total() > seen, 10, "a disconnect")
    finally:
        unacknowledged = sink.close(15)
        await simulator.stop()
    assert unacknowledged == 0
    assert sink.delivery_errors.total() == 0
    assert sink.dropped.total() == 0
    assert handler.pipeline.counters.rejected.total() == 0
    assert handler.pipeline.counters.sizes_dropped == 0

    by_symbol = _check_keyed_and_ordered(_read_all(kafka_settings, topic, sink.accepted))
    assert set(by_symbol) == set(symbols)
    truth: dict[str, tuple[int, int]]
    if isinstance(simulator, SoupBinTcpServer):  # Price(4) integers: four implied decimals
        truth = {s: (b * 100_000, a * 100_000) for s, (b, a) in simulator.feed.truth.items()}
    else:
        texts = simulator.truth if isinstance(simulator, FixAcceptor) else simulator.feed.truth
        truth = {s: (_nanos(b), _nanos(a)) for s, (b, a) in texts.items()}
    for symbol, quote in truth.items():
        last = by_symbol[symbol][-1]
        assert (nanos(last.bid), nanos(last.ask)) == quote
        assert (last.feed_handler_id, last.exchange) == ("it-sim", exchange)
    if protocol == "websocket":  # ADA-BTC near 0.00002288: finer than a micro, exact in Kafka
        ada = by_symbol["ADA-BTC"]
        assert any(nanos(u.bid) % 1000 for u in ada)
        assert any(nanos(u.last_size) % 1000 for u in ada)
        assert any(nanos(u.volume) % 1000 for u in ada)


@contextlib.asynccontextmanager
async def _tcp_proxy(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """Forward 127.0.0.1:``port`` to ``target`` (Kafka's bootstrap address)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_unreachable_kafka_bounds_the_buffer_then_delivers_every_accepted_tick(
    kafka_settings: KafkaSettings, make_topic
) -> None:
    """Kafka is away when the handler starts (its bootstrap port is closed); the producer
    queue (10 records) and the overflow slots (3 instruments) fill up and apply the policy;
    then Kafka is reachable and every accepted tick arrives: counted end to end."""
    topic = make_topic(PARTITIONS)
    port = free_port()
    host, _, kafka_port = kafka_settings.bootstrap_servers.split(",")[0].rpartition(":")
    away = kafka_settings.model_copy(
        update={
            "bootstrap_servers": f"127.0.0.1:{port}",
            "extra_config": {
                "reconnect.backoff.max.ms": "300",
                "topic.metadata.refresh.interval.ms": "1000",
            },
        }
    )
    sink = KafkaTickSink(away, topic, buffer_max_messages=10, overflow_max_instruments=3)
    sent: dict[bytes, int] = defaultdict(int)
    for n in range(40):
        key = f"TEST|S{n % 5}".encode()
        sent[key] += 1
        value = price_update(
            exchange="TEST", symbol=f"S{n % 5}", last_nanos=n + 1, feed_sequence=sent[key]
        )
        sink.send(key, value.SerializeToString())
        sink.poll()
    assert sink.accepted == 10  # the queue's bound
    assert sink.overflow_depth() == 3  # one slot per instrument, three instruments at most
    assert sink.dropped[BUFFER_FULL] > 0
    assert sink.dropped[CONFLATED] > 0
    assert sink.accepted + sink.overflow_depth() + sink.dropped.total() == 40
    async with _tcp_proxy(port, (host or "127.0.0.1", int(kafka_port))):
        unacknowledged = await asyncio.to_thread(sink.close, 30)
    assert unacknowledged == 0
    assert sink.delivery_errors.total() == 0
    assert sink.accepted == 13  # the queue's 10, then the 3 slots

    messages = _read_all(kafka_settings, topic, sink.accepted)
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        by_key[message.key()].append(PriceUpdate.FromString(message.value()).feed_sequence)
    # S0..S4 twice filled the queue; S0, S1, S2 got the slots and kept their newest tick
    # (sequence 8 of 8); S3 and S4 found no slot. Gaps in feed_sequence show the drops.
    assert dict(by_key) == {
        b"TEST|S0": [1, 2, 8],
        b"TEST|S1": [1, 2, 8],
        b"TEST|S2": [1, 2, 8],
        b"TEST|S3": [1, 2],
        b"TEST|S4": [1, 2],
    }


def _restart_kafka(settings: LocalInfraSettings, away_s: float) -> None:
    down(settings, only=["kafka"])
    time.sleep(away_s)
    up(settings, only=["kafka"])


async def test_a_kafka_restart_under_load_loses_no_accepted_tick(
    kafka_settings: KafkaSettings, make_topic
) -> None:
    """The real broker is stopped for 3 s and started again while the simulator keeps
    sending: the handler keeps reading, buffers, and every tick it accepted is in Kafka
    exactly once afterwards (per-symbol feed_sequence 1..n with no gap and no repeat)."""
    topic = make_topic(PARTITIONS)
    simulator = SimulatorServer(CoinbaseFeed(SYMBOLS, seed=3), rate_per_s=300)
    await simulator.start(0)
    patient = kafka_settings.model_copy(update={"delivery_timeout_ms": 120_000})
    settings = FeedHandlerSettings(
        venue="coinbase",
        url=simulator.url,
        symbols=",".join(SYMBOLS),
        ticks_topic=topic,
        feed_handler_id="it-kafka-restart",
        kafka=patient,
    )
    handler = build(settings)
    sink = handler.sink
    infra = LocalInfraSettings()
    try:
        async with _handler_running(handler):
            await _until(lambda: sink.accepted >= 200, 20, "200 ticks before the restart")
            before = sink.accepted
            await asyncio.to_thread(_restart_kafka, infra, 3.0)
            assert sink.accepted > before, "the handler stopped reading while Kafka was away"
            restarted_at = sink.accepted
            await _until(lambda: sink.accepted >= restarted_at + 200, 30, "ticks after it")
            await simulator.stop()
        unacknowledged = await asyncio.to_thread(sink.close, 60)
    finally:
        up(infra, only=["kafka"])  # whatever happened, the broker runs for the next test
        await simulator.stop()
    assert unacknowledged == 0
    assert sink.delivery_errors.total() == 0
    assert sink.dropped.total() == 0
    by_symbol = _check_keyed_and_ordered(_read_all(kafka_settings, topic, sink.accepted, 60))
    assert sum(len(updates) for updates in by_symbol.values()) == sink.accepted


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as stderr:
        process = subprocess.Popen(args, env=env, cwd=REPO, stdout=stderr, stderr=stderr)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


async def test_sigterm_flushes_every_accepted_tick(
    kafka_settings: KafkaSettings, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(PARTITIONS)
    simulator = SimulatorServer(CoinbaseFeed(SYMBOLS, seed=5), rate_per_s=300)
    await simulator.start(0)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "FEEDHANDLER_VENUE": "coinbase",
        "FEEDHANDLER_SYMBOLS": ",".join(SYMBOLS),
        "FEEDHANDLER_URL": simulator.url,
        "FEEDHANDLER_TICKS_TOPIC": topic,
        "LOG_FORMAT": "json",
    }
    log = tmp_path / "feedhandler.log"
    try:
        with _process([sys.executable, "-m", "feedhandlers"], env, log) as process:
            # SIGTERM only once the handler reads the venue (so its signal handlers are set:
            # on a busy machine its imports alone can take longer than a fixed wait), and
            # after it has taken a few hundred events
            deadline = time.monotonic() + 60  # a guard against a hang, far above the need
            subscribed_at: int | None = None
            while subscribed_at is None or simulator.events < subscribed_at + 600:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the handler did not run"
                if subscribed_at is None and '"venue_subscribed"' in log.read_text():
                    subscribed_at = simulator.events
                await asyncio.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)
    finally:
        await simulator.stop()
    stderr = log.read_text()
    assert process.returncode == 0, stderr
    stopped = [json.loads(line) for line in stderr.splitlines() if '"feedhandler_stopped"' in line]
    assert len(stopped) == 1, stderr
    summary = stopped[0]
    assert summary["unacknowledged"] == 0
    assert summary["delivery_errors"] == 0
    assert summary["accepted"] > 100
    messages = _read_all(kafka_settings, topic, summary["accepted"])
    assert len(messages) == summary["accepted"]
    _check_keyed_and_ordered(messages)


async def test_replaying_a_capture_twice_gives_the_same_records(
    kafka_settings: KafkaSettings, make_topic
) -> None:
    capture = REPO / "tests" / "data" / "binance" / "BINANCE.ws.1.0"
    topic = make_topic(PARTITIONS)
    settings = FeedHandlerSettings(venue="binance", ticks_topic=topic, kafka=kafka_settings)
    assert await replay(settings, capture, ReplayPace(0)) == 0
    assert await replay(settings, capture, ReplayPace(0)) == 0
    # one tick per bookTicker and aggTrade frame: none refused (LRC-BTC and BLZ-ETH quote
    # below a micro; before v2 11 of the 86 were refused)
    streams = [json.loads(f.payload)["stream"] for f in read_frames(capture)]
    ticks = sum(s.endswith(("@bookTicker", "@aggTrade")) for s in streams)
    assert ticks == 86
    messages = _read_all(kafka_settings, topic, 2 * ticks)
    records = sorted((m.key(), m.value()) for m in messages)
    first, second = records[0::2], records[1::2]
    assert first == second  # byte-identical pairs: the tick writer rewrites the same rows
    ids = {PriceUpdate.FromString(value).feed_handler_id for _, value in records}
    assert len(ids) == 1
    assert ids.pop().startswith("replay.binance.")

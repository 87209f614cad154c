"""ITCH over SoupBinTCP and MoldUDP64 against the local ITCH simulator (real sockets on
127.0.0.1, port 0), with a list instead of Kafka; and an ITCH file replayed."""

import asyncio
import contextlib
import gzip
import io
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

from feedhandlers.adapters.itch_connection import MoldReceiver, SoupFeedConnection
from feedhandlers.adapters.reconnecting import ConnectionSettings
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import ReplayPace, itch_file_records, replay_capture
from feedhandlers.simulator.itch_feed import ItchFeed, MoldUdp64Sender, SoupBinTcpServer
from feedhandlers.venues.itch.parse import ItchParser, session_midnight_ns
from financial.marketdata.v1.prices_pb2 import PriceUpdate
from marketcore.backoff import BackoffPolicy

SYMBOLS = ["AAA", "BBB", "CCC"]
FAST = ConnectionSettings(
    silence_timeout_s=3.0, open_timeout_s=2.0, backoff=BackoffPolicy(base_s=0.05, cap_s=0.2)
)
SAMPLE = Path(__file__).parents[1] / "data" / "itch" / "ex20101224.TEST_ITCH_50.gz"


class ListSink:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def send(self, key: bytes, value: bytes) -> None:
        self.records.append((key, value))

    def updates(self) -> list[PriceUpdate]:
        return [PriceUpdate.FromString(value) for _, value in self.records]


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition on objects the code under test updates (no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _check_final_books(updates: list[PriceUpdate], feed: ItchFeed) -> None:
    last = {u.symbol: (u.bid_micros, u.ask_micros) for u in updates}
    assert last == {s: (b * 100, a * 100) for s, (b, a) in feed.truth.items()}


async def test_soupbintcp_feed_resumes_where_it_stopped_after_a_restart() -> None:
    feed = ItchFeed(SYMBOLS, seed=5)
    server = SoupBinTcpServer(feed, rate_per_s=400)
    await server.start(0)
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(0), sink, "fh-itch")
    connection = SoupFeedConnection("127.0.0.1", server.port, pipeline, FAST)
    async with _running(connection.run()):
        await _until(lambda: len(sink.records) >= 100)
        await server.stop()
        await _until(lambda: connection.reconnects.total() >= 2)
        await server.start()
        await _until(lambda: connection.connections == 2 and len(sink.records) >= 250)
        await server.pause_market()
        await _until(lambda: connection.next_sequence == len(feed.history) + 1)
        await server.stop()
    assert server.logins[0] == 1
    assert server.logins[1] > 1  # the second login asked for the next message, not the first
    updates = sink.updates()
    for symbol in SYMBOLS:
        sequences = [u.feed_sequence for u in updates if u.symbol == symbol]
        assert sequences == list(range(1, len(sequences) + 1))
    _check_final_books(updates, feed)
    assert pipeline.counters.rejected.total() == 0
    assert pipeline.counters.frames.total() == len(feed.history)  # each message exactly once


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_moldudp64_gaps_are_detected_and_reported() -> None:
    port = _free_udp_port()
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(0), sink, "fh-mold")
    receiver = MoldReceiver("127.0.0.1", port, pipeline)
    feed = ItchFeed(SYMBOLS, seed=9)
    sender = MoldUdp64Sender(feed, rate_per_s=400, target=("127.0.0.1", port), drop_every=7)
    async with _running(receiver.run()):
        await _until(lambda: receiver.connected)
        await sender.start()
        try:
            await _until(lambda: sender.dropped >= 3 and len(sink.records) >= 50)
        finally:
            await sender.stop()
        await _until(lambda: receiver.sequence.expected == sender.sent_sequence)
    assert receiver.sequence.gaps == sender.dropped
    assert pipeline.counters.gaps == sender.dropped
    assert receiver.sequence.missing > 0


async def test_an_itch_file_replays_with_its_own_timestamps() -> None:
    midnight = session_midnight_ns(date(2010, 12, 24))
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(midnight, symbols={"BOB"}), sink, "replay.itch")
    capture = io.BytesIO(gzip.decompress(SAMPLE.read_bytes()))
    stats = await replay_capture(itch_file_records(capture, midnight), pipeline, ReplayPace(0))
    assert stats.frames == 12_012
    updates = sink.updates()
    assert {u.symbol for u in updates} == {"BOB"}
    assert all(u.received_time_ns == u.event_time_ns for u in updates)  # recorded time
    assert updates[0].event_time_ns == 1_293_197_939_052_372_053

"""ITCH over SoupBinTCP and MoldUDP64 against the local ITCH simulator (real sockets on
127.0.0.1, port 0), with a list instead of Kafka; and an ITCH file replayed."""

import gzip
import io
import socket
from datetime import date
from pathlib import Path

from feedhandlers.adapters.itch_connection import MoldReceiver, SoupFeedConnection
from feedhandlers.adapters.reconnecting import ConnectionSettings
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import ReplayPace, itch_file_records, replay_capture
from feedhandlers.simulator.itch_feed import ItchFeed, MoldUdp64Sender, SoupBinTcpServer
from feedhandlers.venues.itch.parse import ItchParser, session_midnight_ns
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.backoff import BackoffPolicy
from tests.support import ListSink, free_port, nanos, running, until

SYMBOLS = ["AAA", "BBB", "CCC"]
FAST = ConnectionSettings(
    silence_timeout_s=3.0, open_timeout_s=2.0, backoff=BackoffPolicy(base_s=0.05, cap_s=0.2)
)
SAMPLE = Path(__file__).parents[1] / "data" / "itch" / "ex20101224.TEST_ITCH_50.gz"


def _check_final_books(updates: list[PriceUpdate], feed: ItchFeed) -> None:
    last = {u.symbol: (nanos(u.bid), nanos(u.ask)) for u in updates}
    # truth is in ITCH Price(4): four implied decimals
    assert last == {s: (b * 100_000, a * 100_000) for s, (b, a) in feed.truth.items()}


async def test_soupbintcp_feed_resumes_where_it_stopped_after_a_restart() -> None:
    feed = ItchFeed(SYMBOLS, seed=5)
    server = SoupBinTcpServer(feed, rate_per_s=400)
    await server.start(0)
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(0), sink, "fh-itch")
    connection = SoupFeedConnection("127.0.0.1", server.port, pipeline, FAST)
    async with running(connection.run()):
        await until(lambda: len(sink.records) >= 100)
        await server.stop()
        await until(lambda: connection.reconnects.total() >= 2)
        await server.start()
        await until(lambda: connection.connections == 2 and len(sink.records) >= 250)
        await server.pause_market()
        await until(lambda: connection.next_sequence == len(feed.history) + 1)
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


async def test_moldudp64_gaps_are_detected_and_reported() -> None:
    port = free_port(socket.SOCK_DGRAM)
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(0), sink, "fh-mold")
    receiver = MoldReceiver("127.0.0.1", port, pipeline)
    feed = ItchFeed(SYMBOLS, seed=9)
    sender = MoldUdp64Sender(feed, rate_per_s=400, target=("127.0.0.1", port), drop_every=7)
    async with running(receiver.run()):
        await until(lambda: receiver.connected)
        await sender.start()
        try:
            await until(lambda: sender.dropped >= 3 and len(sink.records) >= 50)
        finally:
            await sender.stop()
        await until(lambda: receiver.sequence.expected == sender.sent_sequence)
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

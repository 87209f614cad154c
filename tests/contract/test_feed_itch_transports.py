"""ITCH over SoupBinTCP and MoldUDP64 against the local ITCH simulator (real sockets on
127.0.0.1, port 0), with a list instead of Kafka; and an ITCH file replayed."""

import gzip
import io
import socket
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from feedhandlers.adapters.itch_connection import MoldReceiver, SoupFeedConnection
from feedhandlers.adapters.reconnecting import ConnectionSettings
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import ReplayPace, itch_file_records, replay_capture
from feedhandlers.simulator.itch_feed import ItchFeed, MoldUdp64Sender, SoupBinTcpServer
from feedhandlers.venues.itch.parse import ItchParser
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.backoff import BackoffPolicy
from marketcore.trading_calendar import trade_date_text
from tests.support import ListSink, free_port, nanos, running, until

SYMBOLS = ["AAA", "BBB", "CCC"]
# Fast reconnects; silence and open timeouts far beyond a starved process's pauses (these tests
# count connections, and a busy machine must not add one).
FAST = ConnectionSettings(
    silence_timeout_s=30.0, open_timeout_s=30.0, backoff=BackoffPolicy(base_s=0.05, cap_s=0.2)
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
    pipeline = FeedPipeline(ItchParser(), sink, "fh-itch")
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
    pipeline = FeedPipeline(ItchParser(), sink, "fh-mold")
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
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(symbols={"BOB"}), sink, "replay.itch")
    capture = io.BytesIO(gzip.decompress(SAMPLE.read_bytes()))
    records = itch_file_records(capture, date(2010, 12, 24))
    stats = await replay_capture(records, pipeline, ReplayPace(0))
    assert stats.frames == 12_012
    updates = sink.updates()
    assert {u.symbol for u in updates} == {"BOB"}
    assert all(u.received_time_ns == u.event_time_ns for u in updates)  # recorded time
    assert updates[0].event_time_ns == 1_293_197_939_052_372_053


class SteppingClock:
    """The venue's clock, 10 ms further on each time it is read; our receipt clock reads the
    same time line (so a message is read after it was stamped)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.issued: list[int] = []

    def venue(self) -> datetime:
        self.now += timedelta(milliseconds=10)
        self.issued.append(self.unix_ns())
        return self.now

    def unix_ns(self) -> int:
        moment = self.now.astimezone(UTC)
        return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000

    def receipt(self) -> int:
        return self.unix_ns() + 1_000_000


async def test_soupbintcp_ticks_keep_their_venue_instant_across_a_new_york_midnight() -> None:
    clock = SteppingClock(datetime(2024, 6, 14, 23, 59, 59, tzinfo=ZoneInfo("America/New_York")))
    feed = ItchFeed(SYMBOLS, seed=3, now=clock.venue)
    server = SoupBinTcpServer(feed, rate_per_s=400)
    await server.start(0)
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(), sink, "fh-itch")
    connection = SoupFeedConnection("127.0.0.1", server.port, pipeline, FAST, wall_ns=clock.receipt)
    async with running(connection.run()):
        await until(lambda: len(clock.issued) > 300 and len(sink.records) >= 150)
        await server.stop()
    updates = sink.updates()
    issued = set(clock.issued)
    assert all(u.event_time_ns in issued for u in updates)  # each the instant it was stamped
    days = {trade_date_text("NASDAQ", u.event_time_ns) for u in updates}
    assert days == {"2024-06-14", "2024-06-15"}
    assert pipeline.counters.rejected.total() == 0

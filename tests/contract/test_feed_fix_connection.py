"""The FIX connection against the local FIX acceptor (real TCP on 127.0.0.1, port 0), with a
list instead of Kafka: logon, snapshot and refreshes into the right book, corrupted
messages counted and recovered from, and a restart of the venue."""

from decimal import Decimal

from feedhandlers.adapters.fix_connection import FixFeedConnection
from feedhandlers.adapters.reconnecting import ConnectionSettings
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.simulator.fix_acceptor import FixAcceptor
from feedhandlers.venues.fix.client import FixClient
from feedhandlers.venues.fix.parse import FixParser
from feedhandlers.venues.fix.session import SessionConfig
from marketcore.backoff import BackoffPolicy
from marketcore.normalization import RejectReason
from tests.support import ListSink, nanos, running, until

SYMBOLS = ["AAPL", "MSFT", "IBM"]
# Fast reconnects; an open timeout far beyond a starved process's pauses (connections counted).
FAST = ConnectionSettings(open_timeout_s=30.0, backoff=BackoffPolicy(base_s=0.05, cap_s=0.2))


def _connection(acceptor: FixAcceptor, sink: ListSink, heartbeat_s: int = 30) -> FixFeedConnection:
    client = FixClient(
        "127.0.0.1", acceptor.port, SYMBOLS, SessionConfig("MDGW", "SIM", heartbeat_s)
    )
    return FixFeedConnection(client, FeedPipeline(FixParser("FIXSIM"), sink, "fh-fix"), FAST)


def _nanos(text: str) -> int:
    """The simulator's price text in nanos, by Python's decimal (not the parser under test)."""
    value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value(), text
    return int(value)


async def test_fix_feed_follows_the_venue_and_resumes_after_a_restart() -> None:
    acceptor = FixAcceptor(SYMBOLS, rate_per_s=400, seed=2)
    await acceptor.start(0)
    sink = ListSink()
    connection = _connection(acceptor, sink)
    async with running(connection.run()):
        await until(lambda: len(sink.records) >= 100)
        await acceptor.stop()
        before = len(sink.records)
        await until(lambda: connection.reconnects.total() >= 2)
        await acceptor.start()
        await until(lambda: connection.connections == 2 and len(sink.records) >= before + 100)
        seen = connection.reconnects.total()
        await acceptor.stop()  # its last quotes are now final
        # read all it sent before its close (the disconnect is seen after the last byte)
        await until(lambda: connection.reconnects.total() > seen)
    updates = sink.updates()
    last = {u.symbol: (nanos(u.bid), nanos(u.ask)) for u in updates}
    assert last == {s: (_nanos(b), _nanos(a)) for s, (b, a) in acceptor.truth.items()}
    for symbol in SYMBOLS:
        sequences = [u.feed_sequence for u in updates if u.symbol == symbol]
        assert sequences == list(range(1, len(sequences) + 1))
    assert {u.exchange for u in updates} == {"FIXSIM"}
    assert connection.pipeline.counters.rejected.total() == 0


async def test_corrupted_messages_are_counted_and_the_books_recover() -> None:
    acceptor = FixAcceptor(SYMBOLS, rate_per_s=400, seed=4, corrupt_every=25)
    await acceptor.start(0)
    sink = ListSink()
    connection = _connection(acceptor, sink)
    async with running(connection.run()):
        await until(lambda: connection.pipeline.counters.rejected[RejectReason.MALFORMED] >= 3)
        await until(lambda: acceptor.resend_requests >= 3)
        count = len(sink.records)
        await until(lambda: len(sink.records) >= count + 50)  # still going
    await acceptor.stop()
    assert connection.gaps >= 3
    assert connection.connections == 1  # never disconnected
    assert all(0 < nanos(u.bid) < nanos(u.ask) for u in sink.updates())


async def test_a_quiet_venue_gets_a_test_request() -> None:
    # almost no market data and no heartbeats from the venue
    acceptor = FixAcceptor(SYMBOLS, rate_per_s=0.001, seed=1, send_heartbeats=False)
    await acceptor.start(0)
    connection = _connection(acceptor, ListSink(), heartbeat_s=1)
    async with running(connection.run()):
        await until(lambda: acceptor.test_requests >= 1, timeout_s=10)
    await acceptor.stop()
    assert connection.reconnects.total() == 0  # answered: the session stays up

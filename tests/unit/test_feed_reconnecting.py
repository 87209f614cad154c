"""The reconnect loop every venue connection shares stops when cancelled, even when a
session swallowed the cancellation (as 3.11's wait_for can when a connect fails at once)."""

import asyncio

from feedhandlers.adapters.reconnecting import ConnectionSettings, ReconnectingConnection
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from marketcore.backoff import BackoffPolicy
from tests.support import ListSink


class SwallowingConnection(ReconnectingConnection):
    venue = "test"

    def __init__(self) -> None:
        settings = ConnectionSettings(backoff=BackoffPolicy(base_s=0.01, cap_s=0.01))
        super().__init__(FeedPipeline(CoinbaseParser(), ListSink(), "fh"), settings)
        self.sessions = 0
        self.in_session = asyncio.Event()

    async def _session(self) -> str:
        self.sessions += 1
        self.in_session.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "unreachable"  # the cancellation is lost here
        return "closed"


async def test_a_cancel_swallowed_by_a_session_still_stops_the_loop() -> None:
    connection = SwallowingConnection()
    task = asyncio.create_task(connection.run())
    await connection.in_session.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done, "the connection kept reconnecting after it was cancelled"
    assert task.cancelled()
    assert connection.sessions == 1

"""The FIX 4.4 market-data connection: TCP, Logon, MarketDataRequest, read and recover.

The session rules (heartbeats, TestRequest, sequence gaps, Logout) are the pure
``venues.fix.session``; this module moves bytes. A message that fails BodyLength or
CheckSum is counted (``malformed``) and skipped; the session goes on. A sequence gap or
a book the parser cannot trust resubscribes those symbols for fresh snapshots. The
FIX heartbeat mechanism is the silence watchdog (``heartbeat_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence

import structlog

from feedhandlers.adapters.reconnecting import ConnectionSettings, ReconnectingConnection
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.fix.client import FixClient
from feedhandlers.venues.fix.parse import FixFormatError, FixFramer, FramedMessage, decode
from feedhandlers.venues.fix.session import FixSession

log = structlog.get_logger(__name__)
_READ_BYTES = 1 << 16
_TIMER_S = 0.5


class FixFeedConnection(ReconnectingConnection):
    def __init__(
        self,
        client: FixClient,
        pipeline: FeedPipeline,
        settings: ConnectionSettings,
        *,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(pipeline, settings, random_unit=random_unit)
        self.client = client
        self.venue = client.venue
        self.gaps = 0
        self._requests = 0

    async def _session(self) -> str:
        client = self.client
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(client.host, client.port), self.settings.open_timeout_s
            )
        except TimeoutError:
            return "open_timeout"
        except OSError as exc:
            log.warning(
                "venue_unreachable", venue=self.venue, url=client.endpoint(), error=str(exc)
            )
            return "unreachable"
        session = FixSession(client.session)
        self.pipeline.parser.reset()
        self.last_frame_monotonic = time.monotonic()
        timer = asyncio.create_task(self._heartbeats(session, writer))
        try:
            writer.write(session.logon(time.time_ns()))
            return await self._read(session, reader, writer)
        except (ConnectionError, OSError):
            return "closed"
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read(
        self, session: FixSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        framer = FixFramer()
        while True:
            data = await reader.read(_READ_BYTES)
            if not data:
                return "closed"
            self.last_frame_monotonic = time.monotonic()
            for piece in framer.feed(data):
                reason = self._on_piece(session, writer, piece)
                if reason:
                    await writer.drain()
                    return reason
            await writer.drain()

    def _on_piece(
        self, session: FixSession, writer: asyncio.StreamWriter, piece: FramedMessage
    ) -> str:
        """Handle one framed message; returns a reason to disconnect, or ""."""
        now_ns = time.time_ns()
        if piece.error:
            self.pipeline.count_malformed(piece.error)
            return ""
        try:
            message = decode(piece.raw)
        except FixFormatError as exc:
            self.pipeline.count_malformed(str(exc))
            return ""
        outcome = session.on_message(message, now_ns)
        for reply in outcome.send:
            writer.write(reply)
        if outcome.logged_on:
            self._on_logged_on(session, writer, now_ns)
        if outcome.rejected:
            log.warning("fix_session_reject", venue=self.venue, text=outcome.rejected)
        if outcome.gap is not None:
            self.gaps += 1
            self.pipeline.counters.gaps += 1
            log.warning("fix_sequence_gap", venue=self.venue, missing=outcome.gap)
            self._resubscribe(session, writer, list(self.client.symbols), now_ns)
        if outcome.dropped:
            return outcome.disconnect
        result = self.pipeline.on_frame(piece.raw, now_ns)
        if result.resync:
            self._resubscribe(session, writer, result.resync, now_ns)
        return outcome.disconnect

    def _on_logged_on(self, session: FixSession, writer: asyncio.StreamWriter, now_ns: int) -> None:
        self.connections += 1
        self.connected = True
        self._requests += 1
        writer.write(self.client.subscribe(session, now_ns, f"md-{self._requests}"))
        log.info("venue_subscribed", venue=self.venue, url=self.client.endpoint())

    def _resubscribe(
        self, session: FixSession, writer: asyncio.StreamWriter, symbols: Sequence[str], now_ns: int
    ) -> None:
        self._requests += 1
        for message in self.client.resubscribe(session, symbols, now_ns, f"md-{self._requests}"):
            writer.write(message)

    async def _heartbeats(self, session: FixSession, writer: asyncio.StreamWriter) -> None:
        while True:
            await asyncio.sleep(_TIMER_S)
            outcome = session.on_timer(time.time_ns())
            for message in outcome.send:
                writer.write(message)
            if outcome.disconnect:
                log.warning("venue_silent", venue=self.venue, reason=outcome.disconnect)
                writer.close()
                return

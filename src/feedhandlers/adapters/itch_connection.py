"""ITCH 5.0 transports: SoupBinTCP (a TCP session that can resume) and MoldUDP64 (UDP).

SoupBinTCP: log in asking for the next sequence number we need, so a reconnect resumes
exactly where the last connection stopped (no gap, no duplicate; the books carry on);
heartbeat every second; no packet for ``silence_timeout_s`` closes the connection.

MoldUDP64: bind a UDP port, read datagrams, keep the messages in sequence order, drop
duplicates, and report gaps (``gaps``, ``missing``; metric ``feedhandler_gaps_total``).
Every packet is counted in ``feedhandler_messages_received_total{kind}``: its new messages by
what they are, messages seen before as ``duplicate``, heartbeats as ``heartbeat``, and
packets that break the specification (sequence number 0, lengths that do not add up) as
``malformed``.
Nothing is retransmitted here: a book touched by lost messages may be wrong until the
orders concerned are gone, which is why the gap is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable

import structlog

from feedhandlers.adapters.reconnecting import ConnectionSettings, ReconnectingConnection
from feedhandlers.parsing import FrameKind
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.itch import schema
from feedhandlers.venues.itch.parse import MoldSequence, SoupFramer, parse_mold_packet

log = structlog.get_logger(__name__)
_READ_BYTES = 1 << 16


class SoupFeedConnection(ReconnectingConnection):
    def __init__(
        self,
        host: str,
        port: int,
        pipeline: FeedPipeline,
        settings: ConnectionSettings,
        *,
        username: str = "",
        password: str = "",
        random_unit: Callable[[], float] = random.random,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``wall_ns``: the receipt clock (Unix ns), which dates each message (injected in
        tests that cross a midnight)."""
        super().__init__(pipeline, settings, random_unit=random_unit)
        self.wall_ns = wall_ns
        self.venue = "itch"
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.next_sequence = 1
        self.session = ""

    async def _session(self) -> str:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.settings.open_timeout_s
            )
        except TimeoutError:
            return "open_timeout"
        except OSError as exc:
            log.warning("venue_unreachable", venue=self.venue, port=self.port, error=str(exc))
            return "unreachable"
        heartbeat = asyncio.create_task(self._heartbeats(writer))
        try:
            writer.write(
                schema.soup_login(self.username, self.password, self.session, self.next_sequence)
            )
            return await self._read(reader)
        except (ConnectionError, OSError):
            return "closed"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> str:
        framer = SoupFramer()
        on_frame = self.pipeline.on_frame
        wall_ns = self.wall_ns
        while True:
            try:
                data = await asyncio.wait_for(
                    reader.read(_READ_BYTES), self.settings.silence_timeout_s
                )
            except TimeoutError:
                log.warning("venue_silent", venue=self.venue)
                return "silence"
            if not data:
                return "closed"
            self.last_frame_monotonic = time.monotonic()
            for kind, payload in framer.feed(data):
                if kind == schema.SOUP_SEQUENCED:
                    on_frame(payload, wall_ns())
                    self.next_sequence += 1
                elif kind == schema.SOUP_LOGIN_ACCEPTED:
                    self.session = payload[:10].decode("ascii", "replace").strip()
                    self.connections += 1
                    self.connected = True
                    log.info("venue_subscribed", venue=self.venue, next_sequence=self.next_sequence)
                elif kind == schema.SOUP_LOGIN_REJECTED:
                    log.error("soup_login_rejected", venue=self.venue, reason=payload[:1].decode())
                    return "login_rejected"
                elif kind == schema.SOUP_END_OF_SESSION:
                    return "end_of_session"

    @staticmethod
    async def _heartbeats(writer: asyncio.StreamWriter) -> None:
        while True:
            await asyncio.sleep(1.0)
            writer.write(schema.soup_client_heartbeat())


class _MoldProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: MoldReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.receiver.on_datagram(data)


class MoldReceiver:
    """Reads MoldUDP64 datagrams on ``(host, port)`` into the pipeline until cancelled."""

    def __init__(
        self,
        host: str,
        port: int,
        pipeline: FeedPipeline,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.wall_ns = wall_ns  # the receipt clock, which dates each message
        self.venue = "itch"
        self.host, self.port = host, port
        self.pipeline = pipeline
        self.sequence = MoldSequence()
        self.reconnects: Counter[str] = Counter()  # UDP: never; kept for the metrics
        self.connections = 0
        self.connected = False
        self.last_frame_monotonic = time.monotonic()
        self.bound_port = 0

    def seconds_since_last_frame(self) -> float:
        return time.monotonic() - self.last_frame_monotonic

    def on_datagram(self, data: bytes) -> None:
        self.last_frame_monotonic = time.monotonic()
        try:
            packet = parse_mold_packet(data)
        except ValueError as exc:
            self.pipeline.count_malformed(str(exc))
            return
        sequence = self.sequence
        duplicates, heartbeats = sequence.duplicates, sequence.heartbeats
        messages, gap = sequence.accept(packet)
        frames = self.pipeline.counters.frames
        if sequence.duplicates != duplicates:
            frames[FrameKind.DUPLICATE] += sequence.duplicates - duplicates
        if sequence.heartbeats != heartbeats:
            frames[FrameKind.HEARTBEAT] += 1
        if gap is not None:
            self.pipeline.counters.gaps += 1
            log.warning("mold_gap", venue=self.venue, first_missing=gap[0], missing=gap[1])
        now_ns = self.wall_ns()
        for message in messages:
            self.pipeline.on_frame(message, now_ns)
        if packet.end_of_session:
            log.info("mold_end_of_session", venue=self.venue, session=packet.session)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _MoldProtocol(self), local_addr=(self.host, self.port)
        )
        self.bound_port = int(transport.get_extra_info("sockname")[1])
        self.connections += 1
        self.connected = True
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self.connected = False
            transport.close()

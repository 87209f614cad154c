"""A synthetic NASDAQ market written as ITCH 5.0 messages, served over SoupBinTCP and
MoldUDP64 (``mdgw simulate --venue itch``), for demos and tests.

The encoders here are written from the ITCH 5.0, SoupBinTCP 4.0 and MoldUDP64 1.0
specifications, independently of our parser (no shared code).

Market: per stock one displayed bid order and one ask order at the top of book, moved by
the random walk (Order Delete of the old order, Add Order of the new one), and trades as
Order Executed against the top order. ``truth`` is each stock's published top.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from feedhandlers.simulator.walk import QuoteWalk

log = structlog.get_logger(__name__)
_TICK_S = 0.005
_NEW_YORK = ZoneInfo("America/New_York")


def _header(kind: bytes, locate: int, nanos_since_midnight: int) -> bytes:
    return kind + struct.pack(">HH", locate, 0) + nanos_since_midnight.to_bytes(6, "big")


def stock_directory(locate: int, stock: str, nanos: int) -> bytes:
    # Stock, Market Category, FSI, Round Lot Size, Round Lots Only, Issue Classification,
    # Issue Sub-Type, Authenticity, Short Sale Threshold, IPO Flag, LULD Tier, ETP Flag,
    # ETP Leverage Factor, Inverse Indicator: 39 bytes in all
    body = struct.pack(
        ">8sccIcc2scccccIc", stock.encode().ljust(8), b"Q", b"N", 100, b"N", b"C", b"Z ",
        b"P", b"N", b"N", b"1", b"N", 0, b"N",
    )  # fmt: skip
    return _header(b"R", locate, nanos) + body


def add_order(
    locate: int, ref: int, buy: bool, shares: int, stock: str, price4: int, nanos: int
) -> bytes:
    side = b"B" if buy else b"S"
    body = struct.pack(">QcI8sI", ref, side, shares, stock.encode().ljust(8), price4)
    return _header(b"A", locate, nanos) + body


def order_delete(locate: int, ref: int, nanos: int) -> bytes:
    return _header(b"D", locate, nanos) + struct.pack(">Q", ref)


def order_executed(locate: int, ref: int, shares: int, match: int, nanos: int) -> bytes:
    return _header(b"E", locate, nanos) + struct.pack(">QIQ", ref, shares, match)


def system_event(code: bytes, nanos: int) -> bytes:
    return _header(b"S", 0, nanos) + code


@dataclass(slots=True)
class _Stock:
    locate: int
    symbol: str
    walk: QuoteWalk
    bid_ref: int = 0
    ask_ref: int = 0
    bid_shares: int = 0
    ask_shares: int = 0


class ItchFeed:
    """The market and its message history (SoupBinTCP serves any part of it again)."""

    def __init__(
        self,
        symbols: list[str],
        *,
        seed: int = 7,
        now: Callable[[], datetime] = lambda: datetime.now(tz=_NEW_YORK),
    ) -> None:
        """``now``: the venue's clock (aware), whose time of day stamps every message."""
        self._now = now
        self._random = random.Random(seed)
        self._next_ref = 1
        self._match = 1
        self.history: list[bytes] = []  # message n has sequence number n + 1
        self.truth: dict[str, tuple[int, int]] = {}  # symbol -> (bid, ask) in Price(4)
        self._stocks = [
            _Stock(n + 1, symbol, QuoteWalk(bid_ticks=500_000 + 10_000 * n, floor_ticks=1000))
            for n, symbol in enumerate(symbols)
        ]
        nanos = self._nanos()
        self.history.append(system_event(b"O", nanos))
        for stock in self._stocks:
            self.history.append(stock_directory(stock.locate, stock.symbol, nanos))
            self._requote(stock, nanos)

    def _nanos(self) -> int:
        """Nanoseconds since midnight, New York time (ITCH's time base): elapsed time, so the
        days DST starts or ends count 23 or 25 hours."""
        now = self._now().astimezone(_NEW_YORK)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        elapsed = now.astimezone(UTC) - midnight.astimezone(UTC)
        return elapsed // timedelta(microseconds=1) * 1000

    def _ref(self) -> int:
        self._next_ref += 1
        return self._next_ref

    def _requote(self, stock: _Stock, nanos: int, moved_up: bool = False) -> None:
        """Move the top orders to the walk's quote without ever emptying or crossing the
        book: per side, add the new order before deleting the old one, and move the side
        in the direction of travel first (the ask when going up, the bid when going down)."""
        quote = stock.walk.quote()
        sides = [(False, quote.ask_ticks), (True, quote.bid_ticks)]
        if not moved_up:
            sides.reverse()
        for buy, ticks in sides:
            old_ref = stock.bid_ref if buy else stock.ask_ref
            ref, shares = self._ref(), self._random.randint(1, 50) * 100
            # a price tick of the walk is one cent: Price(4) = ticks * 100
            self.history.append(
                add_order(stock.locate, ref, buy, shares, stock.symbol, ticks * 100, nanos)
            )
            if old_ref:
                self.history.append(order_delete(stock.locate, old_ref, nanos))
            if buy:
                stock.bid_ref, stock.bid_shares = ref, shares
            else:
                stock.ask_ref, stock.ask_shares = ref, shares
        self.truth[stock.symbol] = (quote.bid_ticks * 100, quote.ask_ticks * 100)

    def next_event(self) -> int:
        """Append one market event's messages; returns how many were added."""
        before = len(self.history)
        stock = self._random.choice(self._stocks)
        nanos = self._nanos()
        if self._random.random() < 0.3:
            buy = self._random.random() < 0.5
            available = stock.ask_shares if buy else stock.bid_shares
            if available > 100:
                shares = (
                    self._random.randint(1, available // 100 - 1) * 100 if available > 200 else 100
                )
                ref = stock.ask_ref if buy else stock.bid_ref
                self._match += 1
                self.history.append(order_executed(stock.locate, ref, shares, self._match, nanos))
                if buy:
                    stock.ask_shares -= shares
                else:
                    stock.bid_shares -= shares
                return len(self.history) - before
        old_bid = stock.walk.bid_ticks
        stock.walk.step(self._random.random)
        self._requote(stock, nanos, moved_up=stock.walk.bid_ticks > old_bid)
        return len(self.history) - before


class SoupBinTcpServer:
    """Serves an ``ItchFeed`` over SoupBinTCP: login (any user), then sequenced messages from
    the requested sequence number; heartbeats when idle; ``stop``/``start`` keep the feed."""

    def __init__(
        self,
        feed: ItchFeed,
        rate_per_s: float,
        host: str = "127.0.0.1",
        session: str = "SIM0000001",
    ) -> None:
        self.feed = feed
        self.rate_per_s = rate_per_s
        self.host = host
        self.port = 0
        self.session = session.encode().rjust(10)[:10]
        self.events = 0
        self.logins: list[int] = []  # requested sequence numbers, per login
        self._server: asyncio.Server | None = None
        self._pump: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._started = 0.0

    async def start(self, port: int | None = None) -> int:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port if port is None else port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._pump = asyncio.create_task(self._run_market())
        return self.port

    async def pause_market(self) -> None:
        """No new events; connections stay up and are sent what they have not had yet."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def stop(self) -> None:
        await self.pause_market()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _run_market(self) -> None:
        started, done = time.monotonic(), self.events
        while True:
            due = int((time.monotonic() - started) * self.rate_per_s) - (self.events - done)
            for _ in range(min(due, 10_000)):
                self.feed.next_event()
                self.events += 1
            await asyncio.sleep(_TICK_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            header = await reader.readexactly(3)
            length = int.from_bytes(header[:2], "big")
            payload = await reader.readexactly(length - 1)
            if header[2:3] != b"L" or len(payload) != 46:
                writer.write(b"\x00\x02JA")  # login rejected: not authorized
                return
            requested = int(payload[26:46].strip() or b"1")
            next_seq = max(1, requested)
            self.logins.append(next_seq)
            accepted = b"A" + self.session + str(next_seq).encode().rjust(20)
            writer.write(len(accepted).to_bytes(2, "big") + accepted)
            reading = asyncio.create_task(self._drain_client(reader))
            last_sent = time.monotonic()
            while not reading.done():
                history = self.feed.history
                while next_seq <= len(history):
                    message = b"S" + history[next_seq - 1]
                    writer.write(len(message).to_bytes(2, "big") + message)
                    next_seq += 1
                    last_sent = time.monotonic()
                if time.monotonic() - last_sent >= 1.0:
                    writer.write(b"\x00\x01H")
                    last_sent = time.monotonic()
                await writer.drain()
                await asyncio.sleep(_TICK_S)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _drain_client(reader: asyncio.StreamReader) -> None:
        """Read client heartbeats until logout or close."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(3)
                if header[2:3] == b"O":
                    return
                length = int.from_bytes(header[:2], "big")
                if length > 1:
                    await reader.readexactly(length - 1)


class MoldUdp64Sender:
    """Sends an ``ItchFeed`` as MoldUDP64 datagrams to (host, port), a heartbeat each idle
    second and an end-of-session datagram on stop; ``drop_every`` > 0 drops every Nth data
    datagram (a gap the receiver must report)."""

    def __init__(
        self,
        feed: ItchFeed,
        rate_per_s: float,
        target: tuple[str, int],
        *,
        session: str = "SIM0000001",
        drop_every: int = 0,
    ) -> None:
        self.feed = feed
        self.rate_per_s = rate_per_s
        self.target = target
        self.session = session.encode().rjust(10)[:10]
        self.drop_every = drop_every
        self.sent_sequence = 1
        self.datagrams = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=self.target
        )
        self._task = asyncio.create_task(self._run(transport))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, transport: asyncio.DatagramTransport) -> None:
        started, events = time.monotonic(), 0
        last_sent = time.monotonic()
        try:
            while True:
                due = int((time.monotonic() - started) * self.rate_per_s) - events
                for _ in range(min(due, 10_000)):
                    self.feed.next_event()
                    events += 1
                history = self.feed.history
                while self.sent_sequence <= len(history):
                    batch = history[self.sent_sequence - 1 : self.sent_sequence - 1 + 20]
                    body = b"".join(len(m).to_bytes(2, "big") + m for m in batch)
                    datagram = (
                        self.session + struct.pack(">QH", self.sent_sequence, len(batch)) + body
                    )
                    self.datagrams += 1
                    if self.drop_every and self.datagrams % self.drop_every == 0:
                        self.dropped += 1
                    else:
                        transport.sendto(datagram)
                    self.sent_sequence += len(batch)
                    last_sent = time.monotonic()
                if time.monotonic() - last_sent >= 1.0:  # heartbeat: the next sequence number
                    transport.sendto(self.session + struct.pack(">QH", self.sent_sequence, 0))
                    last_sent = time.monotonic()
                await asyncio.sleep(_TICK_S)
        finally:
            # end of session (never dropped): a receiver sees a gap at the very end too
            transport.sendto(self.session + struct.pack(">QH", self.sent_sequence, 0xFFFF))
            transport.close()

"""A local FIX 4.4 market-data acceptor (``mdgw simulate --venue fix``), for demos and tests.

Its encoder and framing are written here from the FIX 4.4 rules, independently of our
parser (no shared code): BodyLength counts the bytes after the BodyLength field up to the
CheckSum field; CheckSum is their byte sum (from ``8=``) modulo 256.

- Logon (A) is answered with Logon; TestRequest (1) with Heartbeat carrying TestReqID;
  ResendRequest (2) with SequenceReset-GapFill (market data is not resent); Logout (5)
  with Logout, then the connection closes. A Heartbeat goes out every HeartBtInt.
- MarketDataRequest (V, 263=1) gets a snapshot (W) per symbol, then incremental refreshes
  (X): top-of-book moves (delete the old level, add the new one) and trades, from the same
  random walks as the WebSocket simulator, at ``rate_per_s`` events per second in total.
  263=2 unsubscribes.
- ``corrupt_every`` > 0 sends every Nth refresh with a wrong CheckSum (its MsgSeqNum is
  used up, so the handler also sees a sequence gap): how tests check recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from feedhandlers.simulator.coinbase_feed import decimal_text
from feedhandlers.simulator.walk import QuoteWalk

log = structlog.get_logger(__name__)
_SOH = "\x01"
_TICK_S = 0.005


def _utc(now_ns: int) -> str:
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%d-%H:%M:%S")
    return f"{stamp}.{nanos // 1_000_000:03d}"


def build(fields: list[tuple[int, str]], *, corrupt: bool = False) -> bytes:
    """``fields`` from MsgType (35) on, framed with BeginString, BodyLength and CheckSum."""
    body = "".join(f"{tag}={value}{_SOH}" for tag, value in fields)
    head = f"8=FIX.4.4{_SOH}9={len(body.encode())}{_SOH}"
    total = sum((head + body).encode()) % 256
    if corrupt:
        total = (total + 1) % 256
    return f"{head}{body}10={total:03d}{_SOH}".encode()


def _split(buffer: bytearray) -> list[tuple[bytes, dict[int, str]]]:
    """Whole messages at the front of ``buffer``: raw, and tag -> value (the last one wins)."""
    messages: list[tuple[bytes, dict[int, str]]] = []
    while True:
        end = buffer.find(b"\x0110=")
        if end < 0 or len(buffer) < end + 8:
            return messages
        raw = bytes(buffer[: end + 8])
        del buffer[: end + 8]
        fields: dict[int, str] = {}
        for item in raw.decode("ascii", "replace").split(_SOH):
            tag, _, value = item.partition("=")
            if tag.isdigit():
                fields[int(tag)] = value
        messages.append((raw, fields))


def _symbols(raw_request: bytes) -> list[str]:
    """Every Symbol (55) of a request (a repeating group)."""
    return [
        item[3:]
        for item in raw_request.decode("ascii", "replace").split(_SOH)
        if item.startswith("55=")
    ]


@dataclass(slots=True)
class _Market:
    walk: QuoteWalk
    bid_size: int = 100
    ask_size: int = 100
    last: int = 0


@dataclass(slots=True, eq=False)  # sessions are compared by identity
class _Session:
    writer: asyncio.StreamWriter
    sender: str
    target: str = ""
    out_seq: int = 1
    heartbeat_s: float = 30.0
    last_sent: float = 0.0
    subscribed: set[str] = field(default_factory=set)
    logged_on: bool = False

    def send(self, msg_type: str, body: list[tuple[int, str]], *, corrupt: bool = False) -> None:
        header = [(35, msg_type), (49, self.sender), (56, self.target), (34, str(self.out_seq)),
                  (52, _utc(time.time_ns()))]  # fmt: skip
        self.out_seq += 1
        self.last_sent = time.monotonic()
        self.writer.write(build(header + body, corrupt=corrupt))


class FixAcceptor:
    def __init__(
        self,
        symbols: list[str],
        rate_per_s: float,
        *,
        seed: int = 7,
        host: str = "127.0.0.1",
        sender_comp_id: str = "SIM",
        corrupt_every: int = 0,
        send_heartbeats: bool = True,
    ) -> None:
        self._random = random.Random(seed)
        self.markets = {
            symbol: _Market(QuoteWalk(bid_ticks=10_000 + 100 * n))
            for n, symbol in enumerate(symbols)
        }
        self.rate_per_s = rate_per_s
        self.host = host
        self.port = 0
        self.sender = sender_comp_id
        self.corrupt_every = corrupt_every
        self.send_heartbeats = send_heartbeats  # False: a quiet venue (TestRequest tests)
        self.events = 0
        self.refreshes = 0
        self.resend_requests = 0
        self.test_requests = 0
        # symbol -> (bid text, ask text) as last published
        self.truth: dict[str, tuple[str, str]] = {}
        self._sessions: set[_Session] = set()
        self._server: asyncio.Server | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self, port: int | None = None) -> int:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port if port is None else port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._pump = asyncio.create_task(self._run_market())
        log.info("fix_simulator_listening", host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for session in list(self._sessions):
            session.writer.close()
        self._sessions.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer, self.sender)
        self._sessions.add(session)
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                for raw, request in _split(buffer):
                    if not self._on_request(session, request, raw):
                        return
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._sessions.discard(session)
            writer.close()

    def _on_request(self, session: _Session, request: dict[int, str], raw: bytes) -> bool:
        kind = request.get(35)
        if kind == "A":
            session.target = request.get(49, "")
            session.heartbeat_s = float(request.get(108, "30") or 30)
            if request.get(141) == "Y":
                session.out_seq = 1
            session.logged_on = True
            session.send("A", [(98, "0"), (108, request.get(108, "30")), (141, "Y")])
        elif kind == "1":
            self.test_requests += 1
            session.send("0", [(112, request.get(112, ""))])
        elif kind == "2":
            self.resend_requests += 1
            # market data is not resent: fill the gap (PossDup, sent with the gap's first number)
            header_seq = request.get(7, "1")
            body = [(43, "Y"), (123, "Y"), (36, str(session.out_seq))]
            header = [(35, "4"), (49, self.sender), (56, session.target), (34, header_seq),
                      (52, _utc(time.time_ns()))]  # fmt: skip
            session.writer.write(build(header + body))
        elif kind == "V":
            symbols = [s for s in _symbols(raw) if s in self.markets]
            if request.get(263) == "2":
                session.subscribed.difference_update(symbols)
            else:
                session.subscribed.update(symbols)
                for symbol in symbols:
                    self._snapshot(session, symbol)
        elif kind == "5":
            session.send("5", [])
            return False
        return True

    def _snapshot(self, session: _Session, symbol: str) -> None:
        market = self.markets[symbol]
        quote = market.walk.quote()
        bid, ask = decimal_text(quote.bid_ticks, 2), decimal_text(quote.ask_ticks, 2)
        entries = [(269, "0"), (270, bid), (271, str(market.bid_size)),
                   (269, "1"), (270, ask), (271, str(market.ask_size))]  # fmt: skip
        if market.last:
            entries += [(269, "2"), (270, decimal_text(market.last, 2)), (271, "1")]
        count = sum(1 for tag, _ in entries if tag == 269)
        session.send("W", [(262, "md"), (55, symbol), (268, str(count)), *entries])
        self.truth[symbol] = (bid, ask)

    async def _run_market(self) -> None:
        started = time.monotonic()
        while True:
            now = time.monotonic()
            due = int((now - started) * self.rate_per_s) - self.events
            for _ in range(min(due, 10_000)):
                self._event()
            for session in list(self._sessions):
                idle = now - session.last_sent >= session.heartbeat_s
                if self.send_heartbeats and session.logged_on and idle:
                    session.send("0", [])
            for session in list(self._sessions):
                with contextlib.suppress(ConnectionError):
                    await session.writer.drain()
            await asyncio.sleep(_TICK_S)

    def _event(self) -> None:
        self.events += 1
        symbol = self._random.choice(list(self.markets))
        market = self.markets[symbol]
        old = market.walk.quote()
        entries: list[tuple[int, str]] = []
        if self._random.random() < 0.3:
            market.last = old.bid_ticks if self._random.random() < 0.5 else old.ask_ticks
            entries += [(279, "0"), (269, "2"), (55, symbol), (270, decimal_text(market.last, 2)),
                        (271, str(self._random.randint(1, 500)))]  # fmt: skip
        else:
            new = market.walk.step(self._random.random)
            market.bid_size = self._random.randint(1, 1000)
            market.ask_size = self._random.randint(1, 1000)
            for side, old_ticks, new_ticks, size in (
                ("0", old.bid_ticks, new.bid_ticks, market.bid_size),
                ("1", old.ask_ticks, new.ask_ticks, market.ask_size),
            ):
                if old_ticks != new_ticks:
                    entries += [
                        (279, "2"),
                        (269, side),
                        (55, symbol),
                        (270, decimal_text(old_ticks, 2)),
                    ]
                    entries += [
                        (279, "0"),
                        (269, side),
                        (55, symbol),
                        (270, decimal_text(new_ticks, 2)),
                        (271, str(size)),
                    ]
                else:
                    entries += [
                        (279, "1"),
                        (269, side),
                        (55, symbol),
                        (270, decimal_text(new_ticks, 2)),
                        (271, str(size)),
                    ]
            self.truth[symbol] = (decimal_text(new.bid_ticks, 2), decimal_text(new.ask_ticks, 2))
        count = sum(1 for tag, _ in entries if tag == 279)
        for session in list(self._sessions):
            if symbol in session.subscribed:
                self.refreshes += 1
                corrupt = bool(self.corrupt_every) and self.refreshes % self.corrupt_every == 0
                session.send("X", [(262, "md"), (268, str(count)), *entries], corrupt=corrupt)

"""``mdgw simulate``: a local WebSocket exchange speaking Coinbase's format, for demos and tests.

One market (``CoinbaseFeed``) per server, shared by every connection and kept across
``stop()``/``start()``, so a restarted simulator continues where it was. A connection
subscribes with Coinbase's ``subscribe`` message; it gets ``subscriptions``, a ``snapshot``
per product if it asked for ``level2``, then the events of its products and channels at
``rate_per_s`` events per second in total, and a ``heartbeat`` per product every second
if it asked for ``heartbeat``. Unsubscribing and subscribing ``level2`` again gets a new
snapshot (how a handler resynchronizes a book).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from feedhandlers.simulator.coinbase_feed import CoinbaseFeed

log = structlog.get_logger(__name__)
_TICK_S = 0.005


@dataclass(slots=True, eq=False)  # sessions are compared by identity
class _Session:
    connection: ServerConnection
    # channel -> product ids
    subscriptions: dict[str, set[str]] = field(default_factory=dict)

    def wants(self, channel: str, product_id: str) -> bool:
        return product_id in self.subscriptions.get(channel, ())


class SimulatorServer:
    def __init__(self, feed: CoinbaseFeed, rate_per_s: float, host: str = "127.0.0.1") -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be positive: {rate_per_s}")
        self.feed = feed
        self.rate_per_s = rate_per_s
        self.host = host
        self.port = 0
        self.events = 0
        self._server: Server | None = None
        self._sessions: set[_Session] = set()
        self._pump: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self, port: int | None = None) -> int:
        """Listen on ``port`` (default: the previous one, else any free port)."""
        self._server = await serve(self._serve, self.host, self.port if port is None else port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._pump = asyncio.create_task(self._run_market())
        log.info("simulator_listening", url=self.url, products=list(self.feed.products))
        return self.port

    async def stop(self) -> None:
        """Close every connection and stop listening; the market state is kept."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._sessions.clear()

    async def _serve(self, connection: ServerConnection) -> None:
        session = _Session(connection)
        self._sessions.add(session)
        try:
            async for raw in connection:
                await self._on_request(session, raw)
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)

    async def _on_request(self, session: _Session, raw: str | bytes) -> None:
        try:
            request = json.loads(raw)
            kind = request["type"]
            product_ids = [p for p in request["product_ids"] if p in self.feed.products]
            channels = [c if isinstance(c, str) else c["name"] for c in request["channels"]]
        except (ValueError, KeyError, TypeError):
            await session.connection.send(
                json.dumps({"type": "error", "message": "Failed to subscribe", "reason": "bad"})
            )
            return
        for channel in channels:
            subscribed = session.subscriptions.setdefault(channel, set())
            if kind == "unsubscribe":
                subscribed.difference_update(product_ids)
            else:
                subscribed.update(product_ids)
        if kind != "subscribe":
            return
        await session.connection.send(self.feed.subscriptions(channels, product_ids))
        if "level2" in channels:
            now_ns = time.time_ns()
            for product_id in product_ids:
                await session.connection.send(self.feed.snapshot(product_id, now_ns))

    async def _run_market(self) -> None:
        started = time.monotonic()
        next_heartbeat = started + 1.0
        while True:
            now = time.monotonic()
            due = int((now - started) * self.rate_per_s) - self.events
            for _ in range(min(due, 10_000)):
                await self._emit_event()
            if now >= next_heartbeat:
                next_heartbeat = now + 1.0
                await self._emit_heartbeats()
            await asyncio.sleep(_TICK_S)

    async def _emit_event(self) -> None:
        product_id, messages = self.feed.next_event(time.time_ns())
        self.events += 1
        for session in list(self._sessions):
            for channel, message in messages:
                if session.wants(channel, product_id):
                    with contextlib.suppress(ConnectionClosed):
                        await session.connection.send(message)

    async def _emit_heartbeats(self) -> None:
        now_ns = time.time_ns()
        for session in list(self._sessions):
            for product_id in session.subscriptions.get("heartbeat", ()):
                with contextlib.suppress(ConnectionClosed):
                    await session.connection.send(self.feed.heartbeat(product_id, now_ns))

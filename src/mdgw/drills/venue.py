"""The drill's venue: a WebSocket server speaking Coinbase's ``ticker`` channel, one ticker per
message, each a distinct tick (its 24 h volume is its own number), at a steady rate, counted.

Unlike ``mdgw simulate`` (a random market whose book moves need not each make a tick), every
message sent here is exactly one tick the feed handler must pass on, so "ticks sent" is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

_STEP_S = 0.01


def ticker_message(product_id: str, number: int, now_ns: int) -> str:
    """Coinbase's ticker; ``number`` makes it distinct (volume) and moves the price a little."""
    cents = 10_000 + number % 200
    when = datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {
            "type": "ticker",
            "sequence": number,
            "product_id": product_id,
            "price": f"{cents / 100:.2f}",
            "best_bid": f"{(cents - 1) / 100:.2f}",
            "best_bid_size": "1.5",
            "best_ask": f"{(cents + 1) / 100:.2f}",
            "best_ask_size": "2.25",
            "last_size": "0.01",
            "volume_24h": str(number),
            "time": when,
        }
    )


class TickerVenue:
    def __init__(self, product_ids: list[str], rate_per_s: float) -> None:
        if rate_per_s <= 0 or not product_ids:
            raise ValueError("a drill venue needs products and a positive rate")
        self.product_ids = product_ids
        self.rate_per_s = rate_per_s
        self.sent = 0
        self.port = 0
        self._sessions: set[ServerConnection] = set()
        self._server: Server | None = None
        self._pump: asyncio.Task[None] | None = None
        self._sending = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await serve(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._pump = asyncio.create_task(self._run())

    def start_sending(self) -> None:
        self._sending.set()

    def stop_sending(self) -> None:
        self._sending.clear()

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def connected(self) -> int:
        return len(self._sessions)

    async def _serve(self, connection: ServerConnection) -> None:
        try:
            async for raw in connection:
                request = json.loads(raw)
                if request.get("type") == "subscribe":
                    channels = [{"name": "ticker", "product_ids": self.product_ids}]
                    await connection.send(
                        json.dumps({"type": "subscriptions", "channels": channels})
                    )
                    self._sessions.add(connection)
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(connection)

    async def _run(self) -> None:
        while True:
            await self._sending.wait()
            started, base = time.monotonic(), self.sent
            while self._sending.is_set():
                due = base + int((time.monotonic() - started) * self.rate_per_s) - self.sent
                for _ in range(due):
                    await self._send_one()
                await asyncio.sleep(_STEP_S)

    async def _send_one(self) -> None:
        number = self.sent + 1
        product_id = self.product_ids[number % len(self.product_ids)]
        message = ticker_message(product_id, number, time.time_ns())
        delivered = False
        for connection in list(self._sessions):
            with contextlib.suppress(ConnectionClosed):
                await connection.send(message)
                delivered = True
        if delivered:
            self.sent = number

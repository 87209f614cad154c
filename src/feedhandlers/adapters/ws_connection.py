"""The venue connection: connect, subscribe, read frames into the pipeline, and recover.

- Keep-alive: WebSocket pings every ``ping_interval_s`` (a pong missing for
  ``ping_timeout_s`` closes the connection); venues' own heartbeats count as traffic.
- Silence watchdog: no frame at all for ``silence_timeout_s`` closes the connection
  (reason ``silence``): a half-open TCP connection or a venue that stopped sending.
- Reconnect: capped exponential backoff with jitter (``marketcore.backoff``), forever,
  until stopped; the attempt count restarts once a connection has delivered data.
  Every connection starts from fresh snapshots (``parser.reset()``).
- Resync: when the parser reports a book it cannot trust (checksum mismatch, update
  before snapshot), the venue's resubscribe messages are sent for those symbols.
- Backpressure: frames are read one at a time; if we fall behind, websockets stops
  reading the socket (``max_queue``) and the venue disconnects us. Nothing downstream
  can block this loop (the Kafka sink never blocks).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from feedhandlers.adapters.reconnecting import ConnectionSettings, ReconnectingConnection
from feedhandlers.pipeline import FeedPipeline

__all__ = ["ConnectionSettings", "VenueClient", "WsFeedConnection"]

log = structlog.get_logger(__name__)

MAX_FRAME_BYTES = 64 * 1024 * 1024  # full-depth book snapshots can be several MB
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class VenueClient(Protocol):
    @property
    def venue(self) -> str: ...

    def endpoint(self) -> str: ...

    def subscribe_messages(self) -> list[str]: ...

    def resync_messages(self, venue_symbols: Sequence[str]) -> list[str]: ...


class WsFeedConnection(ReconnectingConnection):
    def __init__(
        self,
        client: VenueClient,
        pipeline: FeedPipeline,
        settings: ConnectionSettings,
        *,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(pipeline, settings, random_unit=random_unit)
        self.client = client
        self.venue = client.venue
        self._silenced = False

    async def _session(self) -> str:
        """One connection, from connect to close; returns why it ended."""
        url = self.client.endpoint()
        settings = self.settings
        try:
            async with connect(
                url,
                open_timeout=settings.open_timeout_s,
                ping_interval=settings.ping_interval_s,
                ping_timeout=settings.ping_timeout_s,
                max_size=MAX_FRAME_BYTES,
                proxy=None if _is_loopback(url) else True,
            ) as websocket:
                await self._subscribe(websocket)
                watchdog = asyncio.create_task(self._watch(websocket))
                try:
                    await self._read(websocket)
                finally:
                    watchdog.cancel()
        except ConnectionClosed:
            return "silence" if self._silenced else "closed"
        except TimeoutError:
            return "open_timeout"
        except (InvalidHandshake, InvalidURI) as exc:
            log.warning("venue_handshake_failed", venue=self.client.venue, error=str(exc))
            return "handshake"
        except OSError as exc:
            log.warning("venue_unreachable", venue=self.client.venue, url=url, error=str(exc))
            return "unreachable"
        return "closed"

    async def _subscribe(self, websocket: ClientConnection) -> None:
        self.pipeline.parser.reset()  # a new connection: books come from new snapshots
        self._silenced = False
        self.last_frame_monotonic = time.monotonic()
        for message in self.client.subscribe_messages():
            await websocket.send(message)
        self.connections += 1
        self.connected = True
        log.info("venue_subscribed", venue=self.client.venue, url=self.client.endpoint())

    async def _read(self, websocket: ClientConnection) -> None:
        on_frame = self.pipeline.on_frame
        clock = time.monotonic
        wall_ns = time.time_ns
        while True:
            frame = await websocket.recv(decode=False)
            self.last_frame_monotonic = clock()
            result = on_frame(frame, wall_ns())
            if result.resync:
                await self._resync(websocket, result.resync)

    async def _resync(self, websocket: ClientConnection, venue_symbols: list[str]) -> None:
        log.warning("venue_resync", venue=self.client.venue, symbols=venue_symbols)
        for message in self.client.resync_messages(venue_symbols):
            await websocket.send(message)

    async def _watch(self, websocket: ClientConnection) -> None:
        limit_s = self.settings.silence_timeout_s
        while True:
            silent_s = self.seconds_since_last_frame()
            if silent_s >= limit_s:
                log.warning("venue_silent", venue=self.client.venue, silent_s=round(silent_s, 1))
                self._silenced = True
                await websocket.close(code=1001, reason="silence")
                return
            await asyncio.sleep(min(1.0, limit_s - silent_s))


def _is_loopback(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return host in _LOOPBACK_HOSTS

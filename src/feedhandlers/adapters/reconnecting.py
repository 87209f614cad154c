"""What every venue connection shares: reconnect forever with capped backoff and jitter.

A subclass implements ``_session()``: one connection from connect to close, returning why
it ended (a bounded label: ``closed``, ``silence``, ``unreachable``...). The attempt count
restarts once a connection has delivered frames, so a healthy feed that drops reconnects
after ``base_s``, and a venue that stays down is retried at most every ``cap_s``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from feedhandlers.pipeline import FeedPipeline
from marketcore.backoff import BackoffPolicy, backoff_delay

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    silence_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(base_s=0.5, cap_s=30.0))


class FeedConnection(Protocol):
    """What the app and the metrics need of any venue connection."""

    venue: str
    connections: int
    connected: bool

    @property
    def reconnects(self) -> Mapping[str, int]: ...

    def seconds_since_last_frame(self) -> float: ...

    async def run(self) -> None: ...


class ReconnectingConnection:
    venue: str

    def __init__(
        self,
        pipeline: FeedPipeline,
        settings: ConnectionSettings,
        *,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self._random_unit = random_unit
        self.reconnects: Counter[str] = Counter()
        self.connections = 0
        self.connected = False
        self.last_frame_monotonic = time.monotonic()

    def seconds_since_last_frame(self) -> float:
        return time.monotonic() - self.last_frame_monotonic

    async def run(self) -> None:
        """Connect and read until cancelled; never returns otherwise."""
        attempt = 0
        while True:
            frames_before = self.pipeline.counters.frames.total()
            reason = await self._session()
            _stop_if_cancelled()
            self.connected = False
            if self.pipeline.counters.frames.total() > frames_before:
                attempt = 0  # that connection worked: start the backoff over
            attempt += 1
            self.reconnects[reason] += 1
            delay_s = backoff_delay(attempt, self.settings.backoff, self._random_unit())
            log.warning(
                "venue_disconnected",
                venue=self.venue,
                reason=reason,
                attempt=attempt,
                retry_in_s=round(delay_s, 3),
            )
            await asyncio.sleep(delay_s)

    async def _session(self) -> str:
        raise NotImplementedError


def _stop_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop while a session swallowed it.

    Python 3.11's ``asyncio.wait_for`` can lose a cancellation when the inner call finishes at
    the same moment (a refused connect, for example), and a session may end in between. Without
    this check the loop reconnects forever and whoever cancelled it waits forever (a test hung
    this way on a busy machine).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

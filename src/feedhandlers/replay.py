"""Replay a recorded WebSocket capture through the handler, as demos, benchmarks and
backfills do: at recorded speed (1), at a multiple (10 = ten times faster), or as fast
as possible (0).

Each frame keeps its recorded receive time as ``received_time_ns`` and the venue's event
time, and the replay's ``feed_handler_id`` is derived from the file's content, so
replaying the same file again numbers the same ticks the same way: the tick writer
rewrites the same rows instead of adding new ones. A connect line in the capture starts
a new connection for the parser (books are rebuilt from the next snapshots).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO

from feedhandlers.capture import (
    CaptureLine,
    LineKind,
    open_capture,
    parse_capture_line,
    venue_of_url,
)
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.itch import schema as itch_schema
from feedhandlers.venues.itch.parse import split_length_prefixed
from marketcore.trading_calendar import NANOS_PER_SECOND, venue_midnight_ns

# As fast as possible, yield to the event loop (signals, upkeep) every this many frames.
_YIELD_EVERY = 512


@dataclass(frozen=True, slots=True)
class ReplayPace:
    """``speed``: 1 recorded speed, 10 ten times faster, 0 as fast as possible."""

    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.speed < 0:
            raise ValueError(f"speed must be >= 0: {self.speed}")

    def due_s(self, first_ns: int, frame_ns: int) -> float:
        """Seconds after the replay's start at which a frame recorded at ``frame_ns`` is due."""
        if self.speed == 0:
            return 0.0
        return max(0, frame_ns - first_ns) / 1e9 / self.speed


@dataclass(slots=True)
class ReplayStats:
    frames: int = 0
    connects: int = 0
    elapsed_s: float = 0.0


def replay_feed_handler_id(path: Path, venue: str) -> str:
    """Derived from the capture's bytes: the same file always gets the same id."""
    digest = hashlib.sha256()
    with path.open("rb") as capture:
        for block in iter(lambda: capture.read(1 << 20), b""):
            digest.update(block)
    return f"replay.{venue}.{digest.hexdigest()[:16]}"


def capture_venue(path: Path) -> str | None:
    """The venue of a capture, from its first connect line (or its file name)."""
    if "ITCH" in path.name.upper():
        return "itch"
    with open_capture(path) as capture:
        for raw in capture:
            line = parse_capture_line(raw)
            if line.kind is LineKind.CONNECT:
                return venue_of_url(line.url)
            if line.kind is LineKind.FRAME:
                break
    if "ITCH" in path.name.upper():
        return "itch"
    name = path.name.split(".", 1)[0].lower()
    return name if name in ("coinbase", "binance", "kraken") else None


class OfflineSource:
    """The "connection" of a replay, for the metrics: a file is always there."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.reconnects: Counter[str] = Counter()
        self.connections = 1
        self.connected = True

    def seconds_since_last_frame(self) -> float:
        return 0.0

    async def run(self) -> None:
        raise NotImplementedError("a replay is driven by replay_capture")


# A message stamped this much earlier than the one before it is on the next day (a file that
# runs across midnight); within a day ITCH stamps only grow.
_NEXT_DAY_BACKSTEP_NS = 12 * 3600 * NANOS_PER_SECOND
# NASDAQ's daily files are named MMDDYYYY.NASDAQ_ITCH50, sample files often YYYYMMDD.
_FILE_DATES = (
    (re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{4})\.NASDAQ_ITCH", re.IGNORECASE), (3, 1, 2)),
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), (1, 2, 3)),
)


def itch_file_date(path: Path) -> date | None:
    """The session date in an ITCH file's name (``01302019.NASDAQ_ITCH50``,
    ``ex20101224.TEST_ITCH_50``), or None when the name carries none."""
    for pattern, (year, month, day) in _FILE_DATES:
        found = pattern.search(path.name)
        if found is None:
            continue
        try:
            return date(int(found[year]), int(found[month]), int(found[day]))
        except ValueError:
            continue
    return None


def itch_file_records(
    capture: BinaryIO, session_date: date, exchange: str = itch_schema.EXCHANGE
) -> Iterator[CaptureLine]:
    """An ITCH 5.0 file as frames timed by the messages' own timestamps on ``session_date``
    (the venue's time zone), moving to the next day when the stamps start again from a
    lower time of day: each frame's time is its receipt time for the parser, which dates it."""
    day = session_date
    midnight_ns = venue_midnight_ns(exchange, day)
    previous_stamp = 0
    tail = b""
    while block := capture.read(1 << 20):
        messages, tail, bad = split_length_prefixed(tail + block)
        for _ in range(bad):
            yield CaptureLine(LineKind.FRAME, midnight_ns, b"")  # counted as malformed
        for message in messages:
            stamp = int.from_bytes(message[5:11], "big")
            if stamp < previous_stamp - _NEXT_DAY_BACKSTEP_NS:
                day += timedelta(days=1)
                midnight_ns = venue_midnight_ns(exchange, day)
            previous_stamp = stamp
            yield CaptureLine(LineKind.FRAME, midnight_ns + stamp, message)


async def replay_capture(
    lines: Iterable[CaptureLine],
    pipeline: FeedPipeline,
    pace: ReplayPace,
    *,
    upkeep: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayStats:
    """Feed every received frame of a capture to ``pipeline``, paced by ``pace``."""
    stats = ReplayStats()
    started = clock()
    first_ns: int | None = None
    on_frame = pipeline.on_frame
    for line in lines:
        if line.kind is LineKind.CONNECT:
            pipeline.parser.reset()
            stats.connects += 1
            continue
        if line.kind is not LineKind.FRAME:
            continue
        if first_ns is None:
            first_ns = line.time_ns
        if pace.speed:
            delay_s = started + pace.due_s(first_ns, line.time_ns) - clock()
            if delay_s > 0:
                upkeep()
                await asyncio.sleep(delay_s)
        on_frame(line.payload, line.time_ns)
        stats.frames += 1
        if stats.frames % _YIELD_EVERY == 0:
            upkeep()
            await asyncio.sleep(0)
    upkeep()
    stats.elapsed_s = clock() - started
    return stats

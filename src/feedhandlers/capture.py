"""Recorded WebSocket captures (the cryptofeed frame-log format of ``../shared/data/ws``).

One line per event:
- ``wss://host/path <-> 1618677816.8434298``: a connection was opened;
- ``wss://host/path <- 1618677817.020616: {...}``: a message we sent (subscribe);
- ``1618677817.061845: {...}``: a frame received, with the capture machine's receive time.

Parsing a line is pure (bytes in, ``CaptureLine`` out); ``open_capture`` reads a file,
gzip-compressed when its name ends in ``.gz``.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from marketcore.venue_time import decimal_seconds_ns


class LineKind(StrEnum):
    FRAME = "frame"
    CONNECT = "connect"
    SENT = "sent"
    OTHER = "other"  # blank lines, REST reference data, anything unrecognised


@dataclass(frozen=True, slots=True)
class CaptureLine:
    kind: LineKind
    time_ns: int = 0
    payload: bytes = b""
    url: str = ""


_OTHER = CaptureLine(LineKind.OTHER)


def parse_capture_line(line: bytes) -> CaptureLine:
    line = line.rstrip(b"\r\n")
    if not line:
        return _OTHER
    if line[:1].isdigit():
        stamp, sep, payload = line.partition(b": ")
        if not sep:
            return _OTHER
        try:
            return CaptureLine(LineKind.FRAME, decimal_seconds_ns(stamp.decode("ascii")), payload)
        except (UnicodeDecodeError, ValueError):
            return _OTHER
    url, sep, rest = line.partition(b" <-> ")
    if sep:
        try:
            return CaptureLine(
                LineKind.CONNECT, decimal_seconds_ns(rest.decode("ascii")), url=url.decode()
            )
        except (UnicodeDecodeError, ValueError):
            return _OTHER
    url, sep, rest = line.partition(b" <- ")
    if sep:
        stamp, sep, payload = rest.partition(b": ")
        try:
            return CaptureLine(
                LineKind.SENT, decimal_seconds_ns(stamp.decode("ascii")), payload, url.decode()
            )
        except (UnicodeDecodeError, ValueError):
            return _OTHER
    return _OTHER


# capture host -> venue name (the ``--venue`` of ``mdgw feed``)
_HOST_VENUES = {
    "ws-feed.pro.coinbase.com": "coinbase",
    "ws-feed.exchange.coinbase.com": "coinbase",
    "stream.binance.com": "binance",
    "fstream.binance.com": "binance-usdm",
    "ws.kraken.com": "kraken",
}


def venue_of_url(url: str) -> str | None:
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return _HOST_VENUES.get(host)


@contextmanager
def open_capture(path: Path) -> Iterator[BinaryIO]:
    """The capture's raw lines, decompressing ``*.gz``."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as compressed:
            yield compressed  # type: ignore[misc]  # GzipFile is a binary file object
    else:
        with path.open("rb") as plain:
            yield plain


def read_frames(path: Path) -> list[CaptureLine]:
    """Every received frame of a capture, in order."""
    with open_capture(path) as capture:
        return [line for line in map(parse_capture_line, capture) if line.kind is LineKind.FRAME]

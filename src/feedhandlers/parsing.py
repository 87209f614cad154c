"""What every venue parser returns, and the helpers they share to read decoded JSON.

A parser is pure: bytes (or text) and the receive time in, a ``FrameResult`` out; no
I/O, no clock. It keeps per-instrument state (books, latest values) between frames and
forgets it on ``reset()`` (a new connection). Bad input never raises out of ``parse``:
it comes back as a ``Rejection`` with reason ``malformed`` and the frame is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from marketcore.fixed_point import NotRepresentableError
from marketcore.normalization import Rejection, RejectReason
from marketcore.scaled_decimal import NotADecimalError
from marketcore.ticks import Tick


class FrameKind(StrEnum):
    DATA = "data"  # market data (it may still have produced no tick)
    HEARTBEAT = "heartbeat"  # the venue's keep-alive
    CONTROL = "control"  # subscription acknowledgements, status, info
    IGNORED = "ignored"  # a well-formed message of a kind we do not use
    DUPLICATE = "duplicate"  # a sequenced message seen before (a retransmission): dropped
    MALFORMED = "malformed"
    VENUE_ERROR = "venue_error"


@dataclass(slots=True)
class FrameResult:
    kind: FrameKind = FrameKind.DATA
    ticks: list[Tick] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    # venue symbols whose book must be fetched again (checksum mismatch, update before
    # snapshot): the client resubscribes them
    resync: list[str] = field(default_factory=list)
    sizes_dropped: int = 0  # sizes/volumes reported as unknown (more than nine decimals)


def malformed(detail: str) -> FrameResult:
    return FrameResult(FrameKind.MALFORMED, rejections=[Rejection(RejectReason.MALFORMED, detail)])


class FrameParser(Protocol):
    """A venue's pure parser."""

    @property
    def exchange(self) -> str: ...

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult: ...

    def reset(self) -> None:
        """Forget connection state (books): a new connection starts from new snapshots."""
        ...


class MalformedFrameError(Exception):
    """Raised inside a parser when a field is missing or of the wrong type; ``parse``
    turns it into a ``malformed`` rejection."""


# What reading a decoded message may raise: missing keys, short arrays, bad text.
# NotRepresentableError is a ValueError.
FRAME_ERRORS = (MalformedFrameError, ValueError, IndexError, KeyError)


def failed_frame(exc: Exception, context: str) -> FrameResult:
    """The result for a frame whose reading raised one of ``FRAME_ERRORS``."""
    if isinstance(exc, NotRepresentableError) and not isinstance(exc, NotADecimalError):
        return FrameResult(
            rejections=[Rejection(RejectReason.PRICE_NOT_REPRESENTABLE, f"{context}: {exc}")]
        )
    return malformed(f"{context}: {exc}")


def head(frame: bytes | str, limit: int = 120) -> str:
    """The start of a frame, for a log line or a rejection detail."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return text[:limit]


# --- typed access to decoded JSON: Any ends here ---------------------------------------


def obj(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise MalformedFrameError(f"{what}: expected an object")
    return value


def arr(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        raise MalformedFrameError(f"{what}: expected an array")
    return value


def text(value: Any, what: str) -> str:
    if type(value) is not str:
        raise MalformedFrameError(f"{what}: expected a string")
    return value


def integer(value: Any, what: str) -> int:
    if type(value) is not int:
        raise MalformedFrameError(f"{what}: expected an integer")
    return value

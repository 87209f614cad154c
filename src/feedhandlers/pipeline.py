"""One frame through the handler: parse and normalize (venue parser), number, encode, send.

This is the hot path. It never blocks and never raises for bad input: a frame the
parser cannot read is counted and skipped; a parser bug costs one frame, logged with
its traceback, never the session. Counts are plain integers here; ``metrics_publisher``
turns them into Prometheus counters a few times a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from feedhandlers.encode import encode_tick
from feedhandlers.parsing import FrameKind, FrameParser, FrameResult, head
from marketcore.instruments import InstrumentKey
from marketcore.normalization import FeedSequencer, Rejection, RejectReason

log = structlog.get_logger(__name__)

PARSER_BUG = "parser_bug"
# Rejections are counted always and logged only now and then: the first few of each
# reason, then one in this many.
_LOG_FIRST = 5
_LOG_EVERY = 10_000


class TickSink(Protocol):
    """Where encoded ticks go (the Kafka producer adapter, or a list in tests)."""

    def send(self, key: bytes, value: bytes, received_ns: int = 0) -> None:
        """Take one record without blocking; a sink that must refuse it counts that itself.
        ``received_ns``: when its frame arrived (wall clock), for the receipt-to-ack latency."""


@dataclass(slots=True)
class FeedCounters:
    frames: Counter[str] = field(default_factory=Counter)  # by FrameKind
    ticks: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by RejectReason
    sizes_dropped: int = 0
    resyncs: int = 0
    gaps: int = 0  # sequence gaps the transport detected (FIX, MoldUDP64)


class FeedPipeline:
    def __init__(
        self,
        parser: FrameParser,
        sink: TickSink,
        feed_handler_id: str,
        *,
        observe_event_receipt: Callable[[float], None] | None = None,
    ) -> None:
        """``observe_event_receipt``: given each live tick's venue event -> receipt latency in
        seconds (a replay has none: its event times are old)."""
        self.parser = parser
        self._observe_event_receipt = observe_event_receipt
        self.sink = sink
        self.feed_handler_id = feed_handler_id
        self.counters = FeedCounters()
        self.sequencer = FeedSequencer()
        self._keys: dict[tuple[str, str], bytes] = {}

    def on_frame(self, frame: bytes | str, received_ns: int) -> FrameResult:
        try:
            result = self.parser.parse(frame, received_ns)
        except Exception:  # a parser bug must cost one frame, not the session
            log.exception("frame_parse_crashed", exchange=self.parser.exchange, frame=head(frame))
            self.counters.rejected[PARSER_BUG] += 1
            self.counters.frames[FrameKind.MALFORMED] += 1
            return FrameResult(FrameKind.MALFORMED)
        counters = self.counters
        counters.frames[result.kind] += 1
        for tick in result.ticks:
            identity = (tick.exchange, tick.symbol)
            key = self._keys.get(identity)
            if key is None:
                key = self._keys[identity] = InstrumentKey(tick.exchange, tick.symbol).kafka_key()
            sequence = self.sequencer.next(tick.exchange, tick.symbol)
            self.sink.send(key, encode_tick(tick, self.feed_handler_id, sequence), received_ns)
            if self._observe_event_receipt is not None and tick.event_time_ns > 0:
                self._observe_event_receipt(max(0, received_ns - tick.event_time_ns) / 1e9)
        counters.ticks += len(result.ticks)
        if result.rejections:
            self._count(result.rejections)
        counters.sizes_dropped += result.sizes_dropped
        counters.resyncs += len(result.resync)
        return result

    def count_malformed(self, detail: str) -> None:
        """A frame the transport could not even cut out (FIX framing, CheckSum...)."""
        self.counters.frames[FrameKind.MALFORMED] += 1
        self._count([Rejection(RejectReason.MALFORMED, detail)])

    def _count(self, rejections: list[Rejection]) -> None:
        for rejection in rejections:
            seen = self.counters.rejected[rejection.reason] + 1
            self.counters.rejected[rejection.reason] = seen
            if seen <= _LOG_FIRST or seen % _LOG_EVERY == 0:
                log.warning(
                    "tick_rejected",
                    exchange=self.parser.exchange,
                    reason=str(rejection.reason),
                    detail=rejection.detail,
                    occurrences=seen,
                )

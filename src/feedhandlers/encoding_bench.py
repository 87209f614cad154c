"""Part of ``mdgw bench feed``: the cost of the tick encoding itself, v1 (int64 micros) beside
v2 (``Decimal`` units + nanos), on the same ticks in the same run.

The ticks are the ones the capture replay produced. v1 cannot carry a price or size finer than
a micro, so those ticks are left out of both sides (and counted); the rest are encoded and
decoded by each schema's generated code, the way the services do: ``encode_tick`` for v2 and
the v1 message built field by field; decoding reads every money field back into an integer.
Each figure is the best of several timed passes (the machine is shared: the best pass is the
one least disturbed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from feedhandlers.encode import encode_tick
from financial.marketdata.v1.prices_pb2 import PriceUpdate as PriceUpdateV1
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.ticks import Tick
from marketinfra.tick_codec import tick_from_proto

_MICRO = 1000  # nanos per micro
_PASSES = 5


@dataclass(frozen=True, slots=True)
class EncodingCost:
    ticks: int  # encoded by both
    left_out: int  # finer than a micro: v1 cannot carry them
    encode_v1_us: float
    encode_v2_us: float
    decode_v1_us: float
    decode_v2_us: float
    bytes_v1: float  # mean record size
    bytes_v2: float

    def lines(self) -> list[str]:
        return [
            f"encoding, same {self.ticks:,} ticks ({self.left_out:,} finer than a micro left "
            "out: v1 cannot carry them), best of 5 passes, per tick:",
            f"  encode  v1 int64 micros {self.encode_v1_us:6.2f} us   "
            f"v2 Decimal {self.encode_v2_us:6.2f} us   "
            f"({self.encode_v2_us - self.encode_v1_us:+.2f} us)",
            f"  decode  v1 int64 micros {self.decode_v1_us:6.2f} us   "
            f"v2 Decimal {self.decode_v2_us:6.2f} us   "
            f"({self.decode_v2_us - self.decode_v1_us:+.2f} us)",
            f"  record size v1 {self.bytes_v1:.0f} B, v2 {self.bytes_v2:.0f} B",
        ]


def _fits_micros(tick: Tick) -> bool:
    return not any(
        value % _MICRO
        for value in (
            tick.bid_nanos, tick.ask_nanos, tick.last_nanos, tick.volume_nanos,
            tick.bid_size_nanos, tick.ask_size_nanos, tick.last_size_nanos,
        )
    )  # fmt: skip


def encode_v1(tick: Tick, feed_handler_id: str, feed_sequence: int) -> bytes:
    """The v1 feed handler's encoding (what ``encode_tick`` did before v2)."""
    return PriceUpdateV1(
        exchange=tick.exchange,
        symbol=tick.symbol,
        bid_micros=tick.bid_nanos // _MICRO,
        ask_micros=tick.ask_nanos // _MICRO,
        last_micros=tick.last_nanos // _MICRO,
        volume_micros=tick.volume_nanos // _MICRO,
        event_time_ns=tick.event_time_ns,
        received_time_ns=tick.received_time_ns,
        feed_handler_id=feed_handler_id,
        venue_symbol=tick.venue_symbol,
        bid_size_micros=tick.bid_size_nanos // _MICRO,
        ask_size_micros=tick.ask_size_nanos // _MICRO,
        last_size_micros=tick.last_size_nanos // _MICRO,
        feed_sequence=feed_sequence,
    ).SerializeToString()


def decode_v1(payload: bytes) -> Tick:
    """The v1 consumers' decoding (``tick_from_proto`` before v2), into the same Tick."""
    update = PriceUpdateV1.FromString(payload)
    return Tick(
        update.exchange, update.symbol, update.bid_micros * _MICRO, update.ask_micros * _MICRO,
        update.last_micros * _MICRO, update.volume_micros * _MICRO,
        update.bid_size_micros * _MICRO, update.ask_size_micros * _MICRO,
        update.last_size_micros * _MICRO, update.event_time_ns, update.received_time_ns,
        update.feed_handler_id, update.venue_symbol, update.feed_sequence,
    )  # fmt: skip


def decode_v2(payload: bytes) -> Tick:
    return tick_from_proto(PriceUpdate.FromString(payload))


def _best_us(work: Callable[[], object], count: int) -> float:
    best = float("inf")
    for _ in range(_PASSES):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def measure(records: Sequence[bytes]) -> EncodingCost:
    """``records``: v2 PriceUpdate bytes as the handler produced them."""
    every = [decode_v2(value) for value in records]
    ticks = [tick for tick in every if _fits_micros(tick)]
    if not ticks:
        raise ValueError("no tick fits micros: nothing to compare")
    v1 = [encode_v1(t, t.feed_handler_id, t.feed_sequence) for t in ticks]
    v2 = [encode_tick(t, t.feed_handler_id, t.feed_sequence) for t in ticks]

    def encode_all_v1() -> None:
        for t in ticks:
            encode_v1(t, t.feed_handler_id, t.feed_sequence)

    def encode_all_v2() -> None:
        for t in ticks:
            encode_tick(t, t.feed_handler_id, t.feed_sequence)

    def decode_all_v1() -> None:
        for payload in v1:
            decode_v1(payload)

    def decode_all_v2() -> None:
        for payload in v2:
            decode_v2(payload)

    count = len(ticks)
    return EncodingCost(
        ticks=count,
        left_out=len(every) - count,
        encode_v1_us=_best_us(encode_all_v1, count),
        encode_v2_us=_best_us(encode_all_v2, count),
        decode_v1_us=_best_us(decode_all_v1, count),
        decode_v2_us=_best_us(decode_all_v2, count),
        bytes_v1=sum(map(len, v1)) / count,
        bytes_v2=sum(map(len, v2)) / count,
    )

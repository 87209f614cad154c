"""Bad input never crashes a handler: the parsers are fuzzed with random bytes, random JSON
shaped like venue messages, and mutated recorded frames. Every frame must come back as a
``FrameResult``; what cannot be read is a counted ``malformed`` rejection, and every tick
that does come out obeys the normalization rules."""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedhandlers.capture import read_frames
from feedhandlers.parsing import FrameKind, FrameParser, FrameResult
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.binance.parse import BinanceParser
from feedhandlers.venues.binance.schema import Market
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from feedhandlers.venues.kraken.parse import KrakenParser
from marketcore.normalization import RejectReason
from marketcore.ticks import check_tick

DATA = Path(__file__).parents[1] / "data"
PARSERS: dict[str, Callable[[], FrameParser]] = {
    "coinbase": CoinbaseParser,
    "binance": BinanceParser,
    "binance-usdm": lambda: BinanceParser(Market.USDM),
    "kraken": KrakenParser,
}
CAPTURES = {
    "coinbase": DATA / "coinbase" / "COINBASE.ws.28.0.gz",
    "binance": DATA / "binance" / "BINANCE.ws.1.0",
    "binance-usdm": DATA / "binance" / "BINANCE.ws.1.0",
    "kraken": DATA / "kraken" / "KRAKEN.ws.49.0",
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seeded(venue: str) -> list[bytes]:
    """A slice of the venue's capture: a parser primed with real state (books) first."""
    frames = [line.payload for line in read_frames(CAPTURES[venue])]
    return frames[:400]


SEEDS = {venue: _seeded(venue) for venue in PARSERS}


def _check(result: FrameResult) -> None:
    assert isinstance(result, FrameResult)
    for tick in result.ticks:
        assert check_tick(tick) is None
        assert tick.bid_nanos == 0 or tick.ask_nanos == 0 or tick.bid_nanos < tick.ask_nanos
    if result.kind is FrameKind.MALFORMED:
        assert [r.reason for r in result.rejections] == [RejectReason.MALFORMED]


def _prime(venue: str) -> FrameParser:
    parser = PARSERS[venue]()
    for frame in SEEDS[venue][:200]:
        parser.parse(frame, 1)
    return parser


PRIMED = {venue: _prime(venue) for venue in PARSERS}


def _primed(venue: str) -> FrameParser:
    """A parser with real state (books, instruments), the same for every example."""
    return copy.deepcopy(PRIMED[venue])


VENUES = list(PARSERS)

# JSON values in the shapes venues use, with the wrong types mixed in
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["0", "1.5", "-1", "0.00000001", "1e400", "abc", "", "XBT/USD", "BTC-USD",
                     "buy", "sell", "2021-04-17T16:43:30.244075Z", "1534614057.321597", "book-10",
                     "ticker", "trade", "l2update", "snapshot", "match", "bookTicker", "aggTrade"]),
    st.text(max_size=12),
)  # fmt: skip
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.sampled_from(["type", "product_id", "price", "best_bid", "best_ask", "time",
                             "changes", "bids", "asks", "size", "volume_24h", "last_size", "e",
                             "s", "b", "B", "a", "A", "u", "T", "p", "q", "stream", "data", "as",
                             "bs", "c", "v", "event", "status"]),
            inner,
            max_size=8,
        ),
    ),
    max_leaves=25,
)  # fmt: skip


@pytest.mark.parametrize("venue", VENUES)
@FUZZ
@given(frame=st.binary(max_size=300))
def test_random_bytes_never_crash(venue: str, frame: bytes) -> None:
    _check(PARSERS[venue]().parse(frame, 1))


@pytest.mark.parametrize("venue", VENUES)
@FUZZ
@given(message=_json, channel=st.sampled_from(["ticker", "trade", "book-10", "book-25", "x"]))
def test_venue_shaped_json_never_crashes(venue: str, message: Any, channel: str) -> None:
    parser = _primed(venue)
    _check(parser.parse(json.dumps(message).encode(), 1))
    # Kraken's arrays: [channelID, payload..., channel, pair]
    _check(parser.parse(json.dumps([1, message, channel, "XBT/USD"]).encode(), 2))
    _check(parser.parse(json.dumps([1, message, message, channel, "XBT/USD"]), 3))


@pytest.mark.parametrize("venue", VENUES)
@FUZZ
@given(data=st.data())
def test_mutated_recorded_frames_never_crash(venue: str, data: st.DataObject) -> None:
    parser = _primed(venue)
    seeds = SEEDS[venue]
    frame = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, max(0, len(frame) - 1)))
        action = data.draw(st.sampled_from(["flip", "cut", "dup", "digit"]))
        if action == "flip" and frame:
            frame[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del frame[position:]
        elif action == "dup":
            frame[position:position] = frame[position : position + 8]
        elif frame:
            frame[position] = ord(data.draw(st.sampled_from("0123456789.-e")))
    _check(parser.parse(bytes(frame), 1))


@pytest.mark.parametrize("venue", VENUES)
def test_a_pipeline_fed_garbage_counts_it_and_keeps_going(venue: str) -> None:
    class Sink:
        def __init__(self) -> None:
            self.count = 0

        def send(self, key: bytes, value: bytes, received_ns: int = 0) -> None:
            self.count += 1

    sink = Sink()
    pipeline = FeedPipeline(PARSERS[venue](), sink, "fuzz")
    garbage = [b"", b"{", b"null", b"[1,2]", b'{"type":5}', b"\x00" * 10, b'[1,{},"book-x","A/B"]']
    for frame in garbage:
        pipeline.on_frame(frame, 1)
    for frame in SEEDS[venue]:
        pipeline.on_frame(frame, 1)
    assert pipeline.counters.frames.total() == len(garbage) + len(SEEDS[venue])
    assert pipeline.counters.rejected[RejectReason.MALFORMED] >= 4
    assert sink.count == pipeline.counters.ticks > 0

"""Bad input never crashes a venue parser. Every parser (Coinbase, Binance spot and USD-M,
Kraken JSON, FIX 4.4, ITCH 5.0 with its MoldUDP64 and SoupBinTCP framings) is fed random
bytes, venue-shaped messages with the wrong types, mutated recorded frames (tests/data) and
oversized fields. Every frame must come back as a ``FrameResult``; what cannot be read is a
counted ``malformed`` rejection, and every tick that does come out obeys the normalization
rules (``check_tick``: which also refuses identifiers over their limits)."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedhandlers.adapters.itch_connection import MoldReceiver
from feedhandlers.capture import read_frames
from feedhandlers.parsing import FrameKind, FrameParser, FrameResult
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.binance.parse import BinanceParser
from feedhandlers.venues.binance.schema import Market
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from feedhandlers.venues.fix import schema as fix_schema
from feedhandlers.venues.fix.parse import FixFormatError, FixFramer, FixParser, decode
from feedhandlers.venues.fix.session import FixSession, SessionConfig, sending_time
from feedhandlers.venues.itch import schema as itch_schema
from feedhandlers.venues.itch.parse import (
    ItchParser,
    MoldSequence,
    SoupFramer,
    parse_mold_packet,
    split_length_prefixed,
)
from feedhandlers.venues.kraken.parse import KrakenParser
from marketcore.normalization import RejectReason
from marketcore.ticks import check_tick
from marketcore.trading_calendar import venue_midnight_ns
from tests.fuzz.support import tried
from tests.support import ListSink

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
HUGE = 100_000  # characters of an oversized field: far over every limit, under WebSocket's


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
                     "ticker", "trade", "l2update", "snapshot", "match", "bookTicker", "aggTrade",
                     "9" * 400, "0." + "1" * 400, "1e-400", "-0", "NaN", "Infinity"]),
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
                             "bs", "c", "v", "event", "status", "E"]),
            inner,
            max_size=8,
        ),
    ),
    max_leaves=25,
)  # fmt: skip


def _mutate(data: st.DataObject, original: bytes, alphabet: str = "0123456789.-e") -> bytes:
    """``original`` with a few bytes flipped, cut, duplicated or turned into digits."""
    frame = bytearray(original)
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
            frame[position] = ord(data.draw(st.sampled_from(alphabet)))
    return bytes(frame)


# --- the JSON venues ------------------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
@given(frame=st.binary(max_size=300))
def test_random_bytes_never_crash(venue: str, frame: bytes) -> None:
    tried(f"venue:{venue}")
    _check(PARSERS[venue]().parse(frame, 1))


@pytest.mark.parametrize("venue", VENUES)
@given(message=_json, channel=st.sampled_from(["ticker", "trade", "book-10", "book-25", "x"]))
def test_venue_shaped_json_never_crashes(venue: str, message: Any, channel: str) -> None:
    tried(f"venue:{venue}")
    parser = _primed(venue)
    _check(parser.parse(json.dumps(message).encode(), 1))
    # Kraken's arrays: [channelID, payload..., channel, pair]
    _check(parser.parse(json.dumps([1, message, channel, "XBT/USD"]).encode(), 2))
    _check(parser.parse(json.dumps([1, message, message, channel, "XBT/USD"]), 3))


@pytest.mark.parametrize("venue", VENUES)
@given(data=st.data())
def test_mutated_recorded_frames_never_crash(venue: str, data: st.DataObject) -> None:
    tried(f"venue:{venue}")
    parser = _primed(venue)
    _check(parser.parse(_mutate(data, data.draw(st.sampled_from(SEEDS[venue]))), 1))


def _replace_strings(value: Any, replace: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, list):
        return [_replace_strings(item, replace) for item in value]
    if isinstance(value, dict):
        return {key: _replace_strings(item, replace) for key, item in value.items()}
    return value


@pytest.mark.parametrize("venue", VENUES)
@given(
    data=st.data(),
    huge=st.sampled_from(
        ["S" * HUGE, "9" * HUGE, "0." + "1" * HUGE, "1" + "0" * 400 + ".5", "\u00e9" * HUGE]
    ),
)
def test_recorded_frames_with_an_oversized_field_never_crash(
    venue: str, data: st.DataObject, huge: str
) -> None:
    """One string of a real frame (a symbol, a price, a time...) made enormous."""
    tried(f"venue:{venue}")
    frame = json.loads(data.draw(st.sampled_from(SEEDS[venue])))
    strings: list[str] = []
    _replace_strings(frame, lambda text: strings.append(text))
    if not strings:
        return
    target = data.draw(st.sampled_from(strings))
    mutated = _replace_strings(frame, lambda text: huge if text == target else text)
    result = _primed(venue).parse(json.dumps(mutated).encode(), 1)
    _check(result)
    for rejection in result.rejections:
        assert len(rejection.detail) < 1_000  # the value is never echoed whole


@pytest.mark.parametrize("venue", VENUES)
def test_a_pipeline_fed_garbage_counts_it_and_keeps_going(venue: str) -> None:
    sink = ListSink()
    pipeline = FeedPipeline(PARSERS[venue](), sink, "fuzz")
    garbage = [b"", b"{", b"null", b"[1,2]", b'{"type":5}', b"\x00" * 10, b'[1,{},"book-x","A/B"]']
    for frame in garbage:
        pipeline.on_frame(frame, 1)
    for frame in SEEDS[venue]:
        pipeline.on_frame(frame, 1)
    assert pipeline.counters.frames.total() == len(garbage) + len(SEEDS[venue])
    assert pipeline.counters.rejected[RejectReason.MALFORMED] >= 4
    assert len(sink.records) == pipeline.counters.ticks > 0


# --- FIX 4.4 --------------------------------------------------------------------------------

FIX_T0 = 1_618_677_810_244_000_000  # 2021-04-17 16:43:30.244 UTC


def _fix(msg_type: str, body: list[fix_schema.Field], seq: int = 1) -> bytes:
    header = [(49, "SIM"), (56, "MDGW"), (34, str(seq)), (52, sending_time(FIX_T0))]
    return fix_schema.encode(msg_type, body, header=header)


def _fix_snapshot(symbol: str = "AAPL") -> list[fix_schema.Field]:
    return [
        (262, "md-1"), (55, symbol), (268, "3"),
        (269, "0"), (270, "189.49"), (271, "300"),
        (269, "1"), (270, "189.51"), (271, "200"),
        (269, "2"), (270, "189.50"), (271, "10"),
        (272, "20210417"), (273, "16:43:29.500"),
    ]  # fmt: skip


def _fix_incremental() -> list[fix_schema.Field]:
    return [
        (262, "md-1"), (268, "2"),
        (279, "1"), (269, "0"), (55, "AAPL"), (270, "189.495"), (271, "100"),
        (279, "2"), (269, "1"), (55, "AAPL"), (270, "189.51"),
    ]  # fmt: skip


FIX_MESSAGES = [
    _fix("W", _fix_snapshot()),
    _fix("X", _fix_incremental(), 2),
    _fix("Y", [(262, "md-1"), (281, "0"), (58, "unknown symbol")], 3),
    _fix("0", [], 4),
    _fix("1", [(112, "t-1")], 5),
    _fix("A", [(98, "0"), (108, "30")], 6),
    _fix("5", [(58, "bye")], 7),
    _fix("4", [(123, "Y"), (36, "9")], 8),
    _fix("2", [(7, "1"), (16, "0")], 9),
]
_FIX_TAGS = [55, 262, 268, 269, 270, 271, 272, 273, 279, 58, 281, 34, 52, 43, 123, 36, 7, 16, 112]
_FIX_VALUES = ["0", "1", "2", "B", "AAPL", "MSFT", "189.50", "-1", "0.0000001", "1e9", "", "x",
               "20210417", "16:43:29.500", "25:61:61", "99999999999999999999", "Y", "N",
               "20211317-25:61:61.999", "S" * HUGE, "9" * HUGE, "0." + "1" * HUGE]  # fmt: skip


def _fix_session() -> FixSession:
    return FixSession(SessionConfig("MDGW", "SIM", heartbeat_s=10))


def _fix_through(stream: bytes) -> None:
    """A byte stream through the framer, the parser and the session, as the connection does."""
    framer = FixFramer()
    parser = FixParser("SIMX")
    session = _fix_session()
    for piece in framer.feed(stream) + framer.feed(b""):
        if piece.error:
            continue
        _check(parser.parse(piece.raw, FIX_T0 + 1))
        try:
            message = decode(piece.raw)
        except FixFormatError:
            continue
        session.on_message(message, FIX_T0 + 1)
    session.on_timer(FIX_T0 + 60 * 10**9)


@given(noise=st.binary(max_size=300), position=st.integers(0, 400))
def test_fix_random_bytes_in_a_stream_never_crash(noise: bytes, position: int) -> None:
    tried("venue:fix")
    stream = bytearray(FIX_MESSAGES[0] + FIX_MESSAGES[3])
    stream[position:position] = noise
    _fix_through(bytes(stream))
    _check(FixParser("SIMX").parse(noise, 1))


@given(
    msg_type=st.sampled_from(["W", "X", "Y", "0", "1", "A", "V", "5", "4", "2", "3", "Z"]),
    body=st.lists(st.tuples(st.sampled_from(_FIX_TAGS), st.sampled_from(_FIX_VALUES)), max_size=25),
    seq=st.integers(0, 2**64),
)
def test_fix_well_framed_messages_with_random_fields_never_crash(
    msg_type: str, body: list[fix_schema.Field], seq: int
) -> None:
    """Right BodyLength and CheckSum, anything inside: the parser and the session's state
    machine both see it."""
    tried("venue:fix")
    parser = FixParser()
    parser.parse(FIX_MESSAGES[0], FIX_T0 + 1)
    raw = _fix(msg_type, body, seq)
    _check(parser.parse(raw, FIX_T0 + 2))
    _fix_through(FIX_MESSAGES[5] + raw)


@given(data=st.data())
def test_fix_mutated_messages_never_crash(data: st.DataObject) -> None:
    tried("venue:fix")
    parser = FixParser("SIMX")
    parser.parse(FIX_MESSAGES[0], FIX_T0)
    original = data.draw(st.sampled_from(FIX_MESSAGES))
    _check(parser.parse(_mutate(data, original, "0123456789.-=\x01"), FIX_T0 + 1))


# --- ITCH 5.0, MoldUDP64, SoupBinTCP ----------------------------------------------------------

ITCH_SAMPLE = DATA / "itch" / "ex20101224.TEST_ITCH_50.gz"
ITCH_MIDNIGHT = venue_midnight_ns("NASDAQ", date(2010, 12, 24))
ITCH_MESSAGES, _rest, _bad = split_length_prefixed(gzip.decompress(ITCH_SAMPLE.read_bytes()))


def _itch_received(message: bytes) -> int:
    """When a live reader of the sample's session would have read ``message`` (1 ms late)."""
    return ITCH_MIDNIGHT + int.from_bytes(message[5:11], "big") + 1_000_000


def _itch_primed() -> ItchParser:
    parser = ItchParser()
    for message in ITCH_MESSAGES[:50]:
        parser.parse(message, _itch_received(message))
    return parser


ITCH_PRIMED = _itch_primed()


def _mold(sequence: int, payloads: list[bytes], session: bytes = b"SESSION001") -> bytes:
    header = itch_schema.MOLD_HEADER.pack(session, sequence, len(payloads))
    return header + b"".join(len(p).to_bytes(2, "big") + p for p in payloads)


@given(data=st.data())
def test_itch_mutated_messages_never_crash(data: st.DataObject) -> None:
    tried("venue:itch")
    parser = copy.deepcopy(ITCH_PRIMED)
    original = data.draw(st.sampled_from(ITCH_MESSAGES[:400]))
    message = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
    _check(parser.parse(bytes(message), _itch_received(original)))


@given(blob=st.binary(max_size=300), received_ns=st.integers(0, 2**63 - 1))
def test_itch_random_bytes_never_crash_the_framings_or_the_parser(
    blob: bytes, received_ns: int
) -> None:
    tried("venue:itch")
    messages, _tail, _bad = split_length_prefixed(blob)
    for message in messages:
        _check(ItchParser().parse(message, received_ns))
    SoupFramer().feed(blob)
    _check(ItchParser().parse(blob, received_ns))
    try:
        packet = parse_mold_packet(blob)
    except ValueError:
        return
    MoldSequence().accept(packet)


@given(
    data=st.data(),
    sequence=st.integers(0, 2**64 - 1),
    count=st.one_of(st.integers(0, 5), st.just(0xFFFF), st.integers(0, 0xFFFF)),
    lengths=st.lists(st.integers(0, 0xFFFF), max_size=5),
)
def test_mold_packets_with_lying_headers_are_counted_never_raised(
    data: st.DataObject, sequence: int, count: int, lengths: list[int]
) -> None:
    """Datagrams whose message count and lengths say more (or less) than they carry, through
    the receiver as the socket would hand them over: every one counted, none raised."""
    tried("venue:itch")
    pipeline = FeedPipeline(ItchParser(), ListSink(), "fuzz")
    receiver = MoldReceiver("127.0.0.1", 0, pipeline, wall_ns=lambda: ITCH_MIDNIGHT + 10**9)
    body = b"".join(
        length.to_bytes(2, "big") + data.draw(st.sampled_from(ITCH_MESSAGES[:50]))[:length]
        for length in lengths
    )
    receiver.on_datagram(itch_schema.MOLD_HEADER.pack(b"SESSION001", sequence, count) + body)
    receiver.on_datagram(_mold(1, ITCH_MESSAGES[:3]))
    assert pipeline.counters.frames.total() >= 1


@given(data=st.data(), cut=st.integers(0, 2_000))
def test_soup_streams_cut_and_corrupted_anywhere_never_crash(data: st.DataObject, cut: int) -> None:
    tried("venue:itch")
    packets = [b"S" + message for message in ITCH_MESSAGES[:20]]
    stream = bytearray(b"".join(len(p).to_bytes(2, "big") + p for p in packets))
    stream = bytearray(_mutate(data, bytes(stream), "\x00\xff"))
    framer = SoupFramer()
    parser = copy.deepcopy(ITCH_PRIMED)
    for kind, payload in framer.feed(bytes(stream[:cut])) + framer.feed(bytes(stream[cut:])):
        if kind == b"S":
            _check(parser.parse(payload, ITCH_MIDNIGHT + 10**9))


@pytest.mark.parametrize("digits", [21, 5_000, 100_000])
def test_fix_numbers_of_thousands_of_digits_are_refused_not_raised(digits: int) -> None:
    """Found by a long run: a SequenceReset with a 100,000-digit NewSeqNo raised ValueError
    out of the session (int() refuses over 4,300 digits); MsgSeqNum and BodyLength likewise."""
    huge = "9" * digits
    session = _fix_session()
    session.on_message(decode(_fix("A", [(98, "0"), (108, "30")])), FIX_T0)
    outcome = session.on_message(decode(_fix("4", [(123, "Y"), (36, huge)], 2)), FIX_T0)
    assert session.expected_in < 10**20
    assert outcome is not None
    bad_seq = fix_schema.encode("0", [(49, "SIM"), (56, "MDGW"), (34, huge), (52, "x")])
    with pytest.raises(FixFormatError, match="bad MsgSeqNum"):
        decode(bad_seq)
    _check(FixParser().parse(bad_seq, FIX_T0))
    stream = b"8=FIX.4.4\x019=" + huge.encode() + b"\x0135=0\x01"
    pieces = FixFramer().feed(stream)
    assert any("BodyLength" in piece.error for piece in pieces)

"""ITCH 5.0: the RITCH sample (tests/data/itch) through the file framing and the parser,
SoupBinTCP and MoldUDP64 framing with gap detection (fuzzed in tests/fuzz)."""

import gzip
import struct
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from feedhandlers.adapters.itch_connection import MoldReceiver
from feedhandlers.parsing import FrameKind
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.itch import schema
from feedhandlers.venues.itch.parse import (
    ItchParser,
    MoldSequence,
    SoupFramer,
    parse_mold_packet,
    split_length_prefixed,
)
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick, check_tick
from marketcore.trading_calendar import venue_midnight_ns
from tests.support import ListSink

SAMPLE = Path(__file__).parents[1] / "data" / "itch" / "ex20101224.TEST_ITCH_50.gz"
MIDNIGHT = venue_midnight_ns("NASDAQ", date(2010, 12, 24))
LATENCY_NS = 1_000_000  # each message read 1 ms after its venue time


def _stamp(message: bytes) -> int:
    return int.from_bytes(message[5:11], "big")


def _received(message: bytes) -> int:
    """When a live reader of the sample's session would have read ``message``."""
    return MIDNIGHT + _stamp(message) + LATENCY_NS


@pytest.fixture(scope="module")
def raw() -> bytes:
    return gzip.decompress(SAMPLE.read_bytes())


@pytest.fixture(scope="module")
def messages(raw: bytes) -> list[bytes]:
    found, rest, bad = split_length_prefixed(raw)
    assert (rest, bad) == (b"", 0)
    return found


def test_sample_has_12012_messages_with_zero_length_prefixes(
    raw: bytes, messages: list[bytes]
) -> None:
    assert len(messages) == 12_012
    position = 0
    for message in messages:
        assert raw[position : position + 2] == b"\x00\x00"
        position += 2 + len(message)
    kinds = Counter(m[:1] for m in messages)
    assert kinds == {b"P": 5000, b"A": 4997, b"D": 1745, b"E": 198, b"X": 45, b"U": 12,
                     b"S": 6, b"R": 3, b"H": 3, b"F": 3}  # fmt: skip


def test_midnight_is_us_eastern() -> None:
    assert MIDNIGHT == 1_293_166_800_000_000_000  # 2010-12-24T05:00:00Z


def _run(messages: list[bytes]) -> tuple[ItchParser, list[Tick], Counter[str]]:
    parser = ItchParser()
    ticks: list[Tick] = []
    reasons: Counter[str] = Counter()
    for message in messages:
        result = parser.parse(message, _received(message))
        ticks.extend(result.ticks)
        reasons.update(r.reason for r in result.rejections)
    return parser, ticks, reasons


def test_directory_names_three_stocks_and_the_first_tick_is_exact(messages: list[bytes]) -> None:
    parser, ticks, _ = _run(messages)
    assert {parser.symbol(locate) for locate in (1, 2, 3)} == {"ALC", "BOB", "CHAR"}
    first = ticks[0]
    add = next(m for m in messages if m[:1] in (b"A", b"F"))
    _, _, _, stamp = schema.HEADER.unpack_from(add)
    _, side, shares, stock, price = schema.ADD_ORDER.unpack_from(add, schema.HEADER_BYTES)
    assert side == b"B"
    assert first == Tick(
        exchange="NASDAQ",
        symbol=stock.decode().strip(),
        bid_nanos=price * 100_000,  # Price(4): 4 implied decimals -> 9
        bid_size_nanos=shares * 1_000_000_000,
        event_time_ns=MIDNIGHT + int.from_bytes(stamp, "big"),
        received_time_ns=MIDNIGHT + int.from_bytes(stamp, "big") + LATENCY_NS,
        venue_symbol=stock.decode().strip(),
    )
    assert first.bid_nanos == 5_316_700_000  # $5.3167


def test_volume_is_the_sum_of_printed_executions(messages: list[bytes]) -> None:
    parser, ticks, _ = _run(messages)
    executed: Counter[int] = Counter()
    for message in messages:
        kind, locate = message[:1], struct.unpack_from(">H", message, 1)[0]
        body = message[schema.HEADER_BYTES :]
        if kind == b"E":
            executed[locate] += struct.unpack_from(">QI", body)[1]
        elif kind == b"P":
            executed[locate] += struct.unpack_from(">QcI", body)[2]
    for locate in (1, 2, 3):
        state = parser.state(locate)
        assert state is not None
        assert state.volume_nanos == executed[locate] * 1_000_000_000
        sent = [t.volume_nanos for t in ticks if t.symbol == state.symbol]
        assert sent == sorted(sent)  # cumulative: never goes down


def test_the_made_up_book_ends_crossed_and_crossed_quotes_are_refused(
    messages: list[bytes],
) -> None:
    parser, ticks, reasons = _run(messages)
    assert set(reasons) == {RejectReason.CROSSED_QUOTE}
    assert reasons[RejectReason.CROSSED_QUOTE] == 5_086
    assert all(check_tick(tick) is None for tick in ticks)
    crossed = []
    for locate in (1, 2, 3):
        book = parser.book(locate)
        assert book is not None
        crossed.append(book.top().crossed)
    assert any(crossed)


def test_unknown_locate_and_wrong_length_are_refused_not_raised() -> None:
    parser = ItchParser()
    add = (
        b"A"
        + struct.pack(">HH", 9, 0)
        + (5).to_bytes(6, "big")
        + schema.ADD_ORDER.pack(1, b"B", 100, b"ZZZ     ", 10_000)
    )
    result = parser.parse(add, MIDNIGHT + 10)
    assert [r.reason for r in result.rejections] == [RejectReason.BAD_SYMBOL]
    assert parser.parse(add[:-1], MIDNIGHT + 10).kind is FrameKind.MALFORMED
    assert parser.parse(b"", MIDNIGHT + 10).kind is FrameKind.MALFORMED


def test_a_stamp_of_a_day_or_more_is_malformed() -> None:
    # nanoseconds since midnight (spec, Data Types): at most 25 h, on the day DST ends
    parser = ItchParser()
    late = 25 * 3600 * 1_000_000_000
    event = b"S" + struct.pack(">HH", 0, 0) + late.to_bytes(6, "big") + b"O"
    assert parser.parse(event, MIDNIGHT + late).kind is FrameKind.MALFORMED
    in_time = event[:5] + (late - 1).to_bytes(6, "big") + b"O"
    assert parser.parse(in_time, MIDNIGHT + late).kind is FrameKind.CONTROL


# --- SoupBinTCP and MoldUDP64 -------------------------------------------------------------


def test_soup_framer_cuts_packets_split_anywhere(messages: list[bytes]) -> None:
    stream = b"".join(
        len(payload).to_bytes(2, "big") + payload
        for payload in [
            b"A" + b"SESSION001" + b"1".rjust(20),
            *(b"S" + m for m in messages[:20]),
            b"H",
        ]
    )
    for cut in (1, 2, 3, 50, len(stream) - 1):
        framer = SoupFramer()
        packets = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert [kind for kind, _ in packets] == [b"A"] + [b"S"] * 20 + [b"H"]
        assert [payload for kind, payload in packets if kind == b"S"] == messages[:20]
    login = schema.soup_login("user", "pw", "", 1)
    assert len(login) == 2 + 47
    assert login[2:3] == b"L"


def _mold(sequence: int, payloads: list[bytes], session: bytes = b"SESSION001") -> bytes:
    body = b"".join(len(p).to_bytes(2, "big") + p for p in payloads)
    return schema.MOLD_HEADER.pack(session, sequence, len(payloads)) + body


def test_mold_gaps_are_reported_and_duplicates_dropped(messages: list[bytes]) -> None:
    sequence = MoldSequence()
    fresh, gap = sequence.accept(parse_mold_packet(_mold(1, messages[0:3])))
    assert (fresh, gap) == (messages[0:3], None)
    fresh, gap = sequence.accept(parse_mold_packet(_mold(6, messages[5:7])))  # 4, 5 lost
    assert (fresh, gap) == (messages[5:7], (4, 2))
    fresh, gap = sequence.accept(parse_mold_packet(_mold(7, messages[6:9])))  # 7 again
    assert (fresh, gap) == (messages[7:9], None)
    assert (sequence.expected, sequence.gaps, sequence.missing) == (10, 1, 2)
    assert sequence.duplicates == 1
    end = parse_mold_packet(schema.MOLD_HEADER.pack(b"SESSION001", 10, 0xFFFF))
    assert end.end_of_session


def test_mold_heartbeats_are_counted_and_report_a_gap_they_reveal() -> None:
    # MoldUDP64 1.00: a heartbeat is a packet of 0 messages carrying the next expected number
    sequence = MoldSequence()
    assert sequence.accept(parse_mold_packet(_mold(1, []))) == ([], None)
    assert sequence.accept(parse_mold_packet(_mold(4, []))) == ([], (1, 3))  # 1..3 were lost
    assert (sequence.heartbeats, sequence.gaps, sequence.duplicates) == (2, 1, 0)


@pytest.mark.parametrize("count", [0, 2, 0xFFFF])
def test_mold_sequence_number_zero_is_refused_not_taken_for_a_retransmission(count: int) -> None:
    # messages are numbered from 1; 0 names no message and no next one
    payloads = [b"x", b"y"] if count == 2 else []
    datagram = schema.MOLD_HEADER.pack(b"SESSION001", 0, count) + b"".join(
        len(p).to_bytes(2, "big") + p for p in payloads
    )
    with pytest.raises(ValueError, match="sequence number 0"):
        parse_mold_packet(datagram)


def test_every_mold_packet_is_counted_by_what_it_was(messages: list[bytes]) -> None:
    sink_pipeline = FeedPipeline(ItchParser(), ListSink(), "fh-mold")
    receiver = MoldReceiver("127.0.0.1", 0, sink_pipeline, wall_ns=lambda: MIDNIGHT + 10**12)
    receiver.on_datagram(_mold(1, messages[0:3]))
    receiver.on_datagram(_mold(2, messages[1:4]))  # 2, 3 again; 4 is new
    receiver.on_datagram(_mold(5, []))  # a heartbeat
    receiver.on_datagram(schema.MOLD_HEADER.pack(b"SESSION001", 0, 1) + b"\x00\x01x")
    frames = sink_pipeline.counters.frames
    assert frames[FrameKind.DUPLICATE] == 2
    assert frames[FrameKind.HEARTBEAT] == 1
    assert frames[FrameKind.MALFORMED] == 1
    assert sink_pipeline.counters.rejected[RejectReason.MALFORMED] == 1
    assert sum(frames[kind] for kind in FrameKind if kind not in (
        FrameKind.DUPLICATE, FrameKind.HEARTBEAT, FrameKind.MALFORMED)) == 4  # fmt: skip


def test_a_short_mold_datagram_is_an_error() -> None:
    with pytest.raises(ValueError, match="MoldUDP64"):
        parse_mold_packet(b"short")
    with pytest.raises(ValueError, match="MoldUDP64"):
        parse_mold_packet(schema.MOLD_HEADER.pack(b"S", 1, 2) + b"\x00\x05abc")

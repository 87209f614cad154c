"""The recorded Coinbase capture (tests/data/coinbase, see its README) through the parser."""

from collections import Counter
from pathlib import Path

import orjson
import pytest

from feedhandlers.capture import CaptureLine, read_frames
from feedhandlers.parsing import FrameKind
from feedhandlers.venues.coinbase import schema
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from marketcore.normalization import RejectReason
from marketcore.order_book import BOOK_DECIMALS
from marketcore.scaled_decimal import parse_scaled
from marketcore.ticks import Tick
from marketcore.venue_time import iso8601_utc_ns

CAPTURE = Path(__file__).parents[1] / "data" / "coinbase" / "COINBASE.ws.28.0.gz"


@pytest.fixture(scope="module")
def frames() -> list[CaptureLine]:
    return read_frames(CAPTURE)


def _book(text: str) -> int:
    return parse_scaled(text, BOOK_DECIMALS, 10**40)


def test_capture_holds_the_documented_message_counts(frames: list[CaptureLine]) -> None:
    kinds = Counter(orjson.loads(frame.payload)["type"] for frame in frames)
    assert kinds["ticker"] == 107
    assert kinds["match"] == 97
    assert kinds["snapshot"] == 10
    assert kinds["l2update"] == 9_719
    assert kinds["last_match"] == 10


def test_every_frame_parses_without_a_malformed_rejection(frames: list[CaptureLine]) -> None:
    parser = CoinbaseParser()
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        kinds[result.kind] += 1
        reasons.update(rejection.reason for rejection in result.rejections)
        assert not result.resync
    assert kinds[FrameKind.MALFORMED] == 0
    assert kinds[FrameKind.CONTROL] == 3  # the subscriptions acknowledgements
    # SKL-BTC, BAND-BTC, DASH-BTC... quote below a micro: refused, never rounded
    assert set(reasons) == {RejectReason.PRICE_NOT_REPRESENTABLE}


def test_first_ticker_is_band_gbp_and_keeps_its_trade_with_the_book_quote(
    frames: list[CaptureLine],
) -> None:
    parser = CoinbaseParser()
    for frame in frames:
        message = orjson.loads(frame.payload)
        result = parser.parse(frame.payload, frame.time_ns)
        if message["type"] == "ticker":
            break
    else:
        pytest.fail("no ticker in the capture")
    assert (message["product_id"], message["best_bid"], message["best_ask"], message["price"]) == (
        "BAND-GBP",
        "14.7550",
        "14.8060",
        "14.7775",
    )
    # The book (its snapshot came first) owns the quote; this ticker's quote is older.
    book = parser.book("BAND-GBP")
    assert book is not None
    top = book.top()
    (tick,) = result.ticks
    assert tick == Tick(
        exchange="COINBASE",
        symbol="BAND-GBP",
        bid_micros=top.bid // 10**6,
        ask_micros=top.ask // 10**6,
        last_micros=14_777_500,
        volume_micros=94_381_280_000,
        bid_size_micros=top.bid_size // 10**6,
        ask_size_micros=top.ask_size // 10**6,
        last_size_micros=40_000,
        event_time_ns=iso8601_utc_ns("2021-04-17T16:43:30.244075Z"),
        received_time_ns=1_618_677_817_079_694_000,
        venue_symbol="BAND-GBP",
    )
    assert tick.event_time_ns == 1_618_677_810_244_075_000


def test_rebuilt_books_match_every_ticker_but_the_first_per_product(
    frames: list[CaptureLine],
) -> None:
    parser = CoinbaseParser()
    seen: set[str] = set()
    checked = 0
    for frame in frames:
        parser.parse(frame.payload, frame.time_ns)
        message = orjson.loads(frame.payload)
        if message["type"] != schema.TICKER:
            continue
        product_id = message["product_id"]
        if product_id not in seen:
            seen.add(product_id)  # sent on subscribe, describing an older trade
            continue
        book = parser.book(product_id)
        assert book is not None
        top = book.top()
        assert (top.bid, top.ask) == (_book(message["best_bid"]), _book(message["best_ask"])), (
            product_id,
            message["sequence"],
        )
        checked += 1
    assert len(seen) == 10
    assert checked == 107 - 10


def test_ticks_carry_the_book_top_in_micros_and_never_a_crossed_quote(
    frames: list[CaptureLine],
) -> None:
    parser = CoinbaseParser()
    ticks: list[Tick] = []
    for frame in frames:
        ticks.extend(parser.parse(frame.payload, frame.time_ns).ticks)
    assert len(ticks) == 1_250
    for tick in ticks:
        assert 0 < tick.bid_micros < tick.ask_micros
        assert tick.received_time_ns > 0
    symbols = {tick.symbol for tick in ticks}
    assert symbols == {"BAND-GBP", "CRV-EUR", "NMR-EUR", "NU-GBP", "SKL-GBP", "SKL-USD", "YFI-BTC"}


def test_l2update_before_its_snapshot_asks_for_a_resnapshot_once() -> None:
    parser = CoinbaseParser()
    update = (
        b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","100.00","1.0"]],'
        b'"time":"2021-04-17T16:43:37.075687Z"}'
    )
    read_ns = 1_618_677_817_075_687_000 + 1_000_000  # 1 ms after the update's time
    first = parser.parse(update, read_ns)
    second = parser.parse(update, read_ns + 1)
    assert first.resync == ["BTC-USD"]
    assert [r.reason for r in first.rejections] == [RejectReason.BOOK_NOT_READY]
    assert second.resync == []  # already asked: one resubscribe per problem
    snapshot = (
        b'{"type":"snapshot","product_id":"BTC-USD","bids":[["99.00","1"]],"asks":[["101.00","2"]]}'
    )
    (tick,) = parser.parse(snapshot, read_ns + 2).ticks
    assert (tick.bid_micros, tick.ask_micros, tick.event_time_ns) == (99_000_000, 101_000_000, 0)
    (tick,) = parser.parse(update, read_ns + 3).ticks
    assert (tick.bid_micros, tick.bid_size_micros) == (100_000_000, 1_000_000)


def test_l2update_below_the_top_emits_nothing() -> None:
    parser = CoinbaseParser()
    parser.parse(
        b'{"type":"snapshot","product_id":"ETH-USD","bids":[["99.00","1"]],"asks":[["101.00","2"]]}',
        1,
    )
    deeper = (
        b'{"type":"l2update","product_id":"ETH-USD","changes":[["buy","98.00","5"]],'
        b'"time":"2021-04-17T16:43:37.075687Z"}'
    )
    result = parser.parse(deeper, 2)
    assert result.kind is FrameKind.DATA
    assert result.ticks == []
    assert result.rejections == []


def test_a_venue_error_is_reported_not_raised() -> None:
    result = CoinbaseParser().parse(
        b'{"type":"error","message":"Failed to subscribe",'
        b'"reason":"BAD-PAIR is not a valid product"}',
        1,
    )
    assert result.kind is FrameKind.VENUE_ERROR
    assert [r.reason for r in result.rejections] == [RejectReason.VENUE_ERROR]
    assert "BAD-PAIR" in result.rejections[0].detail

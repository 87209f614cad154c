"""The recorded Coinbase capture (tests/data/coinbase, see its README) through the parser.

Expected values are the capture's own text, converted by Python's ``decimal`` (``_exact``)
or written out as literals, never taken from our parser."""

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from feedhandlers.capture import (
    CaptureLine,
    LineKind,
    open_capture,
    parse_capture_line,
    read_frames,
)
from feedhandlers.parsing import FrameKind
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.coinbase import schema
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.normalization import RejectReason
from marketcore.order_book import BOOK_DECIMALS
from marketcore.scaled_decimal import parse_scaled
from marketcore.ticks import Tick
from marketcore.venue_time import iso8601_utc_ns
from tests.support import ListSink, nanos

CAPTURE = Path(__file__).parents[1] / "data" / "coinbase" / "COINBASE.ws.28.0.gz"


@pytest.fixture(scope="module")
def frames() -> list[CaptureLine]:
    return read_frames(CAPTURE)


def _book(text: str) -> int:
    return parse_scaled(text, BOOK_DECIMALS, 10**40)


def _subscribed() -> list[str]:
    """The product ids of the capture's first subscribe request (a line we sent)."""
    with open_capture(CAPTURE) as capture:
        for line in map(parse_capture_line, capture):
            if line.kind is LineKind.SENT:
                products: list[str] = orjson.loads(line.payload)["product_ids"]
                return products
    raise AssertionError("no subscribe in the capture")


def _exact(text: str) -> int:
    """Venue text in nanos, by Python's decimal (the expected value, not the parser's)."""
    value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value(), f"{text} has more than nine decimals"
    return int(value)


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
    # SKL-BTC, BAND-BTC, DASH-BTC quote below a micro: exact at nanos, nothing refused
    assert reasons == Counter()


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
        bid_nanos=top.bid // 10**3,  # the book keeps 12 decimals
        ask_nanos=top.ask // 10**3,
        last_nanos=14_777_500_000,  # "14.7775"
        volume_nanos=94_381_280_000_000,  # "94381.28000000"
        bid_size_nanos=top.bid_size // 10**3,
        ask_size_nanos=top.ask_size // 10**3,
        last_size_nanos=40_000_000,  # "0.04000000"
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


def test_ticks_carry_the_book_top_in_nanos_and_never_a_crossed_quote(
    frames: list[CaptureLine],
) -> None:
    parser = CoinbaseParser()
    ticks: list[Tick] = []
    for frame in frames:
        ticks.extend(parser.parse(frame.payload, frame.time_ns).ticks)
    for tick in ticks:
        assert 0 < tick.bid_nanos < tick.ask_nanos
        assert tick.received_time_ns > 0
    # every subscribed product publishes, the three quoted below a micro in BTC included
    subscribed = _subscribed()
    assert {tick.symbol for tick in ticks} == set(subscribed)
    assert {"SKL-BTC", "BAND-BTC", "DASH-BTC"} <= set(subscribed)


def _tick_of(frames: list[CaptureLine], line_time_ns: int) -> Tick:
    """The one tick the frame received at ``line_time_ns`` produced (earlier frames first)."""
    parser = CoinbaseParser()
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        if frame.time_ns == line_time_ns:
            (tick,) = result.ticks
            return tick
    raise AssertionError(f"no frame received at {line_time_ns}")


@pytest.mark.parametrize(
    ("received", "symbol", "bid", "bid_size", "ask", "ask_size"),
    [
        # the snapshots' best levels, as sent: [price, size]
        ("1618677817.100718", "SKL-BTC", 13_020, 110_000_000_000, 13_050, 4_781_000_000_000),
        ("1618677817.1103628", "BAND-BTC", 334_490, 36_730_000_000, 335_190, 19_220_000_000),
        ("1618677817.114339", "DASH-BTC", 6_189_550, 2_572_000_000, 6_201_250, 1_623_000_000),
    ],
)
def test_sub_micro_snapshots_are_exact(
    frames: list[CaptureLine],
    received: str,
    symbol: str,
    bid: int,
    bid_size: int,
    ask: int,
    ask_size: int,
) -> None:
    received_ns = int(Decimal(received).scaleb(9))
    snapshot = next(orjson.loads(f.payload) for f in frames if f.time_ns == received_ns)
    assert (snapshot["type"], snapshot["product_id"]) == ("snapshot", symbol)
    best_bid, best_ask = snapshot["bids"][0], snapshot["asks"][0]
    assert (_exact(best_bid[0]), _exact(best_bid[1])) == (bid, bid_size)  # "0.00001302", "110.0"
    assert (_exact(best_ask[0]), _exact(best_ask[1])) == (ask, ask_size)
    assert all(Decimal(level[0]) < Decimal(best_bid[0]) for level in snapshot["bids"][1:])
    assert all(Decimal(level[0]) > Decimal(best_ask[0]) for level in snapshot["asks"][1:])
    tick = _tick_of(frames, received_ns)
    assert tick == Tick(
        exchange="COINBASE",
        symbol=symbol,
        bid_nanos=bid,
        ask_nanos=ask,
        bid_size_nanos=bid_size,
        ask_size_nanos=ask_size,
        event_time_ns=0,  # a snapshot has no time
        received_time_ns=received_ns,
        venue_symbol=symbol,
    )


def test_skl_btc_trade_at_0_00001305_is_exact(frames: list[CaptureLine]) -> None:
    # Frame 1618677817.129528: ticker SKL-BTC sequence 177100030, price "0.00001305",
    # last_size "985", volume_24h "7367714.40000000", best_bid "0.00001303" (the book's: set by
    # l2update buy 0.00001303 5610.0), best_ask "0.00001305" (l2update sell 0.00001305 0.1).
    tick = _tick_of(frames, 1_618_677_817_129_528_000)
    assert tick == Tick(
        exchange="COINBASE",
        symbol="SKL-BTC",
        bid_nanos=13_030,
        ask_nanos=13_050,
        last_nanos=13_050,
        volume_nanos=7_367_714_400_000_000,
        bid_size_nanos=5_610_000_000_000,
        ask_size_nanos=100_000_000,
        last_size_nanos=985_000_000_000,
        event_time_ns=iso8601_utc_ns("2021-04-17T16:43:37.089723Z"),
        received_time_ns=1_618_677_817_129_528_000,
        venue_symbol="SKL-BTC",
    )


def test_dash_btc_volume_with_eight_decimals_is_exact(frames: list[CaptureLine]) -> None:
    # Frame 1618677817.116746: ticker DASH-BTC price "0.00619345", last_size "0.012",
    # volume_24h "10364.08917066" (finer than a micro: sent as 0 before v2); the quote is the
    # book's from the snapshot just before (best bid 0.00618955 x 2.572, ask 0.00620125 x 1.623).
    tick = _tick_of(frames, 1_618_677_817_116_746_000)
    assert (tick.symbol, tick.last_nanos, tick.last_size_nanos) == (
        "DASH-BTC",
        6_193_450,
        12_000_000,
    )
    assert tick.volume_nanos == 10_364_089_170_660
    assert (tick.bid_nanos, tick.ask_nanos) == (6_189_550, 6_201_250)
    assert (tick.bid_size_nanos, tick.ask_size_nanos) == (2_572_000_000, 1_623_000_000)


# --- the whole capture against a model of the venue's bytes -------------------------------

_FIELDS = ("bid", "ask", "bid_size", "ask_size", "last", "last_size", "volume")


@dataclass
class _Product:
    """What Coinbase said of one product, as ``Decimal`` text values (the test's model)."""

    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    booked: bool = False
    ticker_quote: tuple[str, str, str, str] = ("0", "0", "0", "0")  # bid, size, ask, size
    last: str = "0"
    last_size: str = "0"
    volume: str = "0"

    def top(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        bid = max(self.bids, default=Decimal(0))
        ask = min(self.asks, default=Decimal(0))
        return bid, self.bids.get(bid, Decimal(0)), ask, self.asks.get(ask, Decimal(0))

    def expected(self) -> dict[str, int]:
        if self.booked:
            bid, bid_size, ask, ask_size = (_exact(str(v)) for v in self.top())
        else:
            bid, bid_size, ask, ask_size = (_exact(v) for v in self.ticker_quote)
        return {
            "bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size,
            "last": _exact(self.last), "last_size": _exact(self.last_size),
            "volume": _exact(self.volume),
        }  # fmt: skip


def _apply(product: _Product, message: dict[str, Any]) -> bool:
    """Apply one message to the model; whether the venue published something new."""
    kind = message["type"]
    if kind == "snapshot":
        product.booked = True
        product.bids = {Decimal(p): Decimal(s) for p, s in message["bids"]}
        product.asks = {Decimal(p): Decimal(s) for p, s in message["asks"]}
        return True
    if kind == "l2update":
        if not product.booked:
            return False
        before = product.top()
        for side, price, size in message["changes"]:
            levels = product.bids if side == "buy" else product.asks
            if Decimal(size):
                levels[Decimal(price)] = Decimal(size)
            else:
                levels.pop(Decimal(price), None)
        return product.top() != before
    if kind == "ticker":
        product.ticker_quote = (
            str(message["best_bid"]), str(message.get("best_bid_size", "0")),
            str(message["best_ask"]), str(message.get("best_ask_size", "0")),
        )  # fmt: skip
        product.last, product.last_size = str(message["price"]), str(message["last_size"])
        product.volume = str(message["volume_24h"])
        return True
    if kind in ("match", "last_match"):
        product.last, product.last_size = str(message["price"]), str(message["size"])
        return True
    return False


def test_whole_capture_has_no_precision_refusal_and_no_zeroed_size(
    frames: list[CaptureLine],
) -> None:
    """Every frame through the handler's pipeline (parse, number, encode) beside a model of
    the venue's bytes: refusals counted by reason, sizes reported as unknown, and every
    record's values compared field by field with the venue's text in nanos."""
    sink = ListSink()
    pipeline = FeedPipeline(CoinbaseParser(), sink, "contract")
    model: dict[str, _Product] = {}
    published = 0
    mismatched: Counter[str] = Counter()
    zeroed: Counter[str] = Counter()  # the venue sent a non-zero value, the record says 0
    sub_micro: Counter[str] = Counter()  # exact values finer than a micro, by symbol
    for frame in frames:
        message = orjson.loads(frame.payload)
        product_id = message.get("product_id")
        if product_id is not None:
            published += _apply(model.setdefault(product_id, _Product()), message)
        before = len(sink.records)
        pipeline.on_frame(frame.payload, frame.time_ns)
        for _, value in sink.records[before:]:
            update = PriceUpdate.FromString(value)
            expected = model[update.symbol].expected()
            for name in _FIELDS:
                got = nanos(getattr(update, name))
                mismatched[name] += got != expected[name]
                zeroed[name] += got == 0 != expected[name]
                sub_micro[update.symbol] += got % 1000 != 0
    counters = pipeline.counters
    assert counters.rejected == Counter()  # before v2: 742 price_not_representable
    assert counters.sizes_dropped == 0  # before v2: 16 sizes sent as 0
    assert +zeroed == Counter()
    assert +mismatched == Counter()
    assert counters.ticks == len(sink.records) == published
    assert {"SKL-BTC", "BAND-BTC", "DASH-BTC"} <= set(+sub_micro)


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
    assert (tick.bid_nanos, tick.ask_nanos) == (99_000_000_000, 101_000_000_000)
    assert tick.event_time_ns == 0  # a snapshot has no time
    (tick,) = parser.parse(update, read_ns + 3).ticks
    assert (tick.bid_nanos, tick.bid_size_nanos) == (100_000_000_000, 1_000_000_000)


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

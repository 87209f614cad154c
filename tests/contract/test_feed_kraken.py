"""The recorded Kraken ticker capture (tests/data/kraken, see its README) through the parser,
and book/trade frames written from Kraken's WebSocket v1 documentation.

Expected values are the venue's own text, converted by Python's ``decimal`` (``_exact``) or
written out as literals, never taken from our parser."""

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from feedhandlers.capture import CaptureLine, read_frames
from feedhandlers.parsing import FrameKind
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.kraken import schema
from feedhandlers.venues.kraken.parse import KrakenParser, book_checksum
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick
from tests.support import ListSink, nanos

CAPTURE = Path(__file__).parents[1] / "data" / "kraken" / "KRAKEN.ws.49.0"

# The worked example of Kraken's "Spot WebSockets (v1) Book Checksum" guide: this book has
# checksum 974947235.
DOC_ASKS = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
            "0.05030", "0.05035", "0.05040", "0.05045", "0.05050"]  # fmt: skip
DOC_BIDS = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
            "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"]  # fmt: skip
DOC_VOLUME = "0.00000500"
DOC_CHECKSUM = 974947235
TS = "1582905487.439814"
READ_NS = 1_582_905_488_100_000_000  # when these book frames are read: just after their times


@pytest.fixture(scope="module")
def frames() -> list[CaptureLine]:
    return read_frames(CAPTURE)


def _exact(text: str) -> int:
    """Venue text in nanos, by Python's decimal (the expected value, not the parser's)."""
    value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value(), f"{text} has more than nine decimals"
    return int(value)


def _tickers(frames: list[CaptureLine]) -> list[tuple[CaptureLine, str, dict[str, Any]]]:
    """(frame, pair, ticker payload) of every ticker frame, in order."""
    decoded = [(f, orjson.loads(f.payload)) for f in frames]
    return [(f, m[-1], m[1]) for f, m in decoded if isinstance(m, list) and m[-2] == "ticker"]


def test_capture_holds_18_tickers_and_the_first_is_waves_eur(frames: list[CaptureLine]) -> None:
    decoded = [orjson.loads(f.payload) for f in frames]
    tickers = [m for m in decoded if isinstance(m, list) and m[-2] == "ticker"]
    assert len(tickers) == 18
    parser = KrakenParser()
    kinds: Counter[str] = Counter()
    first: Tick | None = None
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        kinds[result.kind] += 1
        if first is None and result.ticks:
            first = result.ticks[0]
    assert kinds == {FrameKind.DATA: 18, FrameKind.HEARTBEAT: 31, FrameKind.CONTROL: 11}
    assert first == Tick(
        exchange="KRAKEN",
        symbol="WAVES-EUR",
        bid_nanos=13_232_900_000,  # "13.232900"
        ask_nanos=13_253_900_000,
        last_nanos=13_253_900_000,
        last_size_nanos=3_716_720_000,  # "3.71672000"
        # lot volumes and the day volume are finer than a micro (sent as 0 before v2)
        bid_size_nanos=185_184_320_370,  # "185.18432037"
        ask_size_nanos=35_728_922_410,  # "35.72892241"
        volume_nanos=26_560_853_644_630,  # "26560.85364463"
        event_time_ns=0,  # Kraken's ticker carries no event time
        received_time_ns=1_618_678_132_949_649_800,
        venue_symbol="WAVES/EUR",
    )


def test_kraken_asset_names_are_normalized_and_kept_as_venue_symbol(
    frames: list[CaptureLine],
) -> None:
    parser = KrakenParser()
    ticks = [t for f in frames for t in parser.parse(f.payload, f.time_ns).ticks]
    by_venue = {t.venue_symbol: t.symbol for t in ticks}
    assert by_venue["XBT/CHF"] == "BTC-CHF"
    assert by_venue["XMR/USD"] == "XMR-USD"
    assert schema.venue_symbol("BTC-CHF") == "XBT/CHF"
    assert schema.venue_symbol("DOGE-USD") == "XDG/USD"


@pytest.mark.parametrize(
    ("pair", "symbol", "bid", "bid_size", "ask", "ask_size", "last", "last_size", "volume"),
    [
        # the pair's first ticker in the capture: b, a = [price, whole lots, lot volume],
        # c = [price, lot volume], v[0] = today's volume
        ("ADA/XBT", "ADA-BTC", 22_910, 5_050_755_585_160, 22_930, 19_468_576_483_900,
         22_930, 2_436_467_204_540, 2_200_601_465_274_510),
        ("GRT/ETH", "GRT-ETH", 837_700, 3_000_000_000_000, 839_800, 430_468_941_920,
         839_800, 76_000_000_000, 17_034_204_423_830),
        ("OCEAN/XBT", "OCEAN-BTC", 27_790, 430_291_878_410, 27_850, 594_138_540_000,
         27_800, 16_834_194_200, 63_251_953_244_720),
    ],
)  # fmt: skip
def test_pairs_quoted_below_a_micro_publish_exact_ticks(
    frames: list[CaptureLine],
    pair: str,
    symbol: str,
    bid: int,
    bid_size: int,
    ask: int,
    ask_size: int,
    last: int,
    last_size: int,
    volume: int,
) -> None:
    frame, _, ticker = next(t for t in _tickers(frames) if t[1] == pair)
    # the literals are the capture's text (ADA/XBT: b "0.000022910", a "0.000022930")
    assert (_exact(ticker["b"][0]), _exact(ticker["b"][2])) == (bid, bid_size)
    assert (_exact(ticker["a"][0]), _exact(ticker["a"][2])) == (ask, ask_size)
    assert (_exact(ticker["c"][0]), _exact(ticker["c"][1])) == (last, last_size)
    assert _exact(ticker["v"][0]) == volume
    parser = KrakenParser()
    for earlier in frames:
        result = parser.parse(earlier.payload, earlier.time_ns)
        if earlier is frame:
            break
    assert result.rejections == []
    assert result.sizes_dropped == 0
    assert result.ticks == [
        Tick(
            exchange="KRAKEN",
            symbol=symbol,
            bid_nanos=bid,
            ask_nanos=ask,
            last_nanos=last,
            volume_nanos=volume,
            bid_size_nanos=bid_size,
            ask_size_nanos=ask_size,
            last_size_nanos=last_size,
            event_time_ns=0,
            received_time_ns=frame.time_ns,
            venue_symbol=pair,
        )
    ]


def test_last_trade_sizes_finer_than_a_micro_are_exact(frames: list[CaptureLine]) -> None:
    """The last trade (``c``) of each pair's first ticker: 6 of the 10 sizes have non-zero
    digits beyond the sixth decimal (sent as 0 before v2); all come out exact."""
    parser = KrakenParser()
    first: dict[str, int] = {}
    for frame in frames:
        for tick in parser.parse(frame.payload, frame.time_ns).ticks:
            first.setdefault(tick.venue_symbol, tick.last_size_nanos)
    assert first == {
        "WAVES/EUR": 3_716_720_000,  # "3.71672000"
        "XMR/USD": 1_204_543_600,  # "1.20454360"
        "KSM/XBT": 50_664_080,  # "0.05066408"
        "GRT/ETH": 76_000_000_000,  # "76.00000000"
        "SC/EUR": 11_330,  # "0.00001133"
        "ETH/CHF": 261_803_000,  # "0.26180300"
        "OCEAN/XBT": 16_834_194_200,  # "16.83419420"
        "OMG/USD": 12_000_000_000,  # "12.00000000"
        "XBT/CHF": 13_094_220,  # "0.01309422"
        "ADA/XBT": 2_436_467_204_540,  # "2436.46720454"
    }
    assert sum(size % 1000 != 0 for size in first.values()) == 6


def test_whole_capture_has_no_precision_refusal_and_no_zeroed_size(
    frames: list[CaptureLine],
) -> None:
    """Every frame through the handler's pipeline (parse, number, encode); each record
    compared field by field with its ticker's text in nanos (the ticker owns the quote: no
    book is subscribed in this capture)."""
    sink = ListSink()
    pipeline = FeedPipeline(KrakenParser(), sink, "contract")
    tickers = {frame.time_ns: (pair, ticker) for frame, pair, ticker in _tickers(frames)}
    mismatched: Counter[str] = Counter()
    zeroed: Counter[str] = Counter()  # the venue sent a non-zero value, the record says 0
    checked = 0
    for frame in frames:
        before = len(sink.records)
        pipeline.on_frame(frame.payload, frame.time_ns)
        for _, value in sink.records[before:]:
            update = PriceUpdate.FromString(value)
            pair, ticker = tickers[frame.time_ns]
            assert update.venue_symbol == pair
            expected = {
                "bid": _exact(ticker["b"][0]), "bid_size": _exact(ticker["b"][2]),
                "ask": _exact(ticker["a"][0]), "ask_size": _exact(ticker["a"][2]),
                "last": _exact(ticker["c"][0]), "last_size": _exact(ticker["c"][1]),
                "volume": _exact(ticker["v"][0]),
            }  # fmt: skip
            for name, want in expected.items():
                got = nanos(getattr(update, name))
                mismatched[name] += got != want
                zeroed[name] += got == 0 != want
            checked += 1
    counters = pipeline.counters
    # before v2: 3 price_not_representable (ADA/XBT, GRT/ETH, OCEAN/XBT: no tick at all)
    assert counters.rejected == Counter()
    assert counters.sizes_dropped == 0  # before v2: 48 sizes and volumes sent as 0
    assert +zeroed == Counter()
    assert +mismatched == Counter()
    assert checked == counters.ticks == len(tickers) == 18
    assert {PriceUpdate.FromString(v).venue_symbol for _, v in sink.records} == {
        pair for _, pair, _ in _tickers(frames)
    }


def test_checksum_reproduces_krakens_documented_example() -> None:
    asks = [(price, DOC_VOLUME) for price in DOC_ASKS]
    bids = [(price, DOC_VOLUME) for price in DOC_BIDS]
    assert book_checksum(asks, bids) == DOC_CHECKSUM


def _levels(prices: list[str]) -> list[list[str]]:
    return [[price, DOC_VOLUME, TS] for price in prices]


def _frame(*payload: object) -> bytes:
    return orjson.dumps([336, *payload, "book-10", "XBT/USD"])


def test_book_update_verified_by_checksum_after_truncation_to_depth() -> None:
    parser = KrakenParser()
    # the documented book shifted by one ask: 0.05010..0.05055
    snapshot = _frame({"as": _levels([*DOC_ASKS[1:], "0.05055"]), "bs": _levels(DOC_BIDS)})
    (tick,) = parser.parse(snapshot, READ_NS).ticks
    assert (tick.bid_nanos, tick.ask_nanos) == (50_000_000, 50_100_000)  # 0.05000, 0.05010
    assert tick.event_time_ns == 1_582_905_487_439_814_000
    # a better ask arrives; depth 10 drops 0.05055, leaving exactly the documented book
    update = _frame({"a": [["0.05005", DOC_VOLUME, "1582905488.000001"]], "c": str(DOC_CHECKSUM)})
    result = parser.parse(update, READ_NS + 1)
    assert result.rejections == []
    (tick,) = result.ticks
    assert (tick.symbol, tick.bid_nanos, tick.ask_nanos) == ("BTC-USD", 50_000_000, 50_050_000)
    assert (tick.bid_size_nanos, tick.ask_size_nanos) == (5_000, 5_000)  # "0.00000500"
    assert tick.event_time_ns == 1_582_905_488_000_001_000


def test_bid_and_ask_updates_in_two_objects_with_republish_flag() -> None:
    parser = KrakenParser()
    parser.parse(_frame({"as": _levels(DOC_ASKS), "bs": _levels([*DOC_BIDS[:-1], "0.04945"])}), 1)
    update = _frame(
        {"a": [["0.05005", DOC_VOLUME, TS, "r"]]},
        {"b": [["0.04945", "0.00000000", TS], ["0.04950", DOC_VOLUME, TS]], "c": str(DOC_CHECKSUM)},
    )
    result = parser.parse(update, 2)
    assert result.rejections == []
    assert result.ticks == []  # the top did not move


def test_checksum_mismatch_drops_the_book_and_asks_for_a_resnapshot_once() -> None:
    parser = KrakenParser()
    parser.parse(_frame({"as": _levels(DOC_ASKS), "bs": _levels(DOC_BIDS)}), READ_NS)
    wrong = _frame({"b": [["0.05001", DOC_VOLUME, TS]], "c": str(DOC_CHECKSUM)})
    result = parser.parse(wrong, READ_NS + 1)
    assert [r.reason for r in result.rejections] == [RejectReason.CHECKSUM_MISMATCH]
    assert result.resync == ["XBT/USD"]
    assert parser.book("XBT/USD") is None
    later = parser.parse(_frame({"a": [["0.05006", DOC_VOLUME, TS]], "c": "1"}), READ_NS + 2)
    assert [r.reason for r in later.rejections] == [RejectReason.BOOK_NOT_READY]
    assert later.resync == []  # already asked
    fresh = parser.parse(_frame({"as": _levels(DOC_ASKS), "bs": _levels(DOC_BIDS)}), READ_NS + 3)
    assert len(fresh.ticks) == 1


# Written from Kraken's v1 trade layout: [price, volume, time, side, orderType, misc].
TRADES = (
    b'[0,[["5541.20000","0.15850568","1534614057.321597","s","l",""],'
    b'["6060.00000","0.02455000","1534614057.324998","b","l",""]],"trade","XBT/USD"]'
)


def test_each_trade_is_a_tick_at_its_own_time() -> None:
    result = KrakenParser().parse(TRADES, 1_534_614_057_400_000_000)  # read after both
    first, second = result.ticks
    # "5541.20000" x "0.15850568": the size is finer than a micro (sent as 0 before v2)
    assert (first.last_nanos, first.last_size_nanos) == (5_541_200_000_000, 158_505_680)
    assert first.event_time_ns == 1_534_614_057_321_597_000
    assert (second.last_nanos, second.last_size_nanos) == (6_060_000_000_000, 24_550_000)
    assert second.event_time_ns == 1_534_614_057_324_998_000
    assert result.sizes_dropped == 0


TRADES_READ_NS = 1_618_678_140_300_000_000  # just after the trades below
# Written from the same layout: a satoshi-priced pair (as Kraken quotes ADA/XBT) whose
# trade sizes have eight decimals.
SUB_MICRO_TRADES = (
    b'[0,[["0.000022880","2436.46720454","1618678140.123456","b","m",""],'
    b'["0.000022870","0.00000001","1618678140.223456","s","l",""]],"trade","ADA/XBT"]'
)


def test_trades_priced_and_sized_below_a_micro_are_exact() -> None:
    result = KrakenParser().parse(SUB_MICRO_TRADES, TRADES_READ_NS)
    assert result.rejections == []
    assert result.sizes_dropped == 0
    first, second = result.ticks
    assert (first.symbol, first.last_nanos, first.last_size_nanos) == (
        "ADA-BTC",
        22_880,
        2_436_467_204_540,
    )
    assert (second.last_nanos, second.last_size_nanos) == (22_870, 10)  # one satoshi
    assert second.event_time_ns == 1_618_678_140_223_456_000


def test_a_trade_beyond_nine_decimals_is_refused_and_its_size_counted() -> None:
    frame = (
        b'[0,[["0.0000228801","1","1618678140.1","b","m",""],'
        b'["0.00002288","0.0000000001","1618678140.2","s","l",""]],"trade","ADA/XBT"]'
    )
    result = KrakenParser().parse(frame, TRADES_READ_NS)
    assert [r.reason for r in result.rejections] == [RejectReason.PRICE_NOT_REPRESENTABLE]
    (tick,) = result.ticks
    assert (tick.last_nanos, tick.last_size_nanos) == (22_880, 0)  # ten decimals: unknown
    assert result.sizes_dropped == 1


def test_a_refused_subscription_is_a_venue_error() -> None:
    frame = (
        b'{"errorMessage":"Currency pair not supported XBT/XYZ","event":"subscriptionStatus",'
        b'"pair":"XBT/XYZ","status":"error","subscription":{"name":"ticker"}}'
    )
    result = KrakenParser().parse(frame, 1)
    assert result.kind is FrameKind.VENUE_ERROR
    assert "not supported" in result.rejections[0].detail

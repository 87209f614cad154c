"""Every venue parser at the v2 scale (nanos, 1e-9), by property: any exact decimal a venue
may send (prices to 1e10 and sizes to 1e15, up to nine decimals, however many trailing zeros)
comes out exact, in the tick and on the wire; a non-zero digit beyond the ninth decimal, or a
value beyond the wire's range, is refused with its reason (a price) or reported as unknown
and counted (a size). Never rounded.

The frames are written from each venue's documented message layout (as the contract tests'
hand-written frames are); the expected values are the integers the text was made from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedhandlers.parsing import FrameParser, FrameResult
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.binance.parse import BinanceParser
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from feedhandlers.venues.fix import schema as fix_schema
from feedhandlers.venues.fix.parse import FixParser
from feedhandlers.venues.fix.session import sending_time
from feedhandlers.venues.kraken.parse import KrakenParser
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.normalization import RejectReason
from tests.support import ListSink, nanos

E9 = 10**9
WIRE_MAX_UNITS = 2**63 - 1  # a Decimal's int64 units
T0 = 1_618_677_810_244_000_000
FIELDS = ("bid", "bid_size", "ask", "ask_size", "last", "last_size")
PRICES = ("bid", "ask", "last")
SIZES = ("bid_size", "ask_size", "last_size")
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Texts = dict[str, str]  # field -> venue text


def _text(value_nanos: int, places: int) -> str:
    """``value_nanos`` as venue text with ``places`` decimals (trailing zeros past nine)."""
    whole, fraction = divmod(value_nanos, E9)
    digits = f"{fraction:09d}"
    if places < 9:
        assert not digits[places:].strip("0"), "not enough places for the value"
        digits = digits[:places]
    else:
        digits += "0" * (places - 9)
    return f"{whole}.{digits}" if places else str(whole)


def _places_needed(value_nanos: int) -> int:
    return len(f"{value_nanos % E9:09d}".rstrip("0"))


@st.composite
def exact_text(draw: st.DrawFn, value_nanos: int) -> str:
    """``value_nanos`` spelled as venues do: the needed decimals, or more with zeros."""
    places = draw(st.integers(_places_needed(value_nanos), 12))
    return _text(value_nanos, places)


# --- the venues: each builds frames from texts, in its documented layout ---------------------


@dataclass(frozen=True)
class Venue:
    name: str
    make: Callable[[], FrameParser]
    frames: Callable[[Texts], list[bytes]]  # the quote first, then the trade
    book: bool  # quotes kept in an order book (12 decimals) rather than taken as sent


def _coinbase_ticker(t: Texts) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "type": "ticker", "product_id": "ADA-BTC", "time": "2021-04-17T16:43:30.244075Z",
                "best_bid": t["bid"], "best_bid_size": t["bid_size"],
                "best_ask": t["ask"], "best_ask_size": t["ask_size"],
                "price": t["last"], "last_size": t["last_size"],
            }
        )
    ]  # fmt: skip


def _coinbase_book(t: Texts) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "type": "snapshot", "product_id": "ADA-BTC",
                "bids": [[t["bid"], t["bid_size"]]], "asks": [[t["ask"], t["ask_size"]]],
            }
        ),
        orjson.dumps(
            {
                "type": "match", "product_id": "ADA-BTC", "time": "2021-04-17T16:43:30.244075Z",
                "price": t["last"], "size": t["last_size"],
            }
        ),
    ]  # fmt: skip


def _binance(t: Texts) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "stream": "adabtc@bookTicker",
                "data": {"u": 1, "s": "ADABTC", "b": t["bid"], "B": t["bid_size"],
                         "a": t["ask"], "A": t["ask_size"]},
            }
        ),
        orjson.dumps(
            {
                "stream": "adabtc@aggTrade",
                "data": {"e": "aggTrade", "E": 1618677810200, "s": "ADABTC", "a": 1,
                         "p": t["last"], "q": t["last_size"], "f": 1, "l": 1,
                         "T": 1618677810200, "m": False},
            }
        ),
    ]  # fmt: skip


def _kraken_ticker(t: Texts) -> list[bytes]:
    return [
        orjson.dumps(
            [
                1364,
                {"a": [t["ask"], 1, t["ask_size"]], "b": [t["bid"], 1, t["bid_size"]],
                 "c": [t["last"], t["last_size"]], "v": ["0", "0"]},
                "ticker", "ADA/XBT",
            ]
        )
    ]  # fmt: skip


def _kraken_book(t: Texts) -> list[bytes]:
    stamp = "1618677810.123456"  # just before T0, when the frame is read
    return [
        orjson.dumps(
            [1364,
             {"as": [[t["ask"], t["ask_size"], stamp]], "bs": [[t["bid"], t["bid_size"], stamp]]},
             "book-10", "ADA/XBT"]
        ),
        orjson.dumps(
            [0, [[t["last"], t["last_size"], stamp, "b", "l", ""]], "trade", "ADA/XBT"]
        ),
    ]  # fmt: skip


def _fix(t: Texts) -> list[bytes]:
    header = [(49, "SIM"), (56, "MDGW"), (34, "1"), (52, sending_time(T0))]
    body = [
        (262, "md-1"), (55, "ADA-BTC"), (268, "3"),
        (269, "0"), (270, t["bid"]), (271, t["bid_size"]),
        (269, "1"), (270, t["ask"]), (271, t["ask_size"]),
        (269, "2"), (270, t["last"]), (271, t["last_size"]),
    ]  # fmt: skip
    return [fix_schema.encode("W", body, header=header)]


VENUES = [
    Venue("coinbase-ticker", CoinbaseParser, _coinbase_ticker, book=False),
    Venue("coinbase-book", CoinbaseParser, _coinbase_book, book=True),
    Venue("binance", BinanceParser, _binance, book=False),
    Venue("kraken-ticker", KrakenParser, _kraken_ticker, book=False),
    Venue("kraken-book", KrakenParser, _kraken_book, book=True),
    Venue("fix", FixParser, _fix, book=True),
]
BY_NAME = {venue.name: venue for venue in VENUES}


@dataclass
class Outcome:
    results: list[FrameResult]
    updates: list[PriceUpdate]  # what went on the wire, decoded

    @property
    def reasons(self) -> list[RejectReason]:
        return [r.reason for result in self.results for r in result.rejections]

    @property
    def sizes_dropped(self) -> int:
        return sum(result.sizes_dropped for result in self.results)


def _run(venue: Venue, texts: Texts) -> Outcome:
    sink = ListSink()
    pipeline = FeedPipeline(venue.make(), sink, "property")
    results = [pipeline.on_frame(frame, T0) for frame in venue.frames(texts)]
    return Outcome(results, sink.updates())


def _wire(update: PriceUpdate) -> dict[str, int]:
    return {name: nanos(getattr(update, name)) for name in FIELDS}


# --- values a venue may send: prices to 1e10, sizes to 1e15, nine decimals -------------------

_price = st.integers(1, 10**10 * E9)
_size = st.integers(1, 10**15 * E9)


@st.composite
def exact_values(draw: st.DrawFn) -> dict[str, int]:
    bid = draw(_price)
    ask = draw(st.integers(bid + 1, bid + 10**6 * E9))  # never crossed
    values = {"bid": bid, "ask": ask, "last": draw(_price)}
    values.update({name: draw(_size) for name in SIZES})
    return values


@pytest.mark.parametrize("venue", [v.name for v in VENUES])
@EXAMPLES
@given(values=exact_values(), data=st.data())
def test_exact_decimals_up_to_nine_places_come_out_exact(
    venue: str, values: dict[str, int], data: st.DataObject
) -> None:
    texts = {name: data.draw(exact_text(value), label=name) for name, value in values.items()}
    outcome = _run(BY_NAME[venue], texts)
    assert outcome.reasons == []
    assert outcome.sizes_dropped == 0
    assert outcome.updates, "no tick"
    assert _wire(outcome.updates[-1]) == values


def test_the_venues_own_sub_micro_spellings_are_exact() -> None:
    # Kraken ADA/XBT (9 places), Coinbase SKL-BTC (8), Binance LRC-BTC (8), satoshi sizes
    texts = {
        "bid": "0.000022910", "ask": "0.000022930", "last": "0.00000638",
        "bid_size": "5050.75558516", "ask_size": "0.00000001", "last_size": "0.15850568",
    }  # fmt: skip
    expected = {
        "bid": 22_910, "ask": 22_930, "last": 6_380,
        "bid_size": 5_050_755_585_160, "ask_size": 10, "last_size": 158_505_680,
    }  # fmt: skip
    for venue in VENUES:
        outcome = _run(venue, texts)
        assert (outcome.reasons, outcome.sizes_dropped) == ([], 0), venue.name
        assert _wire(outcome.updates[-1]) == expected, venue.name


# --- more than nine decimals -----------------------------------------------------------------


@st.composite
def too_precise_text(draw: st.DrawFn, value_nanos: int, most_places: int = 14) -> str:
    """``value_nanos`` with a non-zero digit somewhere past the ninth decimal."""
    extra = draw(st.integers(1, most_places - 9))
    tail = draw(st.integers(1, 10**extra - 1).filter(lambda n: n % 10 != 0))
    return _text(value_nanos, 9) + f"{tail:0{extra}d}"


@pytest.mark.parametrize("venue", [v.name for v in VENUES])
@pytest.mark.parametrize("field", PRICES)
@EXAMPLES
@given(values=exact_values(), data=st.data())
def test_a_price_beyond_nine_decimals_is_refused_with_its_reason(
    venue: str, field: str, values: dict[str, int], data: st.DataObject
) -> None:
    texts = {name: _text(value, 9) for name, value in values.items()}
    texts[field] = data.draw(too_precise_text(values[field]), label=field)
    outcome = _run(BY_NAME[venue], texts)
    frames = BY_NAME[venue].frames(texts)
    # the frame that carries the value is refused, with the precision reason
    carrying = next(
        result for frame, result in zip(frames, outcome.results, strict=True)
        if texts[field].encode() in frame
    )  # fmt: skip
    assert carrying.ticks == []
    assert [r.reason for r in carrying.rejections] == [RejectReason.PRICE_NOT_REPRESENTABLE]
    assert set(outcome.reasons) == {RejectReason.PRICE_NOT_REPRESENTABLE}
    for update in outcome.updates:  # nothing rounded ever goes out
        assert nanos(getattr(update, field)) == 0


@pytest.mark.parametrize("venue", [v.name for v in VENUES])
@pytest.mark.parametrize("field", SIZES)
@EXAMPLES
@given(values=exact_values(), data=st.data())
def test_a_size_beyond_nine_decimals_is_unknown_and_counted(
    venue: str, field: str, values: dict[str, int], data: st.DataObject
) -> None:
    # a book keeps 12 decimals (marketcore.order_book): a size finer than that cannot even
    # be kept, and the frame is refused (see test_a_book_level_beyond_twelve_decimals_...)
    most = 12 if BY_NAME[venue].book and field != "last_size" else 14
    texts = {name: _text(value, 9) for name, value in values.items()}
    texts[field] = data.draw(too_precise_text(values[field], most), label=field)
    outcome = _run(BY_NAME[venue], texts)
    assert outcome.reasons == []
    assert outcome.sizes_dropped >= 1
    assert _wire(outcome.updates[-1]) == {**values, field: 0}


def test_a_book_level_beyond_twelve_decimals_refuses_the_frame() -> None:
    texts = {"bid": "1", "ask": "2", "last": "1.5", "ask_size": "1", "last_size": "1"}
    texts["bid_size"] = "0.0000000000001"  # 13 decimals: beyond what a book keeps
    outcome = _run(BY_NAME["coinbase-book"], texts)
    assert outcome.results[0].ticks == []
    assert [r.reason for r in outcome.results[0].rejections] == [
        RejectReason.PRICE_NOT_REPRESENTABLE
    ]


# --- beyond the wire's range ----------------------------------------------------------------

_huge_units = st.integers(WIRE_MAX_UNITS + 1, 10**30)


@pytest.mark.parametrize("venue", [v.name for v in VENUES])
@pytest.mark.parametrize("field", PRICES)
@EXAMPLES
@given(values=exact_values(), units=_huge_units, spelling=st.sampled_from(["plain", "e"]))
def test_a_price_beyond_the_wire_range_is_refused_with_its_reason(
    venue: str, field: str, values: dict[str, int], units: int, spelling: str
) -> None:
    texts = {name: _text(value, 9) for name, value in values.items()}
    texts[field] = str(units) if spelling == "plain" else f"{units}e0"
    if field == "bid":  # keep the quote uncrossed: the only problem is the range
        texts["ask"] = str(units + 1)
    outcome = _run(BY_NAME[venue], texts)
    assert RejectReason.PRICE_NOT_REPRESENTABLE in outcome.reasons
    assert set(outcome.reasons) == {RejectReason.PRICE_NOT_REPRESENTABLE}
    for update in outcome.updates:
        assert nanos(getattr(update, field)) == 0


@pytest.mark.parametrize("venue", ["coinbase-ticker", "binance", "kraken-ticker"])
@pytest.mark.parametrize("field", SIZES)
@EXAMPLES
@given(values=exact_values(), units=_huge_units)
def test_a_size_beyond_the_wire_range_is_unknown_and_counted(
    venue: str, field: str, values: dict[str, int], units: int
) -> None:
    texts = {name: _text(value, 9) for name, value in values.items()}
    texts[field] = str(units)
    outcome = _run(BY_NAME[venue], texts)
    assert outcome.reasons == []
    assert outcome.sizes_dropped == 1
    assert _wire(outcome.updates[-1]) == {**values, field: 0}


def test_the_largest_values_the_wire_carries_are_exact() -> None:
    # a price of 1e10 and a size of 1e15 with nine decimals: the required range
    texts = {
        "bid": "9999999999.999999998", "ask": "9999999999.999999999", "last": "0.000000001",
        "bid_size": "999999999999999.999999999", "ask_size": "0.000000001",
        "last_size": "123456789012345.123456789",
    }  # fmt: skip
    expected = {
        "bid": 9_999_999_999_999_999_998, "ask": 9_999_999_999_999_999_999, "last": 1,
        "bid_size": 999_999_999_999_999_999_999_999, "ask_size": 1,
        "last_size": 123_456_789_012_345_123_456_789,
    }  # fmt: skip
    for venue in VENUES:
        outcome = _run(venue, texts)
        assert (outcome.reasons, outcome.sizes_dropped) == ([], 0), venue.name
        assert _wire(outcome.updates[-1]) == expected, venue.name

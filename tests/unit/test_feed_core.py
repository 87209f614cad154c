"""The venue-agnostic core the feed handlers share: exact decimals, venue times, the L2
book and the normalization rules."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcore.fixed_point import NANOS_LIMIT, NotRepresentableError, parse_nanos
from marketcore.normalization import FeedSequencer, InstrumentState, Rejection, RejectReason
from marketcore.order_book import BOOK_DECIMALS, OrderBook, TopOfBook, book_to_nanos
from marketcore.scaled_decimal import (
    NotADecimalError,
    TooPreciseError,
    parse_nanos_fast,
    parse_scaled,
    rescale,
)
from marketcore.ticks import Tick
from marketcore.venue_time import decimal_seconds_ns, iso8601_utc_ns, millis_ns

# --- scaled decimals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimals", "value"),
    [
        ("0.35210000", 6, 352_100),
        ("14.7550", 6, 14_755_000),
        ("0.00001305", 8, 1305),
        ("0.00001305", 12, 13_050_000),
        ("1.", 2, 100),
        (".5", 1, 5),
        ("-1.5", 1, -15),
        ("1.5e3", 0, 1500),
        ("1000e-3", 0, 1),
        ("1" + "0" * 70 + "e-70", 0, 1),
        ("0.000", 2, 0),
        ("1534614057.321597", 9, 1_534_614_057_321_597_000),
    ],
)
def test_parse_scaled_reads_venue_text_exactly(text: str, decimals: int, value: int) -> None:
    assert parse_scaled(text, decimals) == value


@pytest.mark.parametrize("text", ["0.0000001", "1.23456789", "1e-7"])
def test_parse_scaled_refuses_digits_finer_than_the_scale(text: str) -> None:
    with pytest.raises(TooPreciseError):
        parse_scaled(text, 6)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "١٢", "1_000", "0x10", "1e", "nan", "--1"])
def test_parse_scaled_refuses_what_is_not_an_ascii_decimal(text: str) -> None:
    with pytest.raises(NotADecimalError):
        parse_scaled(text, 6)


@pytest.mark.parametrize("text", ["1e999999", "9" * 80, "9223372036854.775808"])
def test_parse_scaled_refuses_out_of_range_quickly(text: str) -> None:
    with pytest.raises(NotRepresentableError):
        parse_scaled(text, 6)


@given(
    st.one_of(
        [st.decimals(allow_nan=False, allow_infinity=False, places=p) for p in (8, 9, 10, 12)]
    )
)
def test_parse_nanos_fast_agrees_with_parse_nanos(value: Decimal) -> None:
    text = format(value, "f")
    try:
        expected: int | None = parse_nanos(text)
    except NotRepresentableError:
        expected = None
    try:
        got: int | None = parse_nanos_fast(text)
    except NotRepresentableError:
        got = None
    assert got == expected


@given(
    st.integers(-NANOS_LIMIT, NANOS_LIMIT),
    st.integers(0, 6),
    st.sampled_from(["plain", "exponent", "plus"]),
)
def test_parse_nanos_round_trips_every_exact_decimal_of_the_wire_range(
    value_nanos: int, extra_zeros: int, spelling: str
) -> None:
    exact = Decimal(value_nanos).scaleb(-9)  # nine places: "-12.345678900"
    text = format(exact, "f") + ("0" * extra_zeros if value_nanos % 10**9 else "")
    if spelling == "exponent":
        text = f"{value_nanos}e-9"
    elif spelling == "plus" and value_nanos >= 0:
        text = "+" + text
    assert parse_nanos(text) == value_nanos
    if value_nanos >= 0 and spelling != "plus":
        assert parse_nanos_fast(text) == value_nanos


@given(st.integers(0, 10**15 * 10**9), st.integers(1, 12), st.integers(1, 9))
def test_a_non_zero_digit_beyond_the_ninth_decimal_is_refused_as_too_precise(
    value_nanos: int, extra_places: int, last_digit: int
) -> None:
    text = format(Decimal(value_nanos).scaleb(-9), "f")
    if "." not in text:
        text += ".000000000"
    text += "0" * (extra_places - 1) + str(last_digit)
    with pytest.raises(TooPreciseError):
        parse_nanos(text)
    with pytest.raises(TooPreciseError):
        parse_nanos_fast(text)


@given(st.integers(NANOS_LIMIT + 1, 10**40), st.booleans())
def test_values_beyond_the_wire_range_are_refused_not_wrapped(
    value_nanos: int, negative: bool
) -> None:
    text = ("-" if negative else "") + format(Decimal(value_nanos).scaleb(-9), "f")
    with pytest.raises(NotRepresentableError) as refused:
        parse_nanos(text)
    assert not isinstance(refused.value, (TooPreciseError, NotADecimalError))
    assert "range" in str(refused.value)


def test_the_wire_range_edges() -> None:
    assert parse_nanos("9223372036854775807.999999999") == NANOS_LIMIT
    assert parse_nanos("-9223372036854775807.999999999") == -NANOS_LIMIT
    with pytest.raises(NotRepresentableError, match="range"):
        parse_nanos("9223372036854775808")
    assert parse_nanos("0.000000001") == 1
    assert parse_nanos("0.000000001000") == 1
    with pytest.raises(TooPreciseError):
        parse_nanos("0.0000000001")


@given(st.integers(min_value=0, max_value=10**20), st.integers(0, 12), st.integers(0, 12))
def test_rescale_is_exact_or_refuses(value: int, source: int, target: int) -> None:
    try:
        result = rescale(value, source, target)
    except TooPreciseError:
        assert target < source
        assert value % 10 ** (source - target)
    else:
        assert Decimal(result).scaleb(-target) == Decimal(value).scaleb(-source)


# --- venue times --------------------------------------------------------------------------


def test_iso8601_keeps_nanoseconds_and_nanoseconds() -> None:
    assert iso8601_utc_ns("2021-04-17T16:43:30.244075Z") == 1_618_677_810_244_075_000
    assert iso8601_utc_ns("2021-04-17T16:43:30.123456789Z") == 1_618_677_810_123_456_789
    assert iso8601_utc_ns("1970-01-01T00:00:00+00:00") == 0


@pytest.mark.parametrize(
    "text",
    [
        "2021-04-17T16:43:30.244075",  # no zone
        "2021-04-17T16:43:30+01:00",  # not UTC
        "2021-02-29T00:00:00Z",  # no such day
        "2021-13-01T00:00:00Z",
        "2021-04-17T24:00:00Z",
        "2021-04-17T16:43:30.1234567890Z",
        "2021-04-17T16:43:3x.1Z",
        "\uff12\uff10\uff12\uff11-04-17T16:43:30Z",  # full-width digits
    ],
)
def test_iso8601_refuses_malformed_or_non_utc_times(text: str) -> None:
    with pytest.raises(ValueError, match=r"time|date|fraction"):
        iso8601_utc_ns(text)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),  # noqa: DTZ001  # naive bounds, as hypothesis wants
        max_value=datetime(9999, 12, 31),  # noqa: DTZ001
    )
)
def test_iso8601_agrees_with_datetime(moment: datetime) -> None:
    moment = moment.replace(tzinfo=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    assert iso8601_utc_ns(text) == expected


def test_decimal_seconds_and_millis() -> None:
    assert decimal_seconds_ns("1618678132.9496498") == 1_618_678_132_949_649_800
    assert millis_ns(1_633_998_523_963) == 1_633_998_523_963_000_000
    with pytest.raises(ValueError, match="milliseconds"):
        millis_ns(1.5)
    with pytest.raises(ValueError, match="milliseconds"):
        millis_ns(True)
    with pytest.raises(ValueError, match="1970"):
        decimal_seconds_ns("-1.0")


# --- order book ---------------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 50), st.integers(0, 5)),
        max_size=200,
    )
)
def test_book_top_matches_a_naive_model(changes: list[tuple[bool, int, int]]) -> None:
    book = OrderBook()
    model: dict[bool, dict[int, int]] = {True: {}, False: {}}
    for is_bid, price, size in changes:
        (book.bids if is_bid else book.asks).set(price, size)
        if size:
            model[is_bid][price] = size
        else:
            model[is_bid].pop(price, None)
    bids, asks = model[True], model[False]
    best_bid = max(bids) if bids else 0
    best_ask = min(asks) if asks else 0
    assert book.top() == TopOfBook(best_bid, bids.get(best_bid, 0), best_ask, asks.get(best_ask, 0))
    assert (book.bids.best_price(), book.asks.best_price()) == (best_bid, best_ask)
    assert book.bids.top(3) == [(p, bids[p]) for p in sorted(bids, reverse=True)[:3]]
    assert book.asks.top(3) == [(p, asks[p]) for p in sorted(asks)[:3]]


def test_truncate_keeps_the_best_levels_and_reports_the_rest() -> None:
    book = OrderBook()
    for price in range(1, 8):
        book.bids.set(price, 1)
        book.asks.set(price + 10, 1)
    assert book.bids.truncate(3) == [1, 2, 3, 4]
    assert book.asks.truncate(3) == [14, 15, 16, 17]
    assert book.bids.top(10) == [(7, 1), (6, 1), (5, 1)]
    assert book.asks.top(10) == [(11, 1), (12, 1), (13, 1)]
    assert book.bids.truncate(3) == []


def test_book_values_convert_to_nanos_only_when_exact() -> None:
    assert book_to_nanos(parse_scaled("14.7550", BOOK_DECIMALS)) == 14_755_000_000
    assert book_to_nanos(parse_scaled("0.00001305", BOOK_DECIMALS)) == 13_050  # Coinbase SKL-BTC
    assert book_to_nanos(parse_scaled("0.000000001", BOOK_DECIMALS)) == 1
    assert book_to_nanos(parse_scaled("0.0000000001", BOOK_DECIMALS)) is None  # ten decimals


def test_a_locked_book_is_crossed() -> None:
    assert TopOfBook(5, 1, 5, 1).crossed
    assert not TopOfBook(5, 1, 0, 0).crossed


# --- normalization rules ------------------------------------------------------------------


def _state() -> InstrumentState:
    return InstrumentState("KRAKEN", "BTC-USD", "XBT/USD")


def test_state_tick_carries_every_latest_field() -> None:
    state = _state()
    assert state.set_quote("100.5", "2", "101", "") == 0
    assert state.set_last("100.75", "0.5") == 0
    assert state.set_volume("1234.5") == 0
    tick = state.tick(7, 9)
    assert tick == Tick(
        "KRAKEN",
        "BTC-USD",
        bid_nanos=100_500_000_000,
        ask_nanos=101_000_000_000,
        last_nanos=100_750_000_000,
        volume_nanos=1_234_500_000_000,
        bid_size_nanos=2_000_000_000,
        last_size_nanos=500_000_000,
        event_time_ns=7,
        received_time_ns=9,
        venue_symbol="XBT/USD",
    )


def test_sizes_finer_than_a_micro_are_exact() -> None:
    state = _state()
    # Kraken's WAVES/EUR ticker in tests/data/kraken: lot volumes and the day volume at 8 places
    assert state.set_quote("13.232900", "185.18432037", "13.253900", "35.72892241") == 0
    assert state.set_last("13.253900", "3.71672000") == 0
    assert state.set_volume("26560.85364463") == 0
    tick = state.tick(1, 1)
    assert isinstance(tick, Tick)
    assert (tick.bid_size_nanos, tick.ask_size_nanos) == (185_184_320_370, 35_728_922_410)
    assert (tick.last_size_nanos, tick.volume_nanos) == (3_716_720_000, 26_560_853_644_630)


def test_sizes_beyond_nine_decimals_or_the_range_become_unknown_and_are_counted() -> None:
    state = _state()
    assert state.set_quote("1", "0.1234567891", "2", "0.000000001") == 1  # ten places; one nano
    assert state.set_volume("9" * 20) == 1  # 1e20 units: beyond the wire's int64 units
    assert state.set_last("1.5", "0.00000000050") == 1
    tick = state.tick(1, 1)
    assert isinstance(tick, Tick)
    assert (tick.bid_size_nanos, tick.ask_size_nanos, tick.volume_nanos) == (0, 1, 0)
    assert (tick.last_nanos, tick.last_size_nanos) == (1_500_000_000, 0)


def test_a_price_finer_than_a_micro_is_exact() -> None:
    state = _state()
    state.set_quote("0.00001302", "1", "0.00001305", "1")  # Coinbase SKL-BTC
    state.set_last("0.000022930", "2436.46720454")  # Kraken ADA/XBT
    tick = state.tick(1, 1)
    assert isinstance(tick, Tick)
    assert (tick.bid_nanos, tick.ask_nanos, tick.last_nanos) == (13_020, 13_050, 22_930)
    assert tick.last_size_nanos == 2_436_467_204_540


@pytest.mark.parametrize("price", ["0.0000130512", "0.00000000001", "9223372036854775808"])
def test_a_price_beyond_nine_decimals_or_the_range_refuses_ticks_until_a_good_one_arrives(
    price: str,
) -> None:
    state = _state()
    state.set_quote("1", "1", "2", "1")
    state.set_quote(price, "1", price + "1", "1")
    state.set_last("1.5", "1")  # a trade must not go out beside the stale quote
    rejected = state.tick(1, 1)
    assert isinstance(rejected, Rejection)
    assert rejected.reason is RejectReason.PRICE_NOT_REPRESENTABLE
    state.set_quote("1.1", "1", "1.2", "1")
    assert isinstance(state.tick(2, 2), Tick)


def test_a_last_price_beyond_nine_decimals_refuses_until_a_good_one_arrives() -> None:
    state = _state()
    state.set_quote("1", "1", "2", "1")
    state.set_last("1.0000000001", "1")
    rejected = state.tick(1, 1)
    assert isinstance(rejected, Rejection)
    assert rejected.reason is RejectReason.PRICE_NOT_REPRESENTABLE
    state.set_last("1.000000001", "1")
    tick = state.tick(2, 2)
    assert isinstance(tick, Tick)
    assert tick.last_nanos == 1_000_000_001


@pytest.mark.parametrize(
    ("bid", "ask", "last", "reason"),
    [
        ("2", "1", "", RejectReason.CROSSED_QUOTE),
        ("1", "1", "", RejectReason.CROSSED_QUOTE),
        ("-1", "1", "", RejectReason.NEGATIVE_PRICE),
        ("0", "0", "", RejectReason.NO_PRICE),
    ],
)
def test_crossed_negative_or_empty_quotes_are_refused_with_a_reason(
    bid: str, ask: str, last: str, reason: RejectReason
) -> None:
    state = _state()
    state.set_quote(bid, "", ask, "")
    outcome = state.tick(1, 1)
    assert isinstance(outcome, Rejection)
    assert outcome.reason is reason


def test_a_zero_side_is_an_empty_side_not_an_error() -> None:
    state = _state()
    state.set_quote("0", "", "101", "1")
    tick = state.tick(1, 1)
    assert isinstance(tick, Tick)
    assert (tick.bid_nanos, tick.ask_nanos) == (0, 101_000_000_000)


def test_malformed_venue_text_raises_for_the_parser_to_report() -> None:
    with pytest.raises(NotADecimalError):
        _state().set_quote("abc", "", "1", "")


def test_feed_sequence_counts_per_exchange_and_symbol_from_one() -> None:
    sequencer = FeedSequencer()
    assert [sequencer.next("A", "X") for _ in range(3)] == [1, 2, 3]
    assert sequencer.next("A", "Y") == 1
    assert sequencer.next("B", "X") == 1
    assert sequencer.last("A", "X") == 3

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcore.fixed_point import (
    NANOS_LIMIT,
    NANOS_PER_UNIT,
    NotRepresentableError,
    decimal_to_nanos,
    format_nanos,
    in_range,
    parse_nanos,
    scaled_to_nanos,
)
from marketcore.scaled_decimal import INT64_MAX, TooPreciseError, parse_nanos_fast

# The largest magnitude carried: int64 whole units and nine decimals.
LIMIT_TEXT = "9223372036854775807.999999999"


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("152.37", 152_370_000_000),
        ("0.000001", 1_000),
        ("0.000000001", 1),
        ("0.000022880", 22_880),  # Kraken ADA/XBT
        ("0.00001305", 13_050),  # Coinbase SKL-BTC
        ("-1.5", -1_500_000_000),
        ("+2", 2_000_000_000),
        ("14.7550", 14_755_000_000),
        ("1e-9", 1),
        ("1.5E3", 1_500_000_000_000),
        (".5", 500_000_000),
        ("7.", 7_000_000_000),
        ("0.100000000000", 100_000_000),  # zeros beyond nine places are not precision
        ("  3.25 ", 3_250_000_000),
        ("9999999999.999999999", 9_999_999_999_999_999_999),  # prices up to 1e10
        ("999999999999999.999999999", 999_999_999_999_999_999_999_999),  # sizes up to 1e15
        (LIMIT_TEXT, NANOS_LIMIT),
    ],
)
def test_parse_nanos_reads_decimal_text_exactly(text: str, nanos: int) -> None:
    assert parse_nanos(text) == nanos


@pytest.mark.parametrize("text", ["0.0000000001", "1.2345678901", "1e-10", "-0.0000000005"])
def test_parse_nanos_refuses_more_than_nine_decimals(text: str) -> None:
    with pytest.raises(TooPreciseError, match="more than 9 decimals"):
        parse_nanos(text)


@pytest.mark.parametrize("text", ["", ".", "abc", "1.2.3", "NaN", "inf", "1e", "--1", "0x10"])
def test_parse_nanos_refuses_malformed_text(text: str) -> None:
    with pytest.raises(NotRepresentableError):
        parse_nanos(text)


def test_parse_nanos_refuses_values_beyond_the_decimal_range() -> None:
    assert NANOS_LIMIT == INT64_MAX * NANOS_PER_UNIT + NANOS_PER_UNIT - 1
    with pytest.raises(NotRepresentableError, match="out of range"):
        parse_nanos("9223372036854775808")
    with pytest.raises(NotRepresentableError, match="out of range"):
        parse_nanos("-9223372036854775808")
    assert parse_nanos("-" + LIMIT_TEXT) == -NANOS_LIMIT
    with pytest.raises(NotRepresentableError, match="out of range"):
        parse_nanos("1e999999")


def test_parse_nanos_accepts_bytes() -> None:
    assert parse_nanos(b"189.50") == 189_500_000_000


def test_in_range_is_the_decimal_range() -> None:
    assert [in_range(n) for n in (NANOS_LIMIT, -NANOS_LIMIT, 0)] == [True] * 3
    assert [in_range(n) for n in (NANOS_LIMIT + 1, -NANOS_LIMIT - 1)] == [False] * 2


@given(st.integers(min_value=-NANOS_LIMIT, max_value=NANOS_LIMIT))
def test_format_then_parse_round_trips(nanos: int) -> None:
    assert parse_nanos(format_nanos(nanos)) == nanos
    assert parse_nanos(format_nanos(nanos, min_decimals=0)) == nanos


@given(st.integers(min_value=0, max_value=NANOS_LIMIT))
def test_the_fast_path_agrees_with_the_general_parser(nanos: int) -> None:
    text = format_nanos(nanos, min_decimals=9)
    assert parse_nanos_fast(text) == nanos
    assert parse_nanos_fast(text + "000") == nanos  # trailing zeros past nine places


@given(st.decimals(min_value=-(10**15), max_value=10**15, places=9, allow_nan=False))
def test_parse_nanos_agrees_with_decimal_arithmetic(value: Decimal) -> None:
    with localcontext() as context:
        context.prec = 60
        expected = int(value * NANOS_PER_UNIT)
    assert parse_nanos(str(value)) == expected
    assert decimal_to_nanos(value) == expected


def test_format_nanos_renders_without_float() -> None:
    assert format_nanos(152_370_000_000) == "152.37"
    assert format_nanos(1) == "0.000000001"
    assert format_nanos(22_880) == "0.00002288"  # 0.000022880: the venue's digits, no zero
    assert format_nanos(-1_500_000_000) == "-1.50"
    assert format_nanos(5_000_000_000, min_decimals=0) == "5"
    assert format_nanos(NANOS_LIMIT) == LIMIT_TEXT


def test_scaled_to_nanos_converts_itch_prices() -> None:
    assert scaled_to_nanos(1_897_500, 4) == 189_750_000_000  # Price(4) 189.7500
    assert scaled_to_nanos(12_345_678_900, 8) == 123_456_789_000  # Price(8) 123.45678900
    assert scaled_to_nanos(1_234_567_890, 10) == 123_456_789  # a zero is not precision...
    with pytest.raises(NotRepresentableError):
        scaled_to_nanos(1_234_567_891, 12)  # ...but digits past nine places are

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcore.fixed_point import (
    INT64_MAX,
    INT64_MIN,
    NotRepresentableError,
    decimal_to_micros,
    format_micros,
    parse_micros,
    scaled_to_micros,
)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("152.37", 152_370_000),
        ("0.000001", 1),
        ("-1.5", -1_500_000),
        ("+2", 2_000_000),
        ("14.7550", 14_755_000),
        ("1e-6", 1),
        ("1.5E3", 1_500_000_000),
        (".5", 500_000),
        ("7.", 7_000_000),
        ("0.10000000", 100_000),
        ("  3.25 ", 3_250_000),
    ],
)
def test_parse_micros_reads_decimal_text_exactly(text: str, micros: int) -> None:
    assert parse_micros(text) == micros


@pytest.mark.parametrize("text", ["0.0000001", "1.23456789", "1e-7"])
def test_parse_micros_refuses_precision_finer_than_a_micro(text: str) -> None:
    with pytest.raises(NotRepresentableError, match="finer than a micro"):
        parse_micros(text)


@pytest.mark.parametrize("text", ["", ".", "abc", "1.2.3", "NaN", "inf", "1e", "--1", "0x10"])
def test_parse_micros_refuses_malformed_text(text: str) -> None:
    with pytest.raises(NotRepresentableError):
        parse_micros(text)


def test_parse_micros_refuses_values_outside_int64() -> None:
    with pytest.raises(NotRepresentableError, match="out of range"):
        parse_micros("9223372036854.775808")
    assert parse_micros("9223372036854.775807") == INT64_MAX
    assert parse_micros("-9223372036854.775808") == INT64_MIN
    with pytest.raises(NotRepresentableError, match="out of range"):
        parse_micros("-9223372036854.775809")


def test_parse_micros_accepts_bytes() -> None:
    assert parse_micros(b"189.50") == 189_500_000


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_then_parse_round_trips(micros: int) -> None:
    assert parse_micros(format_micros(micros)) == micros


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False))
def test_parse_micros_agrees_with_decimal_arithmetic(value: Decimal) -> None:
    assert parse_micros(str(value)) == int(value * 1_000_000)
    assert decimal_to_micros(value) == int(value * 1_000_000)


def test_format_micros_renders_without_float() -> None:
    assert format_micros(152_370_000) == "152.37"
    assert format_micros(1) == "0.000001"
    assert format_micros(-1_500_000) == "-1.50"
    assert format_micros(5_000_000, min_decimals=0) == "5"


def test_scaled_to_micros_converts_itch_prices() -> None:
    assert scaled_to_micros(1_897_500, 4) == 189_750_000  # Price(4) 189.7500
    assert scaled_to_micros(12_345_678_900, 8) == 123_456_789  # Price(8) 123.456789
    with pytest.raises(NotRepresentableError):
        scaled_to_micros(123_456_789, 8)

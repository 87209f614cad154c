"""``CqlDecimal``'s fast serializer against cassandra-driver's own ``DecimalType`` code.

The driver's serializer is the specification here: a ``decimal`` cell is the scale as a
4-byte int, then the unscaled value as a minimal big-endian two's complement varint. The
values cover the whole wire range (``NANOS_LIMIT``: int64 units and nine decimals), both
signs, and every point where the varint grows a byte (127/128, -128/-129, ...).
"""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest
from cassandra.cqltypes import DecimalType
from hypothesis import example, given
from hypothesis import strategies as st

from marketcore.fixed_point import NANOS_LIMIT, NotRepresentableError
from marketinfra import cql_decimal
from marketinfra.cql_decimal import CqlDecimal, from_cql

PROTOCOL = 5
_DRIVER_SERIALIZE = inspect.unwrap(DecimalType.serialize)


def _driver_bytes(nanos: int) -> bytes:
    """What cassandra-driver writes for the same exact value at scale 9."""
    value = Decimal(nanos).scaleb(-9)
    assert value.as_tuple().exponent == -9
    serialized: bytes = _DRIVER_SERIALIZE(value, PROTOCOL)
    return serialized


def _sign_boundaries() -> list[int]:
    """Values where the two's complement length changes: +-(2**(8k-1)) and one either side."""
    values = {0, 1, -1, NANOS_LIMIT, -NANOS_LIMIT, 999_999_999, -999_999_999, 10**9, -(10**9)}
    for bits in range(7, NANOS_LIMIT.bit_length() + 1, 8):
        edge = 2**bits
        values |= {edge - 1, edge, edge + 1, -edge - 1, -edge, -edge + 1}
    return sorted(v for v in values if -NANOS_LIMIT <= v <= NANOS_LIMIT)


_NANOS = st.one_of(
    st.integers(-NANOS_LIMIT, NANOS_LIMIT),
    st.integers(-(10**18), 10**18),
    st.sampled_from(_sign_boundaries()),
)


@given(_NANOS)
@example(0)
@example(22_880)  # 0.000022880
@example(NANOS_LIMIT)  # 9223372036854775807.999999999
@example(-NANOS_LIMIT)
@example(-1)
@example(-128)
@example(-129)
@example(127)
@example(128)
def test_fast_bytes_are_the_drivers_and_read_back_exactly(nanos: int) -> None:
    fast = cql_decimal.serialize(CqlDecimal(nanos))
    assert fast == _driver_bytes(nanos)
    read = DecimalType.deserialize(fast, PROTOCOL)
    assert read == Decimal(nanos).scaleb(-9)
    assert from_cql(read) == nanos


@pytest.mark.parametrize(
    ("text", "hex_bytes"),
    [
        # scale 9 (00000009), then the unscaled value: the CQL spec's varint
        ("0.000000000", "0000000900"),
        ("0.000022880", "000000095960"),  # 22880 = 0x5960
        ("-0.000000001", "00000009ff"),
        ("0.000000128", "000000090080"),  # 128 needs a leading 00 to stay positive
        ("-0.000000129", "00000009ff7f"),
    ],
)
def test_bytes_follow_the_cql_decimal_encoding(text: str, hex_bytes: str) -> None:
    nanos = int(Decimal(text).scaleb(9))
    assert cql_decimal.serialize(CqlDecimal(nanos)).hex() == hex_bytes


def test_an_unset_cell_is_zero_and_more_than_nine_decimals_is_refused() -> None:
    assert from_cql(None) == 0
    assert from_cql(Decimal("152.37")) == 152_370_000_000
    with pytest.raises(NotRepresentableError):
        from_cql(Decimal("0.0000000001"))


def test_install_is_idempotent_and_leaves_plain_decimals_to_the_driver() -> None:
    cql_decimal.install()
    patched = DecimalType.serialize
    cql_decimal.install()
    assert DecimalType.serialize is patched, "a second install changes nothing"
    driver = inspect.unwrap(patched)
    assert driver is _DRIVER_SERIALIZE
    assert not getattr(driver, "fast_path", False), "patched once, not wrapped twice"
    assert driver.__qualname__ == "DecimalType.serialize"
    for plain in (Decimal("1.5"), Decimal("-0.000000001"), Decimal(10) ** 30, Decimal("1E+3")):
        assert patched(plain, PROTOCOL) == driver(plain, PROTOCOL)
    assert patched(CqlDecimal(1_500_000_000), PROTOCOL) == driver(Decimal("1.500000000"), PROTOCOL)
    assert DecimalType.to_binary(CqlDecimal(22_880), PROTOCOL) == _driver_bytes(22_880)

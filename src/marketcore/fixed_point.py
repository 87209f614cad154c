"""Exact prices and sizes: integers in nano-units (1e-9 of the unit), never floats.

Every price, size, quantity, volume and notional in the domain is a Python ``int`` counting
``10**-9`` of its unit (``*_nanos``): $152.37 is 152_370_000_000 and 0.000022880 BTC is
22_880. Python integers do not overflow, so products (notionals, position costs) are exact;
the range is checked where a value leaves for the wire (``NANOS_LIMIT``: the
``financial.marketdata.v2.Decimal`` range, +-9.2e18 units).

Venue text is parsed exactly (integer arithmetic on the digits); a value with more precision
than nine decimals, or beyond the range, is refused rather than rounded, because a silently
rounded price is a wrong price.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from marketcore.scaled_decimal import (
    INT64_MAX,
    INT64_MIN,
    NANOS_DECIMALS,
    NANOS_LIMIT,
    NotADecimalError,
    NotRepresentableError,
    TooPreciseError,
    parse_nanos_fast,
    parse_scaled,
    rescale,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "NANOS_DECIMALS",
    "NANOS_LIMIT",
    "NANOS_PER_UNIT",
    "NotADecimalError",
    "NotRepresentableError",
    "TooPreciseError",
    "decimal_to_nanos",
    "format_nanos",
    "in_range",
    "parse_nanos",
    "scaled_to_nanos",
]

NANOS_PER_UNIT: int = 10**NANOS_DECIMALS


def parse_nanos(text: str | bytes) -> int:
    """Parse decimal text such as ``"152.37"`` or ``"1.5e-3"`` into nanos, exactly.

    Raises NotRepresentableError for malformed text (NotADecimalError), for non-zero digits
    finer than 1e-9 (TooPreciseError) and for values beyond ``NANOS_LIMIT``.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if raw[:1] != "-":
        return parse_nanos_fast(raw)
    return parse_scaled(raw, NANOS_DECIMALS, limit=NANOS_LIMIT)


def decimal_to_nanos(value: Decimal) -> int:
    """Exact conversion of a Decimal (as venue JSON may give) into nanos."""
    try:
        return parse_nanos(format(value, "f"))
    except (InvalidOperation, ValueError) as exc:
        raise NotRepresentableError(f"not representable in nanos: {value!r}") from exc


def scaled_to_nanos(value: int, decimals: int) -> int:
    """Convert an integer with ``decimals`` implied decimal places (ITCH Price(4), Price(8))."""
    return rescale(value, decimals, NANOS_DECIMALS)


def in_range(nanos: int) -> bool:
    """Whether ``nanos`` can be carried on the wire (``Decimal``: int64 units)."""
    return -NANOS_LIMIT <= nanos <= NANOS_LIMIT


def format_nanos(nanos: int, *, min_decimals: int = 2) -> str:
    """Render nanos as exact decimal text, trailing zeros dropped down to ``min_decimals``,
    without going through float: 152_370_000_000 -> "152.37", 22_880 -> "0.00002288"."""
    sign = "-" if nanos < 0 else ""
    whole, fraction = divmod(abs(nanos), NANOS_PER_UNIT)
    fraction_text = f"{fraction:09d}".rstrip("0")
    if len(fraction_text) < min_decimals:
        fraction_text = fraction_text.ljust(min_decimals, "0")
    return f"{sign}{whole}.{fraction_text}" if fraction_text else f"{sign}{whole}"

"""Fixed-point prices and sizes: integers in micro-units (1e-6), never floats.

Venue text is parsed exactly (integer arithmetic on the digits); a value with
more precision than a micro is refused rather than rounded, because a silently
rounded price is a wrong price.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from marketcore.scaled_decimal import (
    INT64_MAX,
    INT64_MIN,
    MICROS_DECIMALS,
    NotRepresentableError,
    parse_micros_fast,
    parse_scaled,
    rescale,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MICROS_DECIMALS",
    "MICROS_PER_UNIT",
    "NotRepresentableError",
    "decimal_to_micros",
    "format_micros",
    "parse_micros",
    "scaled_to_micros",
]

MICROS_PER_UNIT = 10**MICROS_DECIMALS


def parse_micros(text: str | bytes) -> int:
    """Parse decimal text such as ``"152.37"`` or ``"1.5e-3"`` into micros, exactly.

    Raises NotRepresentableError for malformed text, for digits finer than a
    micro that are not zero, and for values outside int64.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if raw[:1] != "-":
        return parse_micros_fast(raw)
    # int64 reaches one further below zero than above it
    return parse_scaled(raw, MICROS_DECIMALS, limit=-INT64_MIN)


def decimal_to_micros(value: Decimal) -> int:
    """Exact conversion of a Decimal (as venue JSON may give) into micros."""
    try:
        return parse_micros(format(value, "f"))
    except (InvalidOperation, ValueError) as exc:
        raise NotRepresentableError(f"not representable in micros: {value!r}") from exc


def scaled_to_micros(value: int, decimals: int) -> int:
    """Convert an integer with ``decimals`` implied decimal places (ITCH Price(4), Price(8))."""
    return rescale(value, decimals, MICROS_DECIMALS)


def format_micros(micros: int, *, min_decimals: int = 2) -> str:
    """Render micros as decimal text without going through float: 152370000 -> "152.37"."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    fraction_text = f"{fraction:06d}".rstrip("0")
    if len(fraction_text) < min_decimals:
        fraction_text = fraction_text.ljust(min_decimals, "0")
    return f"{sign}{whole}.{fraction_text}" if fraction_text else f"{sign}{whole}"

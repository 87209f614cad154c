"""Fixed-point prices and sizes: integers in micro-units (1e-6), never floats.

Venue text is parsed exactly (integer arithmetic on the digits); a value with
more precision than a micro is refused rather than rounded, because a silently
rounded price is a wrong price.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MICROS_DECIMALS = 6
MICROS_PER_UNIT = 10**MICROS_DECIMALS
# int64 bounds of the wire format (protobuf int64)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

_DECIMAL_TEXT = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


class NotRepresentableError(ValueError):
    """A value cannot be expressed exactly as an int64 count of micros."""


def parse_micros(text: str | bytes) -> int:
    """Parse decimal text such as ``"152.37"`` or ``"1.5e-3"`` into micros, exactly.

    Raises NotRepresentableError for malformed text, for digits finer than a
    micro that are not zero, and for values outside int64.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    match = _DECIMAL_TEXT.match(raw.strip())
    if match is None or not (match.group(2) or match.group(3)):
        raise NotRepresentableError(f"not a decimal number: {raw!r}")
    sign, whole, fraction, exponent_text = match.groups()
    digits = (whole or "") + (fraction or "")
    # value = int(digits) * 10**(exponent - len(fraction)); we want value * 10**6
    shift = MICROS_DECIMALS + int(exponent_text or 0) - len(fraction or "")
    mantissa = int(digits) if digits else 0
    if shift >= 0:
        if shift > 40:  # any non-zero mantissa would overflow int64 anyway
            if mantissa == 0:
                return 0
            raise NotRepresentableError(f"out of range: {raw!r}")
        scale: int = 10**shift  # non-negative exponent: an int, whatever mypy infers
        micros = mantissa * scale
    else:
        divisor: int = 10**-shift
        micros, remainder = divmod(mantissa, divisor)
        if remainder:
            raise NotRepresentableError(f"finer than a micro: {raw!r}")
    if sign == "-":
        micros = -micros
    if not INT64_MIN <= micros <= INT64_MAX:
        raise NotRepresentableError(f"out of range: {raw!r}")
    return micros


def decimal_to_micros(value: Decimal) -> int:
    """Exact conversion of a Decimal (as venue JSON may give) into micros."""
    try:
        return parse_micros(format(value, "f"))
    except (InvalidOperation, ValueError) as exc:
        raise NotRepresentableError(f"not representable in micros: {value!r}") from exc


def scaled_to_micros(value: int, decimals: int) -> int:
    """Convert an integer with ``decimals`` implied decimal places (ITCH Price(4), Price(8))."""
    if decimals <= MICROS_DECIMALS:
        scale: int = 10 ** (MICROS_DECIMALS - decimals)
        return value * scale
    divisor: int = 10 ** (decimals - MICROS_DECIMALS)
    micros, remainder = divmod(value, divisor)
    if remainder:
        raise NotRepresentableError(f"{value}e-{decimals} is finer than a micro")
    return micros


def format_micros(micros: int, *, min_decimals: int = 2) -> str:
    """Render micros as decimal text without going through float: 152370000 -> "152.37"."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    fraction_text = f"{fraction:06d}".rstrip("0")
    if len(fraction_text) < min_decimals:
        fraction_text = fraction_text.ljust(min_decimals, "0")
    return f"{sign}{whole}.{fraction_text}" if fraction_text else f"{sign}{whole}"

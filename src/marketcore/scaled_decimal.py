"""Exact decimal text -> an integer count of ``10**-decimals`` units, fast: the one parser
of venue numbers. ``fixed_point.parse_nanos`` is it at the nano scale (1e-9, every price and
size); order books keep venue prices at a finer scale, and venue timestamps such as
``"1534614057.321597"`` are read at the nanosecond scale. Nothing is rounded: a non-zero
digit beyond the scale raises ``NotRepresentableError``.

The plain spelling venues send (``"0.35210000"``) takes a fast path of string slicing and
one ``int()``; anything else (sign, exponent, surrounding blanks) goes through the general
path. Only ASCII digits count as digits.
"""

from __future__ import annotations

import re

NANOS_DECIMALS = 9
# int64 bounds of the wire format (protobuf int64)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
# The largest magnitude a ``financial.marketdata.v2.Decimal`` carries: int64 units and nine
# decimals (units + nanos / 1e9, nanos of the units' sign).
NANOS_LIMIT: int = INT64_MAX * 10**NANOS_DECIMALS + (10**NANOS_DECIMALS - 1)

_GENERAL = re.compile(r"^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,6}))?$")
# Beyond this many digits any value would overflow the limits used here (``NANOS_LIMIT``, or
# book keys below ``BOOK_LIMIT``); refusing early keeps "1e999999" from building a huge int.
_MAX_DIGITS = 60
_POW10: tuple[int, ...] = tuple(10**n for n in range(_MAX_DIGITS + 1))


class NotRepresentableError(ValueError):
    """A value cannot be expressed exactly at the scale asked for (or within its limit)."""


class NotADecimalError(NotRepresentableError):
    """The text is not a decimal number at all (as opposed to one that does not fit)."""


class TooPreciseError(NotRepresentableError):
    """Well-formed decimal text with a non-zero digit finer than the scale."""


def _finer_than(decimals: int, text: object) -> TooPreciseError:
    return TooPreciseError(f"more than {decimals} decimals: {text!r}")


def parse_scaled(text: str, decimals: int, limit: int = INT64_MAX) -> int:
    """``text`` as an integer number of ``10**-decimals``; ``abs(result) <= limit``.

    Raises NotRepresentableError for malformed text (NotADecimalError), for non-zero
    digits finer than the scale (TooPreciseError), and for values beyond ``limit``.
    """
    dot = text.find(".")
    if dot < 0:
        digits = text
        places = 0
    else:
        digits = text[:dot] + text[dot + 1 :]
        places = len(text) - dot - 1
    if not (digits.isdigit() and digits.isascii()) or len(digits) > _MAX_DIGITS:
        return _parse_general(text, decimals, limit)
    if places <= decimals:
        value = int(digits) * _POW10[decimals - places]
    else:
        value, remainder = divmod(int(digits), _POW10[places - decimals])
        if remainder:
            raise _finer_than(decimals, text)
    if value > limit:
        raise NotRepresentableError(f"out of range: {text!r}")
    return value


def _parse_general(text: str, decimals: int, limit: int) -> int:
    match = _GENERAL.match(text.strip())
    if match is None or not (match.group(2) or match.group(3)):
        raise NotADecimalError(f"not a decimal number: {text!r}")
    sign, whole, fraction, exponent_text = match.groups()
    digits = ((whole or "") + (fraction or "")).lstrip("0")
    shift = decimals + int(exponent_text or 0) - len(fraction or "")
    if not digits:
        return 0
    significant = digits.rstrip("0")
    shift += len(digits) - len(significant)
    digits = significant
    if len(digits) + shift > _MAX_DIGITS:
        raise NotRepresentableError(f"out of range: {text!r}")
    mantissa = int(digits)
    if shift >= 0:
        value = mantissa * _POW10[shift]
    else:
        if -shift > _MAX_DIGITS:
            raise _finer_than(decimals, text)
        value, remainder = divmod(mantissa, _POW10[-shift])
        if remainder:
            raise _finer_than(decimals, text)
    if value > limit:
        raise NotRepresentableError(f"out of range: {text!r}")
    return -value if sign == "-" else value


def parse_nanos_fast(text: str) -> int:
    """``fixed_point.parse_nanos`` for ``str`` input (same results), on the fast path.

    ``parse_scaled(text, 9, NANOS_LIMIT)`` with the common case inlined: this runs several
    times per tick.
    """
    dot = text.find(".")
    if dot < 0:
        digits = text
        places = 0
    else:
        digits = text[:dot] + text[dot + 1 :]
        places = len(text) - dot - 1
    if digits.isdigit() and digits.isascii():
        shift = NANOS_DECIMALS - places
        if shift >= 0:
            if len(digits) + shift <= 18:  # at most 18 digits: well inside int64
                return int(digits) * _POW10[shift]
        elif 0 < len(digits) + shift <= 18 and not digits[shift:].strip("0"):
            return int(digits[:shift])  # "0.352100000000": the extra places are zeros
    return parse_scaled(text, NANOS_DECIMALS, NANOS_LIMIT)


def rescale(value: int, from_decimals: int, to_decimals: int) -> int:
    """Exact change of scale; raises NotRepresentableError when digits would be lost."""
    if to_decimals >= from_decimals:
        return value * _POW10[to_decimals - from_decimals]
    result, remainder = divmod(value, _POW10[from_decimals - to_decimals])
    if remainder:
        raise _finer_than(to_decimals, f"{value}e-{from_decimals}")
    return result

"""The one conversion between the domain's exact integers and the wire's ``Decimal``.

The domain counts nano-units (``marketcore.fixed_point``: an ``int`` of 1e-9); the wire's
``financial.marketdata.v2.Decimal`` is ``units + nanos / 1e9`` with ``nanos`` of the units'
sign. Every proto field of money or size goes through here, in both directions, so the rules
hold everywhere:

- Reading, a ``Decimal`` that breaks them (``|nanos| > 999,999,999``, or ``nanos`` of the
  other sign) raises ``MalformedDecimalError``: never normalized, because a sender that
  writes such values is broken and its other values are suspect too.
- Writing, a value beyond the wire range raises ``DecimalRangeError`` (the domain checks the
  range before it gets here; this is the last guard, never a silent wrap).
- Zero is written as an unset field (protobuf's default), which the wire reads as 0.
"""

from __future__ import annotations

from financial.marketdata.v2.common_pb2 import Decimal
from marketcore.fixed_point import INT64_MAX, NANOS_LIMIT, NANOS_PER_UNIT, format_nanos

_MAX_NANOS = NANOS_PER_UNIT - 1


class MalformedDecimalError(ValueError):
    """A ``Decimal`` on the wire that is not a canonical value."""


class DecimalRangeError(ValueError):
    """A value too large for a ``Decimal`` (int64 units)."""


def decimal_nanos(value: Decimal) -> int:
    """The exact value of ``value`` in nanos."""
    units = value.units
    nanos = value.nanos
    if nanos and (
        nanos > _MAX_NANOS or nanos < -_MAX_NANOS or (units and (units < 0) != (nanos < 0))
    ):
        raise MalformedDecimalError(f"not a canonical decimal: units={units} nanos={nanos}")
    if units < -INT64_MAX:  # int64's minimum has no positive twin: beyond the range both ways
        raise MalformedDecimalError(
            f"beyond the range carried (units={units}; at most "
            f"{format_nanos(NANOS_LIMIT, min_decimals=0)} either way)"
        )
    return units * NANOS_PER_UNIT + nanos


def split(value: int) -> tuple[int, int]:
    """``value`` (nanos) as (units, nanos) of one sign, truncated toward zero."""
    if value < 0:
        units, nanos = divmod(-value, NANOS_PER_UNIT)
        return -units, -nanos
    return divmod(value, NANOS_PER_UNIT)


def set_decimal(target: Decimal, value: int) -> None:
    """Write ``value`` (nanos) into ``target``, a message's ``Decimal`` field; 0 leaves the
    field unset (reading a sub-message field does not set it)."""
    if not value:
        return
    if value > NANOS_LIMIT or value < -NANOS_LIMIT:
        raise DecimalRangeError(f"{value} nanos is beyond the Decimal range")
    units, nanos = split(value)
    target.units = units
    target.nanos = nanos


def to_decimal(value: int) -> Decimal | None:
    """``value`` (nanos) as a new ``Decimal`` message, for a message's constructor; None for 0,
    which the constructor leaves unset (the wire's "not present", as ``set_decimal`` does)."""
    if not value:
        return None
    message = Decimal()
    set_decimal(message, value)
    return message

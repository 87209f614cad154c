"""How ``daily_bars`` stores exact values: one ``tuple<bigint, int>`` cell, (units, nanos).

Written by the tick writer (``tickwriter.daily_bars``), read by the gateway's quote store.
The cell is serialized as each component's 4-byte length, then the big-endian two's
complement value, so its bytes order like its (non-negative) value; Cassandra's tie-break on
equal write timestamps (the cell with the larger bytes, compared unsigned, wins:
``Cells.resolveRegular`` in 5.0) keeps the larger value. ``low`` stores its nanos
bit-inverted (``~nanos``, from -1 down to -1e9: as unsigned bytes, the smaller the nanos,
the larger the cell) so that the lower value wins instead. One cell, never split: a tie
can never keep one value's units with another's nanos.
"""

from __future__ import annotations

from marketcore.fixed_point import NANOS_PER_UNIT

Cell = tuple[int, int]  # a tuple<bigint, int> cell: (units, nanos)


def cell(value: int) -> Cell:
    """A non-negative value (nanos) as (units, nanos)."""
    units, nanos = divmod(value, NANOS_PER_UNIT)
    return (units, nanos)


def value_of(stored: Cell | None) -> int:
    """A stored (units, nanos) cell in nanos (None, an unset cell: 0)."""
    if stored is None:
        return 0
    units, nanos = stored
    return units * NANOS_PER_UNIT + nanos


def low_cell(value: int) -> Cell:
    units, nanos = cell(value)
    return (units, ~nanos)


def low_value_of(stored: Cell | None) -> int:
    if stored is None:
        return 0
    units, inverted = stored
    return units * NANOS_PER_UNIT + ~inverted

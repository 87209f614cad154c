"""Positions per (account, symbol), by the average-cost method. Pure.

A position is in the security, whichever venue the fills came from: AAPL bought on NASDAQ and
sold on NYSE is flat.

A fill in the position's direction (or from flat) adds to the quantity and the cost. A fill
against it closes quantity at the average cost, realising the difference, and any excess opens
a position the other way at the fill price. Cost and P&L are kept exactly in nano-nanos
(price nanos x quantity nanos, 1e-18) and published rounded half-to-even to nanos with the
remainder beside them, so rounding never accumulates and the log rebuilds the exact values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from marketcore.fixed_point import in_range
from marketcore.trading.model import Side

NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Position:
    account_id: str
    symbol: str
    net_nanos: int = 0  # signed: long > 0
    cost_exact: int = 0  # signed cost of the open quantity, in nanos x nanos (1e-18)
    realized_exact: int = 0
    sequence: int = 0  # 1, 2, 3... per (account, symbol)

    @property
    def cost_nanos(self) -> int:
        return round_nanos(self.cost_exact)

    @property
    def realized_pnl_nanos(self) -> int:
        return round_nanos(self.realized_exact)


def is_representable(position: Position) -> bool:
    """Whether every value of ``position`` fits the wire (``fixed_point.NANOS_LIMIT``): a
    position that does not cannot be recorded, so no fill may produce it."""
    return (
        in_range(position.net_nanos)
        and in_range(position.cost_nanos)
        and in_range(position.realized_pnl_nanos)
    )


def round_nanos(exact: int) -> int:
    """nanos x nanos (1e-18) -> nanos, half to even."""
    quotient, remainder = divmod(exact, NANOS)
    twice = 2 * remainder
    if twice > NANOS or (twice == NANOS and quotient % 2):
        return quotient + 1
    return quotient


def apply_fill(position: Position, side: Side, quantity_nanos: int, price_nanos: int) -> Position:
    signed = side.sign * quantity_nanos
    net, cost, realized = position.net_nanos, position.cost_exact, position.realized_exact
    if net == 0 or (net > 0) == (signed > 0):
        net += signed
        cost += signed * price_nanos
    else:
        closing = min(abs(signed), abs(net))
        # cost of the closed part at the average cost; exact when it divides, else floored
        # toward zero (the remainder stays with the open quantity, so nothing is lost)
        closed_cost = cost * closing // abs(net) if cost >= 0 else -((-cost) * closing // abs(net))
        direction = 1 if net > 0 else -1
        realized += direction * closing * price_nanos - closed_cost
        cost -= closed_cost
        net += signed
        opened = abs(signed) - closing
        if opened:  # the fill went through flat: the excess opens the other way
            cost = -direction * opened * price_nanos
    return replace(
        position,
        net_nanos=net,
        cost_exact=cost,
        realized_exact=realized,
        sequence=position.sequence + 1,
    )

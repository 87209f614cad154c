"""Positions per (account, symbol), by the average-cost method. Pure.

A position is in the security, whichever venue the fills came from: AAPL bought on NASDAQ and
sold on NYSE is flat.

A fill in the position's direction (or from flat) adds to the quantity and the cost. A fill
against it closes quantity at the average cost, realising the difference, and any excess opens
a position the other way at the fill price. Cost and P&L are kept exactly in micro-micros
(price micros x quantity micros) and published rounded half-to-even to micros, so rounding
never accumulates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from marketcore.trading.model import Side

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Position:
    account_id: str
    symbol: str
    net_micros: int = 0  # signed: long > 0
    cost_exact: int = 0  # signed cost of the open quantity, in micros x micros
    realized_exact: int = 0
    sequence: int = 0  # 1, 2, 3... per (account, symbol)

    @property
    def cost_micros(self) -> int:
        return round_micros(self.cost_exact)

    @property
    def realized_pnl_micros(self) -> int:
        return round_micros(self.realized_exact)


def round_micros(exact: int) -> int:
    """micros x micros -> micros, half to even."""
    quotient, remainder = divmod(exact, MICROS)
    twice = 2 * remainder
    if twice > MICROS or (twice == MICROS and quotient % 2):
        return quotient + 1
    return quotient


def apply_fill(position: Position, side: Side, quantity_micros: int, price_micros: int) -> Position:
    signed = side.sign * quantity_micros
    net, cost, realized = position.net_micros, position.cost_exact, position.realized_exact
    if net == 0 or (net > 0) == (signed > 0):
        net += signed
        cost += signed * price_micros
    else:
        closing = min(abs(signed), abs(net))
        # cost of the closed part at the average cost; exact when it divides, else floored
        # toward zero (the remainder stays with the open quantity, so nothing is lost)
        closed_cost = cost * closing // abs(net) if cost >= 0 else -((-cost) * closing // abs(net))
        direction = 1 if net > 0 else -1
        realized += direction * closing * price_micros - closed_cost
        cost -= closed_cost
        net += signed
        opened = abs(signed) - closing
        if opened:  # the fill went through flat: the excess opens the other way
            cost = -direction * opened * price_micros
    return replace(
        position,
        net_micros=net,
        cost_exact=cost,
        realized_exact=realized,
        sequence=position.sequence + 1,
    )

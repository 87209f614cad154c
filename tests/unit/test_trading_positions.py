"""Positions by average cost, kept exactly: closing, flipping through flat, rounding, and the
cash identity under any sequence of fills."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcore.trading.model import Side
from marketcore.trading.positions import NANOS, Position, apply_fill, round_nanos

SHARE = NANOS


def dollars(amount: int) -> int:
    return amount * NANOS


def fills(position: Position, *steps: tuple[Side, int, int]) -> Position:
    for side, shares, price in steps:
        position = apply_fill(position, side, shares * SHARE, price)
    return position


def test_buys_average_their_cost() -> None:
    position = fills(
        Position("acct", "AAPL"), (Side.BUY, 100, dollars(10)), (Side.BUY, 100, dollars(12))
    )
    assert position.net_nanos == 200 * SHARE
    assert position.cost_nanos == dollars(2200)
    assert position.realized_pnl_nanos == 0
    assert position.sequence == 2


def test_a_sell_realizes_against_the_average_cost() -> None:
    position = fills(
        Position("acct", "AAPL"),
        (Side.BUY, 100, dollars(10)),
        (Side.BUY, 100, dollars(12)),
        (Side.SELL, 50, dollars(15)),
    )
    assert position.net_nanos == 150 * SHARE
    assert position.cost_nanos == dollars(1650)  # 150 at the average 11
    assert position.realized_pnl_nanos == dollars(200)  # 50 x (15 - 11)


def test_a_fill_through_flat_opens_the_other_way_at_the_fill_price() -> None:
    position = fills(
        Position("acct", "AAPL"), (Side.BUY, 100, dollars(10)), (Side.SELL, 150, dollars(9))
    )
    assert position.net_nanos == -50 * SHARE
    assert position.cost_nanos == -dollars(450)
    assert position.realized_pnl_nanos == -dollars(100)
    covered = apply_fill(position, Side.BUY, 50 * SHARE, dollars(8))
    assert (covered.net_nanos, covered.cost_exact) == (0, 0)
    assert covered.realized_pnl_nanos == dollars(-100 + 50)


def test_short_then_cover_profits_when_the_price_falls() -> None:
    position = fills(
        Position("acct", "AAPL"), (Side.SELL, 10, dollars(100)), (Side.BUY, 10, dollars(90))
    )
    assert position.net_nanos == 0
    assert position.realized_pnl_nanos == dollars(100)


def test_costs_that_do_not_divide_lose_nothing() -> None:
    # 3 shares at 3.333333333 plus a nano of a share at a nano: the average cost does
    # not divide evenly, so each sale's cost is floored and the remainder stays open
    position = apply_fill(Position("acct", "X"), Side.BUY, 3 * SHARE, dollars(10) // 3)
    position = apply_fill(position, Side.BUY, 1, 1)
    for _ in range(3):
        position = apply_fill(position, Side.SELL, SHARE, dollars(4))
    position = apply_fill(position, Side.SELL, 1, 1)
    assert position.net_nanos == 0
    assert position.cost_exact == 0
    cash = -(3 * SHARE * (dollars(10) // 3)) - 1 + 3 * SHARE * dollars(4) + 1
    assert position.realized_exact == cash


@pytest.mark.parametrize(
    ("exact", "rounded"),
    [
        (0, 0),
        (1_499_999_999, 1),
        (1_500_000_000, 2),  # half to even: 1.5 -> 2
        (2_500_000_000, 2),  # 2.5 -> 2
        (2_500_000_001, 3),
        (-1_500_000_000, -2),
        (-2_500_000_000, -2),
        (-2_500_000_001, -3),
        (-1, 0),
        (500_000_000, 0),  # 0.5 -> 0
        (-500_000_000, 0),
    ],
)
def test_round_nanos_is_half_to_even(exact: int, rounded: int) -> None:
    assert round_nanos(exact) == rounded


_FILLS = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=10**15 * NANOS),  # quantity nanos, to 1e15 units
        st.integers(min_value=1, max_value=10**10 * NANOS),  # price nanos, to 1e10 units
    ),
    max_size=40,
)


@given(steps=_FILLS)
def test_any_fills_keep_cash_and_quantity_exact(steps: list[tuple[Side, int, int]]) -> None:
    position = Position("acct", "AAPL")
    net = cash = 0
    for side, quantity, price in steps:
        position = apply_fill(position, side, quantity, price)
        net += side.sign * quantity
        cash -= side.sign * quantity * price
        assert position.net_nanos == net
        # money in or out is either realized or still in the open position's cost
        assert position.realized_exact - position.cost_exact == cash
        # the cost of the open quantity has its sign and is zero when flat
        assert (position.cost_exact > 0) == (net > 0)
        assert (position.cost_exact < 0) == (net < 0)
    assert position.sequence == len(steps)

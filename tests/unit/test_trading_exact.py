"""The trading core's money arithmetic over the whole range, against ``decimal.Decimal``:
notionals (price x quantity, rounded up to a nano), positions by average cost (kept exactly in
1e-18, published rounded half to even with the remainder), and the ``PositionUpdate`` the
gateway writes, read back by recovery into the exact same position.

Values are random exact decimals with up to nine places: prices to 1e10, quantities to 1e15
(the issue's range), plus the wire's extremes. The expected values are computed here with
``decimal.Decimal`` at a precision where every product and quotient is exact or truncated
on purpose, never by the code under test.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import event as note_case
from hypothesis import example, given
from hypothesis import strategies as st

from financial.marketdata.v2.common_pb2 import Decimal as DecimalMessage
from financial.marketdata.v2.orders_pb2 import OrderRequest, PositionUpdate
from gateway.trading.convert import (
    Malformed,
    position_from_proto,
    position_update,
    request_to_proto,
    spec_from_proto,
)
from marketcore.fixed_point import NANOS_LIMIT
from marketcore.trading.events import PositionChanged
from marketcore.trading.model import OrderType, Side, Touch
from marketcore.trading.positions import Position, apply_fill, is_representable
from marketcore.trading.rules import InstrumentRules, RiskLimits, notional_nanos
from marketcore.trading.validation import Market, check_order, order_notional_nanos
from marketinfra.decimal_codec import DecimalRangeError
from tests.unit.trading_builders import order_spec

NANO = Decimal("1e-9")
ATTO = Decimal("1e-18")  # the exact positions' resolution: a nano of a nano
LIMIT = Decimal(NANOS_LIMIT).scaleb(-9)  # 9223372036854775807.999999999
PRECISION = 200  # digits: every product here is exact (1e25 x 1e15 at 27 places is 67)


def _decimals(top: int) -> st.SearchStrategy[Decimal]:
    """Exact decimals in (0, top] with at most nine places, spread over every magnitude."""
    return st.one_of(
        st.decimals(min_value=NANO, max_value=Decimal(top), places=9),
        st.integers(min_value=1, max_value=top * 10**9).map(lambda n: Decimal(n).scaleb(-9)),
        # a few digits at any scale: 0.00002288, 1234.5, 7e14
        st.builds(
            lambda digits, exponent: min(Decimal(digits) * Decimal(10) ** exponent, Decimal(top)),
            st.integers(min_value=1, max_value=99_999),
            st.integers(min_value=-9, max_value=len(str(top))),
        ),
    )


PRICES = _decimals(10**10)
QUANTITIES = _decimals(10**15)


def _nanos(value: Decimal) -> int:
    with localcontext() as context:
        context.prec = PRECISION
        scaled = value.scaleb(9)
    assert scaled == scaled.to_integral_value(), value
    return int(scaled)


def _exact(value: Decimal) -> int:
    """A value in 1e-18 as an integer, as ``Position.cost_exact`` holds it."""
    with localcontext() as context:
        context.prec = PRECISION
        scaled = value.scaleb(18)
    assert scaled == scaled.to_integral_value(), value
    return int(scaled)


# -- notional -------------------------------------------------------------------------------


@given(price=PRICES, quantity=QUANTITIES)
@example(price=Decimal("0.000000001"), quantity=Decimal("0.000000001"))  # 1e-18 -> one nano
@example(price=Decimal("9999999999.999999999"), quantity=Decimal("999999999999999.999999999"))
@example(price=Decimal("0.00002288"), quantity=Decimal("0.12345678"))
def test_notional_is_the_exact_product_rounded_up_to_a_nano(
    price: Decimal, quantity: Decimal
) -> None:
    with localcontext() as context:
        context.prec = PRECISION
        expected = (price * quantity).quantize(NANO, rounding=ROUND_CEILING)
    assert notional_nanos(_nanos(quantity), _nanos(price)) == _nanos(expected)
    limit_order = order_spec(
        order_type=OrderType.LIMIT, quantity=_nanos(quantity), limit=_nanos(price)
    )
    assert order_notional_nanos(limit_order, Touch()) == _nanos(expected)
    market_buy = order_spec(order_type=OrderType.MARKET, quantity=_nanos(quantity))
    assert order_notional_nanos(market_buy, Touch(ask_nanos=_nanos(price))) == _nanos(expected)


@given(price=PRICES, quantity=QUANTITIES)
def test_a_notional_rejection_states_the_exact_amounts(price: Decimal, quantity: Decimal) -> None:
    with localcontext() as context:
        context.prec = PRECISION
        notional = (price * quantity).quantize(NANO, rounding=ROUND_CEILING)
        limit = notional - NANO  # one nano short: the order must be refused, at the edge
    limits = RiskLimits(
        max_order_notional_nanos=_nanos(limit),
        max_open_notional_nanos=NANOS_LIMIT * 10,
        price_band_bps=10_000,
    )
    spec = order_spec(order_type=OrderType.LIMIT, quantity=_nanos(quantity), limit=_nanos(price))
    rules = InstrumentRules(tick_nanos=1, lot_nanos=1)
    market = Market(rules, True, Touch(bid_nanos=_nanos(price), ask_nanos=_nanos(price)))
    problem = check_order(spec, market, limits, 0)
    assert problem is not None
    words = problem.detail.split()
    # "order notional N exceeds the per-order limit L": both as exact decimal text
    assert Decimal(words[2]) == notional
    assert Decimal(words[-1]) == limit
    at_the_limit = RiskLimits(
        max_order_notional_nanos=_nanos(notional),
        max_open_notional_nanos=_nanos(notional),
        price_band_bps=10_000,
    )
    assert check_order(spec, market, at_the_limit, 0) is None


# -- positions ------------------------------------------------------------------------------


class DecimalPosition:
    """The average-cost method in ``decimal.Decimal`` units, written from its definition: a
    fill with the position (or from flat) adds its quantity and cost; one against it closes
    at the average cost (the closed cost truncated toward zero at 1e-18, the rest staying
    with the open quantity) and realizes the difference; any excess opens the other way at
    the fill price."""

    def __init__(self) -> None:
        self.net = Decimal(0)
        self.cost = Decimal(0)
        self.realized = Decimal(0)

    def fill(self, side: Side, quantity: Decimal, price: Decimal) -> None:
        with localcontext() as context:
            context.prec = PRECISION
            context.rounding = ROUND_DOWN
            signed = quantity if side is Side.BUY else -quantity
            if self.net == 0 or (self.net > 0) == (signed > 0):
                self.net += signed
                self.cost += signed * price
                return
            closing = min(quantity, abs(self.net))
            closed_cost = (self.cost * closing / abs(self.net)).quantize(ATTO, rounding=ROUND_DOWN)
            direction = 1 if self.net > 0 else -1
            self.realized += direction * closing * price - closed_cost
            self.cost -= closed_cost
            self.net += signed
            opened = quantity - closing
            if opened:
                self.cost = -direction * opened * price

    @staticmethod
    def published(value: Decimal) -> tuple[Decimal, Decimal]:
        """(rounded to a nano half to even, the remainder) as a PositionUpdate carries them."""
        with localcontext() as context:
            context.prec = PRECISION
            rounded = value.quantize(NANO, rounding=ROUND_HALF_EVEN)
            return rounded, value - rounded


FILLS = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), QUANTITIES, PRICES), min_size=1, max_size=30
)


def _in_range(value: Decimal) -> bool:
    return -LIMIT <= value <= LIMIT


@given(steps=FILLS)
@example(steps=[(Side.BUY, Decimal(3), Decimal("3.333333333")), (Side.SELL, Decimal(1), NANO)])
@example(  # the average cost of 1 share at 0.000000001 and 2 at 0.000000002, sold one by one
    steps=[
        (Side.BUY, Decimal(1), Decimal("0.000000001")),
        (Side.BUY, Decimal(2), Decimal("0.000000002")),
        (Side.SELL, Decimal(1), Decimal("0.000000004")),
        (Side.SELL, Decimal(1), Decimal("0.000000004")),
        (Side.SELL, Decimal(2), Decimal("0.000000001")),
    ]
)
def test_positions_match_decimal_arithmetic_and_survive_the_wire(
    steps: list[tuple[Side, Decimal, Decimal]],
) -> None:
    position = Position("acct", "ADA-BTC")
    model = DecimalPosition()
    for number, (side, quantity, price) in enumerate(steps, start=1):
        position = apply_fill(position, side, _nanos(quantity), _nanos(price))
        model.fill(side, quantity, price)
        assert position.net_nanos == _nanos(model.net)
        assert position.cost_exact == _exact(model.cost)
        assert position.realized_exact == _exact(model.realized)
        assert position.sequence == number
        cost, cost_rest = DecimalPosition.published(model.cost)
        realized, realized_rest = DecimalPosition.published(model.realized)
        assert position.cost_nanos == _nanos(cost)
        assert position.realized_pnl_nanos == _nanos(realized)
        fits = _in_range(model.net) and _in_range(cost) and _in_range(realized)
        assert is_representable(position) == fits
        note_case("fits the wire" if fits else "beyond the wire")
        if position.cost_exact % 10**9:
            note_case("cost finer than a nano")
        event = PositionChanged(position, 1_764_000_000_000_000_000)
        if not fits:
            with pytest.raises(DecimalRangeError):
                position_update(event)
            continue
        written = position_update(event)
        assert (written.cost_sub_nanos, written.realized_pnl_sub_nanos) == (
            _exact(cost_rest),
            _exact(realized_rest),
        )
        assert abs(written.cost_sub_nanos) <= 500_000_000  # half a nano, in 1e-18
        assert abs(written.realized_pnl_sub_nanos) <= 500_000_000
        read = position_from_proto(PositionUpdate.FromString(written.SerializeToString()))
        assert not isinstance(read, Malformed), read
        assert read == position  # recovery rebuilds it exactly, sequence included


def test_a_half_nano_cost_rounds_to_even_and_keeps_the_remainder() -> None:
    # 0.5 of a share at 0.000000003 costs 1.5 nanos: published as 2, with -0.5 nano (in
    # 1e-18) beside it
    position = apply_fill(Position("a", "X"), Side.BUY, 500_000_000, 3)
    assert position.cost_exact == 1_500_000_000
    written = position_update(PositionChanged(position, 0))
    assert (written.cost.units, written.cost.nanos, written.cost_sub_nanos) == (0, 2, -500_000_000)
    again = apply_fill(Position("a", "X"), Side.BUY, 500_000_000, 5)  # 2.5 nanos -> 2
    written = position_update(PositionChanged(again, 0))
    assert (written.cost.nanos, written.cost_sub_nanos) == (2, 500_000_000)
    short = apply_fill(Position("a", "X"), Side.SELL, 500_000_000, 5)  # -2.5 nanos -> -2
    written = position_update(PositionChanged(short, 0))
    assert (written.cost.units, written.cost.nanos, written.cost_sub_nanos) == (
        0,
        -2,
        -500_000_000,
    )
    assert position_from_proto(written) == short


@pytest.mark.parametrize(
    ("field", "units", "nanos"),
    [
        ("net_quantity", 1, 1_000_000_000),
        ("cost", 5, -1),
        ("realized_pnl", -5, 1),
        ("cost", 0, -1_000_000_000),
    ],
)
def test_recovery_refuses_a_malformed_position_naming_the_field(
    field: str, units: int, nanos: int
) -> None:
    update = PositionUpdate(account_id="acct", symbol="ADA-BTC", sequence=3)
    getattr(update, field).CopyFrom(DecimalMessage(units=units, nanos=nanos))
    assert position_from_proto(update) == Malformed(
        f"position acct|ADA-BTC: {field} is not a canonical decimal: units={units} nanos={nanos}"
    )


def test_an_order_takes_every_value_of_the_range_and_nothing_beyond() -> None:
    """int64 units reach -2^63 but the range is symmetric (+-9223372036854775807.999999999):
    that one value is refused as malformed, since nothing could record it back."""
    top = DecimalMessage(units=2**63 - 1, nanos=999_999_999)
    bottom = DecimalMessage(units=-(2**63 - 1), nanos=-999_999_999)
    for value, expected in ((top, NANOS_LIMIT), (bottom, -NANOS_LIMIT)):
        request = OrderRequest(
            order_id="edge", symbol="BIG", side=1, order_type=2, account_id="acct", time_in_force=1
        )
        request.quantity.CopyFrom(value)
        request.limit_price.CopyFrom(value)
        spec = spec_from_proto(request, "acct")
        assert not isinstance(spec, Malformed), spec
        assert (spec.quantity_nanos, spec.limit_price_nanos) == (expected, expected)
        assert request_to_proto(spec) == request  # and it is written back as it came
    request = OrderRequest(order_id="edge", symbol="BIG", side=1, order_type=1)
    request.quantity.units = -(2**63)
    assert spec_from_proto(request, "acct") == Malformed(
        "order edge: quantity is beyond the range carried (units=-9223372036854775808; at "
        "most 9223372036854775807.999999999 either way)"
    )
    update = PositionUpdate(account_id="acct", symbol="BIG")
    update.realized_pnl.units = -(2**63)
    restored = position_from_proto(update)
    assert isinstance(restored, Malformed)
    assert "realized_pnl is beyond the range carried" in str(restored)


@pytest.mark.parametrize("field", ["cost_sub_nanos", "realized_pnl_sub_nanos"])
def test_recovery_refuses_a_remainder_of_more_than_half_a_nano(field: str) -> None:
    for remainder in (500_000_000, -500_000_000):  # half a nano: what rounding leaves at most
        update = PositionUpdate(account_id="acct", symbol="X", **{field: remainder})
        assert not isinstance(position_from_proto(update), Malformed)
    update = PositionUpdate(account_id="acct", symbol="X", **{field: -500_000_001})
    assert position_from_proto(update) == Malformed(
        f"position acct|X: {field} -500000001 is more than half a nano"
    )

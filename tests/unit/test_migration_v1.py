"""v1 (micros) trading-log records rewritten in v2, exactly: every value is the same number."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from financial.marketdata.v1 import common_pb2 as c1
from financial.marketdata.v1 import orders_pb2 as v1
from gateway.trading.convert import Malformed, order_from_status, position_from_proto
from marketcore.trading.model import OrderStatus
from mdgw.migration_v1 import exact_v1, execution_v2, order_status_v2, position_v2
from tests.support import nanos

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
POSITIVE = st.integers(min_value=1, max_value=2**63 - 1)


def test_an_order_event_keeps_every_field_and_value() -> None:
    old = v1.OrderStatusUpdate(
        order_id="o-1", status=c1.ORDER_STATUS_PARTIALLY_FILLED,
        remaining_quantity_micros=60_000_000, account_id="desk-1", symbol="AAPL",
        exchange="NASDAQ", filled_quantity_micros=40_000_000,
        text="", event_time_ns=1_764_000_000_000_000_000, event_sequence=3, trade_date="2025-11-24",
        fill_count=2,
        order=v1.OrderRequest(
            order_id="o-1", symbol="AAPL", side=c1.SIDE_BUY, quantity_micros=100_000_000,
            limit_price_micros=189_500_000, order_type=c1.ORDER_TYPE_LIMIT, account_id="desk-1",
            exchange="NASDAQ", time_in_force=c1.TIME_IN_FORCE_GTC, client_time_ns=7,
        ),
    )  # fmt: skip
    new = order_status_v2(old)
    assert nanos(new.order.quantity) == 100_000_000_000  # 100 shares
    assert nanos(new.order.limit_price) == 189_500_000_000  # 189.50
    assert nanos(new.filled_quantity) == 40_000_000_000
    assert nanos(new.remaining_quantity) == 60_000_000_000
    assert (new.event_sequence, new.fill_count, new.trade_date) == (3, 2, "2025-11-24")
    assert (new.order.side, new.order.order_type, new.order.time_in_force) == (1, 2, 3)
    order = order_from_status(new)  # the v2 gateway's recovery reads it back
    assert not isinstance(order, Malformed)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.filled_nanos, order.spec.quantity_nanos) == (40 * 10**9, 100 * 10**9)


@given(price=POSITIVE, quantity=POSITIVE, fees=st.integers(min_value=0, max_value=2**63 - 1))
def test_a_fill_is_the_same_number_at_nine_decimals(price: int, quantity: int, fees: int) -> None:
    new = execution_v2(
        v1.ExecutionReport(
            execution_id="o-1-1", fill_price_micros=price, fill_quantity_micros=quantity,
            cumulative_quantity_micros=quantity, fees_micros=fees,
        )
    )  # fmt: skip
    assert nanos(new.fill_price) == price * 1000
    assert nanos(new.fill_quantity) == nanos(new.cumulative_quantity) == quantity * 1000
    assert nanos(new.fees) == fees * 1000


@given(net=INT64, cost=INT64, cost_sub=st.integers(-500_000, 500_000), pnl=INT64,
       pnl_sub=st.integers(-500_000, 500_000))  # fmt: skip
def test_a_position_keeps_its_exact_cost_and_pnl(
    net: int, cost: int, cost_sub: int, pnl: int, pnl_sub: int
) -> None:
    old = v1.PositionUpdate(
        account_id="a", symbol="BTC-USD", net_quantity_micros=net, cost_micros=cost,
        cost_sub_micros=cost_sub, realized_pnl_micros=pnl, realized_pnl_sub_micros=pnl_sub,
        sequence=9,
    )  # fmt: skip
    new = position_v2(old)
    position = position_from_proto(new)
    assert not isinstance(position, Malformed)
    assert position.net_nanos == net * 1000
    assert position.cost_exact == exact_v1(cost, cost_sub) == (cost * 10**6 + cost_sub) * 10**6
    assert position.realized_exact == exact_v1(pnl, pnl_sub)
    assert position.sequence == 9
    assert abs(new.cost_sub_nanos) <= 500_000_000  # rounded half to even to nanos

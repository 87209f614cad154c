"""v1 trading-log records (int64 micros) rewritten as v2 (``Decimal``), exactly. Pure.

Every micros value becomes the same number at nine decimals (``x 1000``). Positions also
carry their exact cost and realized P&L: v1 kept them as ``*_micros * 1e6 + *_sub_micros`` in
1e-12 of the currency, v2 as ``Decimal * 1e9 + *_sub_nanos`` in 1e-18; the value is the same,
so it is rounded again half to even to nanos with the remainder beside it. Fields that are not
money are copied as they are (same numbers, same meaning in both schemas).
"""

from __future__ import annotations

from financial.marketdata.v1 import orders_pb2 as v1
from financial.marketdata.v2 import orders_pb2 as v2
from marketcore.trading.positions import round_nanos
from marketinfra.decimal_codec import to_decimal

MICRO = 1_000  # nanos per micro
_SUB_MICRO_TO_SUB_NANO = 10**6  # 1e-12 -> 1e-18 of the currency


def request_v2(old: v1.OrderRequest) -> v2.OrderRequest:
    return v2.OrderRequest(
        order_id=old.order_id,
        symbol=old.symbol,
        side=old.side,  # type: ignore[arg-type]  # same enum numbers in both packages
        quantity=to_decimal(old.quantity_micros * MICRO),
        limit_price=to_decimal(old.limit_price_micros * MICRO),
        order_type=old.order_type,  # type: ignore[arg-type]  # same enum numbers
        client_time_ns=old.client_time_ns,
        account_id=old.account_id,
        exchange=old.exchange,
        stop_price=to_decimal(old.stop_price_micros * MICRO),
        time_in_force=old.time_in_force,  # type: ignore[arg-type]  # same enum numbers
    )


def order_status_v2(old: v1.OrderStatusUpdate) -> v2.OrderStatusUpdate:
    return v2.OrderStatusUpdate(
        order_id=old.order_id,
        status=old.status,  # type: ignore[arg-type]  # same enum numbers
        remaining_quantity=to_decimal(old.remaining_quantity_micros * MICRO),
        account_id=old.account_id,
        symbol=old.symbol,
        exchange=old.exchange,
        filled_quantity=to_decimal(old.filled_quantity_micros * MICRO),
        reject_reason=old.reject_reason,  # type: ignore[arg-type]  # same enum numbers
        text=old.text,
        event_time_ns=old.event_time_ns,
        event_sequence=old.event_sequence,
        order=request_v2(old.order),
        stop_triggered=old.stop_triggered,
        duplicate=old.duplicate,
        trade_date=old.trade_date,
        fill_count=old.fill_count,
    )


def execution_v2(old: v1.ExecutionReport) -> v2.ExecutionReport:
    return v2.ExecutionReport(
        execution_id=old.execution_id,
        order_id=old.order_id,
        fill_price=to_decimal(old.fill_price_micros * MICRO),
        fill_quantity=to_decimal(old.fill_quantity_micros * MICRO),
        execution_time_ns=old.execution_time_ns,
        account_id=old.account_id,
        symbol=old.symbol,
        exchange=old.exchange,
        side=old.side,  # type: ignore[arg-type]  # same enum numbers
        cumulative_quantity=to_decimal(old.cumulative_quantity_micros * MICRO),
        remaining_quantity=to_decimal(old.remaining_quantity_micros * MICRO),
        fees=to_decimal(old.fees_micros * MICRO),
        venue=old.venue,
        order_event_sequence=old.order_event_sequence,
    )


def exact_v1(micros: int, sub_micros: int) -> int:
    """A v1 position value in 1e-18 of the currency (v1: micros * 1e6 + sub, in 1e-12)."""
    return (micros * 1_000_000 + sub_micros) * _SUB_MICRO_TO_SUB_NANO


def position_v2(old: v1.PositionUpdate) -> v2.PositionUpdate:
    cost = exact_v1(old.cost_micros, old.cost_sub_micros)
    realized = exact_v1(old.realized_pnl_micros, old.realized_pnl_sub_micros)
    cost_nanos, realized_nanos = round_nanos(cost), round_nanos(realized)
    return v2.PositionUpdate(
        account_id=old.account_id,
        symbol=old.symbol,
        exchange=old.exchange,
        net_quantity=to_decimal(old.net_quantity_micros * MICRO),
        cost=to_decimal(cost_nanos),
        realized_pnl=to_decimal(realized_nanos),
        update_time_ns=old.update_time_ns,
        sequence=old.sequence,
        cost_sub_nanos=cost - cost_nanos * 10**9,
        realized_pnl_sub_nanos=realized - realized_nanos * 10**9,
    )

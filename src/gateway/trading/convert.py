"""Trading messages at the edge: proto to the order core and back, and the Kafka records.

Structural checks live here: a request that cannot be an order at all (no usable order id, no
symbol, an unknown side/type/time-in-force number) is a malformed request (INVALID_ARGUMENT),
not an order; everything else reaches the order core, which rejects with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from financial.marketdata.v1 import common_pb2 as common
from financial.marketdata.v1 import orders_pb2 as orders
from financial.marketdata.v1.orders_pb2 import (
    ExecutionReport,
    OrderCancelRequest,
    OrderRequest,
    OrderResult,
    OrderStatusUpdate,
    PositionUpdate,
    RequestReject,
    TradingMessage,
)
from marketcore.instruments import KEY_SEPARATOR, InstrumentKey, InvalidInstrumentError
from marketcore.trading.events import (
    Executed,
    OrderChanged,
    PositionChanged,
    RequestRefused,
    TradingEvent,
)
from marketcore.trading.model import (
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    Rejection,
    RejectReason,
    Side,
    TimeInForce,
)
from marketcore.trading.positions import MICROS, Position

MAX_ORDER_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Malformed:
    problem: str

    def __str__(self) -> str:
        return self.problem


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record of the trading log."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class TradingTopics:
    orders: str
    trades: str
    positions: str


def _reason(rejection: Rejection | None) -> common.RejectReason.ValueType:
    # the core's enums carry the proto numbers, so values convert one to one
    return common.RejectReason.ValueType(rejection.reason if rejection is not None else 0)


def _check_id(order_id: str) -> Malformed | None:
    if not order_id:
        return Malformed("order_id is empty")
    if len(order_id) > MAX_ORDER_ID_LENGTH:
        return Malformed(f"order_id is longer than {MAX_ORDER_ID_LENGTH} characters")
    if not order_id.isprintable() or order_id != order_id.strip():
        return Malformed("order_id has control characters or surrounding spaces")
    return None


def spec_from_proto(request: OrderRequest, caller: str) -> OrderSpec | Malformed:
    """The order a request asks for; an empty ``account_id`` is the caller's."""
    problem = _check_id(request.order_id)
    if problem is not None:
        return problem
    where = f"order {request.order_id}"
    if not request.symbol or request.symbol != request.symbol.strip():
        return Malformed(f"{where}: symbol is empty or has surrounding spaces")
    if KEY_SEPARATOR in request.symbol or KEY_SEPARATOR in request.exchange:
        return Malformed(f"{where}: {KEY_SEPARATOR!r} in symbol or exchange")
    try:
        side = Side(request.side)
    except ValueError:
        return Malformed(f"{where}: side must be SIDE_BUY or SIDE_SELL")
    try:
        order_type = OrderType(request.order_type)
    except ValueError:
        return Malformed(f"{where}: order_type must be MARKET, LIMIT, STOP or STOP_LIMIT")
    try:
        time_in_force = TimeInForce(request.time_in_force or TimeInForce.DAY)
    except ValueError:
        return Malformed(f"{where}: unknown time_in_force {request.time_in_force}")
    return OrderSpec(
        order_id=request.order_id,
        account_id=request.account_id or caller,
        symbol=request.symbol,
        exchange=request.exchange,
        side=side,
        order_type=order_type,
        quantity_micros=request.quantity_micros,
        limit_price_micros=request.limit_price_micros,
        stop_price_micros=request.stop_price_micros,
        time_in_force=time_in_force,
        client_time_ns=request.client_time_ns,
    )


def cancel_from_proto(request: OrderCancelRequest, caller: str) -> tuple[str, str] | Malformed:
    """(order_id, account) of a cancel; a cancel naming another account is refused by the
    order core (PERMISSION_DENIED), as a new order naming one is."""
    problem = _check_id(request.order_id)
    if problem is not None:
        return problem
    return request.order_id, request.account_id or caller


def request_to_proto(spec: OrderSpec) -> OrderRequest:
    return OrderRequest(
        order_id=spec.order_id,
        symbol=spec.symbol,
        side=common.Side.ValueType(spec.side),
        quantity_micros=spec.quantity_micros,
        limit_price_micros=spec.limit_price_micros,
        order_type=common.OrderType.ValueType(spec.order_type),
        client_time_ns=spec.client_time_ns,
        account_id=spec.account_id,
        exchange=spec.exchange,
        stop_price_micros=spec.stop_price_micros,
        time_in_force=common.TimeInForce.ValueType(spec.time_in_force),
    )


# -- events -----------------------------------------------------------------------------------


def status_update(event: OrderChanged, *, duplicate: bool = False) -> OrderStatusUpdate:
    return order_status(event.order, event.time_ns, event.text, duplicate=duplicate)


def order_status(
    order: Order, time_ns: int, text: str = "", *, duplicate: bool = False
) -> OrderStatusUpdate:
    reject = order.reject
    return OrderStatusUpdate(
        order_id=order.order_id,
        status=common.OrderStatus.ValueType(order.status),
        remaining_quantity_micros=order.remaining_micros,
        account_id=order.account_id,
        symbol=order.spec.symbol,
        exchange=order.key.exchange if order.key is not None else order.spec.exchange,
        filled_quantity_micros=order.filled_micros,
        reject_reason=_reason(reject),
        text=text or (reject.detail if reject else ""),
        event_time_ns=time_ns,
        event_sequence=order.event_sequence,
        order=request_to_proto(order.spec),
        stop_triggered=order.stop_triggered,
        duplicate=duplicate,
        trade_date=order.trade_date,
        fill_count=order.fill_count,
    )


def execution_report(event: Executed) -> ExecutionReport:
    order = event.order
    return ExecutionReport(
        execution_id=event.execution_id,
        order_id=order.order_id,
        fill_price_micros=event.price_micros,
        fill_quantity_micros=event.quantity_micros,
        execution_time_ns=event.time_ns,
        account_id=order.account_id,
        symbol=order.spec.symbol,
        exchange=order.key.exchange if order.key is not None else "",
        side=common.Side.ValueType(order.spec.side),
        cumulative_quantity_micros=order.filled_micros,
        remaining_quantity_micros=order.remaining_micros,
        fees_micros=0,
        venue=event.venue,
        order_event_sequence=order.event_sequence,
    )


def position_update(event: PositionChanged) -> PositionUpdate:
    position = event.position
    cost, realized = position.cost_micros, position.realized_pnl_micros
    return PositionUpdate(
        account_id=position.account_id,
        symbol=position.symbol,
        net_quantity_micros=position.net_micros,
        cost_micros=cost,
        realized_pnl_micros=realized,
        update_time_ns=event.time_ns,
        sequence=position.sequence,
        cost_sub_micros=position.cost_exact - cost * MICROS,
        realized_pnl_sub_micros=position.realized_exact - realized * MICROS,
    )


def request_reject(refused: RequestRefused) -> RequestReject:
    return RequestReject(
        order_id=refused.order_id,
        request=orders.RequestKind.ValueType(refused.request),
        reject_reason=_reason(refused.rejection),
        text=refused.rejection.detail,
        order_status=common.OrderStatus.ValueType(refused.order_status or 0),
    )


def trading_message(event: TradingEvent) -> TradingMessage:
    if isinstance(event, OrderChanged):
        return TradingMessage(status=status_update(event))
    if isinstance(event, Executed):
        return TradingMessage(execution=execution_report(event))
    return TradingMessage(position=position_update(event))


def records(events: list[TradingEvent], topics: TradingTopics) -> list[Record]:
    """The Kafka records of ``events``: status changes keyed by order id, fills by account,
    positions by ``account|symbol``."""
    out: list[Record] = []
    for event in events:
        if isinstance(event, OrderChanged):
            key = event.order.order_id
            out.append(
                Record(topics.orders, key.encode(), status_update(event).SerializeToString())
            )
        elif isinstance(event, Executed):
            value = execution_report(event).SerializeToString()
            out.append(Record(topics.trades, event.account_id.encode(), value))
        else:
            position = event.position
            key = f"{position.account_id}{KEY_SEPARATOR}{position.symbol}"
            value = position_update(event).SerializeToString()
            out.append(Record(topics.positions, key.encode(), value))
    return out


def order_result(order: Order, *, duplicate: bool) -> OrderResult:
    reject = order.reject
    return OrderResult(
        order_id=order.order_id,
        status=common.OrderStatus.ValueType(order.status),
        reject_reason=_reason(reject),
        reject_text=reject.detail if reject else "",
        duplicate=duplicate,
    )


def refused_result(refused: RequestRefused) -> OrderResult:
    return OrderResult(
        order_id=refused.order_id,
        status=common.ORDER_STATUS_REJECTED,
        reject_reason=_reason(refused.rejection),
        reject_text=refused.rejection.detail,
    )


# -- recovery ---------------------------------------------------------------------------------


def order_from_status(update: OrderStatusUpdate) -> Order | Malformed:
    """The order a recorded status update describes (its latest state, when it is the latest
    event of the order)."""
    request = update.order
    spec = spec_from_proto(request, request.account_id)
    if isinstance(spec, Malformed):
        return spec
    try:
        status = OrderStatus(update.status)
        key = InstrumentKey(update.exchange, update.symbol) if update.exchange else None
    except (ValueError, InvalidInstrumentError) as exc:
        return Malformed(f"order {update.order_id}: {exc}")
    reject = None
    if status is OrderStatus.REJECTED:
        reject = Rejection(
            RejectReason(update.reject_reason or RejectReason.MALFORMED), update.text
        )
    return Order(
        spec=spec,
        key=key,
        status=status,
        event_sequence=update.event_sequence,
        filled_micros=update.filled_quantity_micros,
        fill_count=update.fill_count,
        stop_triggered=update.stop_triggered,
        trade_date=update.trade_date,
        reject=reject,
    )


def position_from_proto(update: PositionUpdate) -> Position:
    return Position(
        account_id=update.account_id,
        symbol=update.symbol,
        net_micros=update.net_quantity_micros,
        cost_exact=update.cost_micros * MICROS + update.cost_sub_micros,
        realized_exact=update.realized_pnl_micros * MICROS + update.realized_pnl_sub_micros,
        sequence=update.sequence,
    )

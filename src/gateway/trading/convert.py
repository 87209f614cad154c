"""Trading messages at the edge: proto to the order core and back, and the Kafka records.

Structural checks live here: a request that cannot be an order at all (no usable order id, no
symbol, an unknown side/type/time-in-force number, a quantity or price that is not a canonical
``Decimal``) is a malformed request (INVALID_ARGUMENT), not an order; everything else reaches
the order core, which rejects with a reason. A zero value is written as an unset field.

Every string is checked against its limit (``gateway.core.limits``) first, before the order
core, a log line or the trading log sees it: an order whose fields are within the limits makes
records far below Kafka's record size limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2 import orders_pb2 as orders
from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.orders_pb2 import (
    ExecutionReport,
    OrderCancelRequest,
    OrderRequest,
    OrderResult,
    OrderStatusUpdate,
    PositionUpdate,
    RequestReject,
    TradingMessage,
)
from gateway.core.limits import (
    MAX_ACCOUNT_ID_LENGTH,
    MAX_CANCEL_REASON_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_ORDER_ID_LENGTH,
    text_problem,
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
from marketcore.trading.positions import NANOS, Position
from marketinfra.decimal_codec import MalformedDecimalError, decimal_nanos, to_decimal


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


def _exact_fields(where: str, *fields: tuple[str, Decimal]) -> list[int] | Malformed:
    """The fields' exact values in nanos, or which one is not a canonical ``Decimal`` (the one
    value of int64 units with no positive counterpart, -2^63, included: it is beyond the
    range the domain carries, so it could never be recorded back)."""
    values: list[int] = []
    for name, value in fields:
        try:
            values.append(decimal_nanos(value))
        except MalformedDecimalError as exc:
            return Malformed(f"{where}: {name} is {exc}")
    return values


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


def _check_texts(where: str, *fields: tuple[str, str, int]) -> Malformed | None:
    """The first (name, value, limit) past its limit, named with ``where``."""
    for name, value, limit in fields:
        problem = text_problem(name, value, limit)
        if problem is not None:
            return Malformed(f"{where}: {problem}")
    return None


def spec_from_proto(request: OrderRequest, caller: str) -> OrderSpec | Malformed:
    """The order a request asks for; an empty ``account_id`` is the caller's."""
    problem = _check_id(request.order_id)
    if problem is not None:
        return problem
    where = f"order {request.order_id}"
    problem = _check_texts(
        where,
        ("symbol", request.symbol, MAX_IDENTIFIER_LENGTH),
        ("exchange", request.exchange, MAX_IDENTIFIER_LENGTH),
        ("account_id", request.account_id, MAX_ACCOUNT_ID_LENGTH),
    )
    if problem is not None:
        return problem
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
    exact = _exact_fields(
        where,
        ("quantity", request.quantity),
        ("limit_price", request.limit_price),
        ("stop_price", request.stop_price),
    )
    if isinstance(exact, Malformed):
        return exact
    quantity, limit_price, stop_price = exact
    return OrderSpec(
        order_id=request.order_id,
        account_id=request.account_id or caller,
        symbol=request.symbol,
        exchange=request.exchange,
        side=side,
        order_type=order_type,
        quantity_nanos=quantity,
        limit_price_nanos=limit_price,
        stop_price_nanos=stop_price,
        time_in_force=time_in_force,
        client_time_ns=request.client_time_ns,
    )


def cancel_from_proto(request: OrderCancelRequest, caller: str) -> tuple[str, str] | Malformed:
    """(order_id, account) of a cancel; a cancel naming another account is refused by the
    order core (PERMISSION_DENIED), as a new order naming one is."""
    problem = _check_id(request.order_id)
    if problem is not None:
        return problem
    problem = _check_texts(
        f"order {request.order_id}",
        ("account_id", request.account_id, MAX_ACCOUNT_ID_LENGTH),
        ("reason", request.reason, MAX_CANCEL_REASON_LENGTH),
    )
    if problem is not None:
        return problem
    return request.order_id, request.account_id or caller


def request_to_proto(spec: OrderSpec) -> OrderRequest:
    return OrderRequest(
        order_id=spec.order_id,
        symbol=spec.symbol,
        side=common.Side.ValueType(spec.side),
        quantity=to_decimal(spec.quantity_nanos),
        limit_price=to_decimal(spec.limit_price_nanos),
        order_type=common.OrderType.ValueType(spec.order_type),
        client_time_ns=spec.client_time_ns,
        account_id=spec.account_id,
        exchange=spec.exchange,
        stop_price=to_decimal(spec.stop_price_nanos),
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
        remaining_quantity=to_decimal(order.remaining_nanos),
        account_id=order.account_id,
        symbol=order.spec.symbol,
        exchange=order.key.exchange if order.key is not None else order.spec.exchange,
        filled_quantity=to_decimal(order.filled_nanos),
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
        fill_price=to_decimal(event.price_nanos),
        fill_quantity=to_decimal(event.quantity_nanos),
        execution_time_ns=event.time_ns,
        account_id=order.account_id,
        symbol=order.spec.symbol,
        exchange=order.key.exchange if order.key is not None else "",
        side=common.Side.ValueType(order.spec.side),
        cumulative_quantity=to_decimal(order.filled_nanos),
        remaining_quantity=to_decimal(order.remaining_nanos),
        venue=event.venue,
        order_event_sequence=order.event_sequence,
    )


def position_update(event: PositionChanged) -> PositionUpdate:
    position = event.position
    cost, realized = position.cost_nanos, position.realized_pnl_nanos
    return PositionUpdate(
        account_id=position.account_id,
        symbol=position.symbol,
        net_quantity=to_decimal(position.net_nanos),
        cost=to_decimal(cost),
        realized_pnl=to_decimal(realized),
        update_time_ns=event.time_ns,
        sequence=position.sequence,
        cost_sub_nanos=position.cost_exact - cost * NANOS,
        realized_pnl_sub_nanos=position.realized_exact - realized * NANOS,
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
    exact = _exact_fields(f"order {update.order_id}", ("filled_quantity", update.filled_quantity))
    if isinstance(exact, Malformed):
        return exact
    (filled,) = exact
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
        filled_nanos=filled,
        fill_count=update.fill_count,
        stop_triggered=update.stop_triggered,
        trade_date=update.trade_date,
        reject=reject,
    )


def position_from_proto(update: PositionUpdate) -> Position | Malformed:
    """The exact position: each rounded value plus its remainder in 1e-18, which rounding
    half to even keeps within half a nano (a record breaking that is not ours)."""
    where = f"position {update.account_id}{KEY_SEPARATOR}{update.symbol}"
    exact = _exact_fields(
        where,
        ("net_quantity", update.net_quantity),
        ("cost", update.cost),
        ("realized_pnl", update.realized_pnl),
    )
    if isinstance(exact, Malformed):
        return exact
    net, cost, realized = exact
    for name, remainder in (
        ("cost_sub_nanos", update.cost_sub_nanos),
        ("realized_pnl_sub_nanos", update.realized_pnl_sub_nanos),
    ):
        if abs(remainder) > NANOS // 2:
            return Malformed(f"{where}: {name} {remainder} is more than half a nano")
    return Position(
        account_id=update.account_id,
        symbol=update.symbol,
        net_nanos=net,
        cost_exact=cost * NANOS + update.cost_sub_nanos,
        realized_exact=realized * NANOS + update.realized_pnl_sub_nanos,
        sequence=update.sequence,
    )

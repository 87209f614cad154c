"""The order state machine: the only way an ``Order`` changes. Pure.

::

    (submitted) --accept--> NEW --fill--> PARTIALLY_FILLED --fill--> FILLED
         |                   |  \\                 |   \\
         reject            cancel expire        cancel  expire
         v                   v     v              v      v
      REJECTED           CANCELLED EXPIRED    CANCELLED EXPIRED

FILLED, CANCELLED, REJECTED and EXPIRED are final: any change of a final order raises
``IllegalTransition`` (a bug, never a business outcome; callers check first). Triggering a
stop is a change too (its own event) without a status change. Each change takes the next
``event_sequence``.
"""

from __future__ import annotations

from dataclasses import replace

from marketcore.instruments import InstrumentKey
from marketcore.trading.model import Order, OrderSpec, OrderStatus, Rejection


class IllegalTransition(RuntimeError):
    """A change the state machine does not allow (a programming error)."""


def accept(spec: OrderSpec, key: InstrumentKey, trade_date: str) -> Order:
    return Order(spec, key, OrderStatus.NEW, event_sequence=1, trade_date=trade_date)


def reject(spec: OrderSpec, rejection: Rejection, key: InstrumentKey | None = None) -> Order:
    return Order(spec, key, OrderStatus.REJECTED, event_sequence=1, reject=rejection)


def fill(order: Order, quantity_nanos: int) -> Order:
    _require_working(order, "fill")
    if not 0 < quantity_nanos <= order.remaining_nanos:
        raise IllegalTransition(
            f"{order.order_id}: fill of {quantity_nanos} with {order.remaining_nanos} remaining"
        )
    filled = order.filled_nanos + quantity_nanos
    status = (
        OrderStatus.FILLED if filled == order.spec.quantity_nanos else OrderStatus.PARTIALLY_FILLED
    )
    return replace(
        order,
        status=status,
        filled_nanos=filled,
        fill_count=order.fill_count + 1,
        event_sequence=order.event_sequence + 1,
    )


def cancel(order: Order) -> Order:
    _require_working(order, "cancel")
    return replace(order, status=OrderStatus.CANCELLED, event_sequence=order.event_sequence + 1)


def expire(order: Order) -> Order:
    _require_working(order, "expire")
    return replace(order, status=OrderStatus.EXPIRED, event_sequence=order.event_sequence + 1)


def trigger_stop(order: Order) -> Order:
    _require_working(order, "trigger")
    if not order.spec.order_type.has_stop or order.stop_triggered:
        raise IllegalTransition(f"{order.order_id}: not an untriggered stop order")
    return replace(order, stop_triggered=True, event_sequence=order.event_sequence + 1)


def _require_working(order: Order, change: str) -> None:
    if order.status.is_final:
        raise IllegalTransition(f"{order.order_id}: cannot {change} a {order.status.name} order")

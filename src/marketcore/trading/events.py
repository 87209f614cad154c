"""What the order manager reports: facts to record and to tell the account's sessions. Pure.

- ``OrderChanged``: every status change of an order (and a stop trigger); recorded on
  ``orders.lifecycle``.
- ``Executed``: every fill; recorded on ``trades.executed``. Its ``execution_id`` is
  ``<order_id>-<n>`` (the order's n-th fill), so a retried record is recognisably the same fill.
- ``PositionChanged``: the position after a fill; recorded on ``positions.updates``.
- ``RequestRefused``: a request that changed no order (told to the caller, not recorded).

One fill gives ``Executed``, ``OrderChanged`` and ``PositionChanged`` in that order, the first
two with the same ``event_sequence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from marketcore.trading.model import Order, OrderStatus, Rejection
from marketcore.trading.positions import Position


class RequestKind(IntEnum):
    NEW_ORDER = 1
    CANCEL = 2


@dataclass(frozen=True, slots=True)
class OrderChanged:
    order: Order
    time_ns: int
    text: str = ""

    @property
    def account_id(self) -> str:
        return self.order.account_id


@dataclass(frozen=True, slots=True)
class Executed:
    execution_id: str
    order: Order  # after the fill
    price_nanos: int
    quantity_nanos: int
    time_ns: int
    venue: str

    @property
    def account_id(self) -> str:
        return self.order.account_id


@dataclass(frozen=True, slots=True)
class PositionChanged:
    position: Position
    time_ns: int

    @property
    def account_id(self) -> str:
        return self.position.account_id


TradingEvent = OrderChanged | Executed | PositionChanged


@dataclass(frozen=True, slots=True)
class RequestRefused:
    order_id: str
    account_id: str  # who asked
    request: RequestKind
    rejection: Rejection
    order_status: OrderStatus | None = None  # the order's status, when it is the caller's

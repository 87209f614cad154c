"""A venue simulated against the live quote. Pure.

Execution rules:

- **Prices.** An order executes at the far touch: a buy at the ask, a sell at the bid. A market
  order (or a triggered STOP) takes the touch whatever it is; a limit order (or a triggered
  STOP_LIMIT) only when the touch is at or better than its limit, so it fills at once when
  marketable and later when the market comes to it.
- **Sizes.** Each quote's displayed size is liquidity once: orders share it in arrival order
  (time priority) and a new quote brings new liquidity. A fill is rounded down to the lot, so a
  large order fills in parts over several quotes. A quote with no size (0) is taken as deep
  enough for everything.
- **Stops** trigger from the latest trade price (``Touch.last_nanos``): a buy stop when it is
  at or above the stop price, a sell stop at or below; then they execute as above. A stop whose
  price is already reached when it arrives triggers at once.
- **IOC** orders get one chance, on arrival; the remainder is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketcore.instruments import InstrumentKey
from marketcore.trading.model import (
    Order,
    OrderRef,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Touch,
)
from marketcore.trading.venue import CancelRefused, Ended, Filled, StopTriggered, VenueReport

SIMULATED_VENUE = "SIM"


@dataclass(slots=True)
class _Working:
    ref: OrderRef
    side: Side
    order_type: OrderType
    limit_nanos: int
    stop_nanos: int
    remaining_nanos: int
    lot_nanos: int
    triggered: bool

    def executable_at(self, price_nanos: int) -> bool:
        if price_nanos <= 0:
            return False
        if self.order_type.has_stop and not self.triggered:
            return False
        if not self.order_type.has_limit:
            return True
        if self.side is Side.BUY:
            return price_nanos <= self.limit_nanos
        return price_nanos >= self.limit_nanos

    def stop_reached(self, last_nanos: int) -> bool:
        if last_nanos <= 0:
            return False
        if self.side is Side.BUY:
            return last_nanos >= self.stop_nanos
        return last_nanos <= self.stop_nanos


@dataclass(slots=True)
class _Book:
    touch: Touch
    bid_left: int | None  # liquidity left on the current quote; None: no size limit
    ask_left: int | None

    def left(self, side: Side) -> int | None:
        return self.ask_left if side is Side.BUY else self.bid_left

    def take(self, side: Side, quantity: int) -> None:
        if side is Side.BUY:
            self.ask_left = None if self.ask_left is None else self.ask_left - quantity
        else:
            self.bid_left = None if self.bid_left is None else self.bid_left - quantity


def _fresh_book(touch: Touch) -> _Book:
    return _Book(touch, touch.bid_size_nanos or None, touch.ask_size_nanos or None)


class SimulatedVenue:
    name = SIMULATED_VENUE

    def __init__(self) -> None:
        self._books: dict[InstrumentKey, _Book] = {}
        self._orders: dict[InstrumentKey, dict[OrderRef, _Working]] = {}  # arrival order
        self._where: dict[OrderRef, InstrumentKey] = {}

    def __len__(self) -> int:
        return len(self._where)

    def place(self, order: Order, lot_nanos: int) -> list[VenueReport]:
        key = self._add(order, lot_nanos)
        working = self._orders[key][order.ref]
        book = self._books.get(key)
        reports: list[VenueReport] = []
        if book is not None:
            reports.extend(self._work(key, working, book))
        if order.spec.time_in_force is TimeInForce.IOC and order.ref in self._where:
            self._remove(order.ref)
            reports.append(
                Ended(order.ref, OrderStatus.CANCELLED, "IOC: remainder not filled on arrival")
            )
        return reports

    def restore(self, order: Order, lot_nanos: int) -> None:
        self._add(order, lot_nanos)

    def cancel(self, ref: OrderRef) -> list[VenueReport]:
        if self._remove(ref) is None:
            return [CancelRefused(ref, "not working at the venue")]
        return [Ended(ref, OrderStatus.CANCELLED, "cancelled on request")]

    def expire(self, ref: OrderRef, text: str) -> list[VenueReport]:
        if self._remove(ref) is None:
            return []
        return [Ended(ref, OrderStatus.EXPIRED, text)]

    def on_touch(self, key: InstrumentKey, touch: Touch) -> list[VenueReport]:
        book = _fresh_book(touch)
        self._books[key] = book
        orders = self._orders.get(key)
        if not orders:
            return []
        reports: list[VenueReport] = []
        for working in list(orders.values()):
            reports.extend(self._work(key, working, book))
        return reports

    # -- internals ---------------------------------------------------------------------------

    def _add(self, order: Order, lot_nanos: int) -> InstrumentKey:
        key = order.key
        if key is None:
            raise ValueError(f"{order.order_id}: an order without an instrument cannot work")
        spec = order.spec
        working = _Working(
            order.ref,
            spec.side,
            spec.order_type,
            spec.limit_price_nanos,
            spec.stop_price_nanos,
            order.remaining_nanos,
            lot_nanos,
            order.stop_triggered,
        )
        self._orders.setdefault(key, {})[order.ref] = working
        self._where[order.ref] = key
        return key

    def _remove(self, ref: OrderRef) -> _Working | None:
        key = self._where.pop(ref, None)
        if key is None:
            return None
        orders = self._orders[key]
        working = orders.pop(ref)
        if not orders:
            del self._orders[key]
        return working

    def _work(self, key: InstrumentKey, working: _Working, book: _Book) -> list[VenueReport]:
        reports: list[VenueReport] = []
        if working.order_type.has_stop and not working.triggered:
            if not working.stop_reached(book.touch.last_nanos):
                return reports
            working.triggered = True
            reports.append(StopTriggered(working.ref))
        price, _ = book.touch.far_side(working.side)
        if not working.executable_at(price):
            return reports
        left = book.left(working.side)
        quantity = working.remaining_nanos if left is None else min(working.remaining_nanos, left)
        quantity -= quantity % working.lot_nanos
        if quantity <= 0:
            return reports
        book.take(working.side, quantity)
        working.remaining_nanos -= quantity
        reports.append(Filled(working.ref, price, quantity))
        if working.remaining_nanos == 0:
            self._remove(working.ref)
        return reports

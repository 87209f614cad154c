"""The order manager: every order's one fate. Pure; time arrives as ``now_ns``.

It owns the orders' state, checks new orders, hands accepted ones to a ``Venue`` and turns what
the venue reports into state changes through ``lifecycle`` (which makes illegal transitions
impossible). Each call returns the events it caused, in order; the caller records them and tells
the sessions. Everything runs on one thread, one call at a time, so "races" are orderings: a
cancel that arrives after a fill cancels what is left (the CANCELLED event shows the filled
quantity) or, if the fill completed the order, is refused TOO_LATE_TO_CANCEL.

Idempotency: ``order_id`` is the client's key, scoped per account: orders are known by their
``OrderRef`` (account, order id), so two accounts may use the same id and neither can learn
anything about the other's (a cancel of an id the caller never used is UNKNOWN_ORDER, whoever
else used it). A resubmission of an order (same id and fields, from either RPC) creates nothing
and answers with the order's current state (``duplicate``). The same id with different fields is
refused DUPLICATE_ORDER_ID. Rejected orders keep their id too: a retry after a rejection needs a
new id.

Accounts: an order is placed and cancelled by its own account only (an order naming another
account is refused PERMISSION_DENIED).

A new order is checked in this order: account, duplicate id, order rate (RATE_LIMIT), then
``validation.check_order``, then the range: however much of it and of the account's other
working orders in the symbol fills, the net position must still fit the wire
(INVALID_QUANTITY otherwise). A rejected order is recorded like any other (one REJECTED
event). A fill whose position would not fit the wire (its cost or realized P&L: they depend
on the fill price, unknown until the fill) is not executed: the order is cancelled instead,
with the reason, and the venue stops working it, so nothing unrecordable ever happens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from marketcore.fixed_point import NANOS_LIMIT, format_nanos
from marketcore.instruments import InstrumentKey, InvalidInstrumentError
from marketcore.trading import lifecycle
from marketcore.trading.events import (
    Executed,
    OrderChanged,
    PositionChanged,
    RequestKind,
    RequestRefused,
    TradingEvent,
)
from marketcore.trading.model import (
    Order,
    OrderRef,
    OrderSpec,
    OrderStatus,
    Rejection,
    RejectReason,
    Side,
    TimeInForce,
    Touch,
)
from marketcore.trading.positions import Position, apply_fill, is_representable
from marketcore.trading.rules import RateLimiter, ReferenceData, RiskLimits
from marketcore.trading.validation import Market, check_fields, check_order, order_notional_nanos
from marketcore.trading.venue import CancelRefused, Ended, Filled, StopTriggered, Venue, VenueReport
from marketcore.trading_calendar import trade_date_text


@dataclass(frozen=True, slots=True)
class Submitted:
    order: Order  # its state now (for a duplicate: the first submission's order)
    duplicate: bool
    events: list[TradingEvent]


class OrderManager:
    def __init__(self, venue: Venue, reference: ReferenceData, limits: RiskLimits) -> None:
        self._venue = venue
        self.reference = reference  # replaced when the reference data is reloaded (halts)
        self._limits = limits
        self._rate = RateLimiter(limits.orders_per_second, limits.order_burst)
        self._orders: dict[OrderRef, Order] = {}
        self._working: dict[str, dict[str, None]] = {}  # account -> working order ids, in order
        self._positions: dict[tuple[str, str], Position] = {}
        self._touches: dict[InstrumentKey, Touch] = {}
        self._quoted_on: dict[str, InstrumentKey] = {}  # symbol -> the venue that quoted it last

    # -- reading -----------------------------------------------------------------------------

    def order(self, account_id: str, order_id: str) -> Order | None:
        return self._orders.get((account_id, order_id))

    def working_orders(self, account_id: str | None = None) -> list[Order]:
        accounts = [account_id] if account_id is not None else list(self._working)
        return [
            self._orders[(account, order_id)]
            for account in accounts
            for order_id in self._working.get(account, ())
        ]

    def working_count(self) -> int:
        return sum(len(orders) for orders in self._working.values())

    def position(self, account_id: str, symbol: str) -> Position | None:
        return self._positions.get((account_id, symbol))

    def positions(self, account_id: str) -> list[Position]:
        return [p for (account, _), p in self._positions.items() if account == account_id]

    def touch(self, key: InstrumentKey) -> Touch | None:
        return self._touches.get(key)

    def __len__(self) -> int:
        return len(self._orders)

    # -- requests ----------------------------------------------------------------------------

    def submit(self, spec: OrderSpec, caller: str, now_ns: int) -> Submitted | RequestRefused:
        if spec.account_id != caller:
            return _refuse_new(spec, caller, RejectReason.PERMISSION_DENIED, "not your account")
        existing = self._orders.get((caller, spec.order_id))
        if existing is not None:
            if existing.spec.same_order(spec):
                return Submitted(existing, duplicate=True, events=[])
            return _refuse_new(
                spec,
                caller,
                RejectReason.DUPLICATE_ORDER_ID,
                f"order id {spec.order_id} is already used by a different order",
                existing.status,
            )
        key = self._resolve(spec)
        problem: Rejection | None
        if not self._rate.take(caller, now_ns):
            problem = Rejection(
                RejectReason.RATE_LIMIT,
                f"more than {self._limits.orders_per_second:g} orders/s "
                f"(burst {self._limits.order_burst})",
            )
        elif key is None:
            problem = check_fields(spec) or Rejection(
                RejectReason.UNKNOWN_SYMBOL, _unknown_symbol_text(spec.symbol)
            )
        else:
            problem = check_order(
                spec, self._market(key, now_ns), self._limits, self._open_notional(caller)
            ) or self._check_position_range(spec, caller)
        if problem is not None:
            order = lifecycle.reject(spec, problem, key)
            self._orders[order.ref] = order
            return Submitted(order, False, [OrderChanged(order, now_ns, problem.detail)])
        assert key is not None  # check_order accepted it, so the instrument is known
        order = lifecycle.accept(spec, key, trade_date_text(key.exchange, now_ns))
        self._store(order)
        events: list[TradingEvent] = [OrderChanged(order, now_ns)]
        rules = self.reference.rules_for(key)
        assert rules is not None
        events.extend(self.on_venue_reports(self._venue.place(order, rules.lot_nanos), now_ns))
        return Submitted(self._orders[order.ref], False, events)

    def cancel(
        self, order_id: str, caller: str, now_ns: int, account_id: str | None = None
    ) -> list[TradingEvent] | RequestRefused:
        """Cancel the caller's order ``order_id`` (ids are per account: another account's order
        of that id is no concern of the caller's, and is not touched). ``account_id``: the
        account the request names, if any; another account's is refused, as for new orders."""
        if account_id is not None and account_id != caller:
            return _refuse_cancel(
                order_id, caller, RejectReason.PERMISSION_DENIED, "not your account"
            )
        ref = (caller, order_id)
        order = self._orders.get(ref)
        if order is None:
            return _refuse_cancel(order_id, caller, RejectReason.UNKNOWN_ORDER, "no such order")
        if order.status.is_final:
            return _refuse_cancel(
                order_id,
                caller,
                RejectReason.TOO_LATE_TO_CANCEL,
                f"the order is already {order.status.name}",
                order.status,
            )
        reports = self._venue.cancel(ref)
        refused = [report for report in reports if isinstance(report, CancelRefused)]
        events = self.on_venue_reports(reports, now_ns)
        if refused and not events:
            current = self._orders[ref]
            return _refuse_cancel(
                order_id, caller, RejectReason.TOO_LATE_TO_CANCEL, refused[0].text, current.status
            )
        return events

    # -- market and venue --------------------------------------------------------------------

    def on_tick(self, key: InstrumentKey, tick: Touch, now_ns: int) -> list[TradingEvent]:
        """A new quote or trade: keep it (the latest trade price carries over ticks without
        one) and let the venue execute against it."""
        previous = self._touches.get(key)
        touch = tick
        if tick.last_nanos == 0 and previous is not None and previous.last_nanos:
            touch = Touch(
                tick.bid_nanos,
                tick.ask_nanos,
                tick.bid_size_nanos,
                tick.ask_size_nanos,
                previous.last_nanos,
            )
        self._touches[key] = touch
        self._quoted_on[key.symbol] = key
        return self.on_venue_reports(self._venue.on_touch(key, touch), now_ns)

    def on_venue_reports(self, reports: Iterable[VenueReport], now_ns: int) -> list[TradingEvent]:
        events: list[TradingEvent] = []
        for report in reports:
            order = self._orders.get(report.ref)
            if order is None or order.status.is_final:
                continue  # a report for an order that is not working changes nothing
            if isinstance(report, Filled):
                events.extend(self._fill(order, report, now_ns))
            elif isinstance(report, StopTriggered):
                if not order.stop_triggered:
                    changed = lifecycle.trigger_stop(order)
                    self._store(changed)
                    events.append(OrderChanged(changed, now_ns, "stop triggered"))
            elif isinstance(report, Ended):
                changed = (
                    lifecycle.expire(order)
                    if report.status is OrderStatus.EXPIRED
                    else lifecycle.cancel(order)
                )
                self._store(changed)
                events.append(OrderChanged(changed, now_ns, report.text))
        return events

    def expire_due(self, now_ns: int) -> list[TradingEvent]:
        """End DAY orders whose trading day is over (the session closed or the date moved)."""
        events: list[TradingEvent] = []
        for order in self.working_orders():
            if order.spec.time_in_force is not TimeInForce.DAY or order.key is None:
                continue
            key = order.key
            rules = self.reference.rules_for(key)
            closed = rules is not None and not rules.hours.is_open(
                self.reference.time_zone(key), now_ns
            )
            if closed or trade_date_text(key.exchange, now_ns) != order.trade_date:
                reports = self._venue.expire(order.ref, "end of the trading day")
                events.extend(self.on_venue_reports(reports, now_ns))
        return events

    # -- recovery ----------------------------------------------------------------------------

    def restore(self, orders: Iterable[Order], positions: Iterable[Position]) -> int:
        """Take back recorded state after a restart; working orders go back to the venue.
        Returns how many orders are working."""
        for position in positions:
            self._positions[(position.account_id, position.symbol)] = position
        working = 0
        for order in orders:
            self._store(order)
            if order.is_working and order.key is not None:
                rules = self.reference.rules_for(order.key)
                self._venue.restore(order, rules.lot_nanos if rules is not None else 1)
                working += 1
        return working

    def withdraw(self, ref: OrderRef, position: Position | None) -> None:
        """Forget an order whose submission could not be recorded, as if it had never come:
        the venue stops working it and the account's position in its symbol goes back to
        ``position`` (what it was before the submission; None: there was none). The caller
        makes sure nothing else happened to the order or the position since."""
        order = self._orders.pop(ref, None)
        if order is None:
            return
        self._venue.cancel(ref)  # its report changes nothing: the order is gone
        account = self._working.get(order.account_id)
        if account is not None:
            account.pop(order.order_id, None)
            if not account:
                del self._working[order.account_id]
        position_key = (order.account_id, order.spec.symbol)
        if position is None:
            self._positions.pop(position_key, None)
        else:
            self._positions[position_key] = position

    # -- internals ---------------------------------------------------------------------------

    def _fill(self, order: Order, report: Filled, now_ns: int) -> list[TradingEvent]:
        position_key = (order.account_id, order.spec.symbol)
        position = self._positions.get(position_key) or Position(*position_key)
        position = apply_fill(position, order.spec.side, report.quantity_nanos, report.price_nanos)
        if not is_representable(position):
            self._venue.cancel(order.ref)  # the venue forgets it; this is the one report
            cancelled = lifecycle.cancel(order)
            self._store(cancelled)
            text = (
                f"fill of {format_nanos(report.quantity_nanos, min_decimals=0)} at "
                f"{format_nanos(report.price_nanos)} not executed: the position would exceed "
                "the largest value carried"
            )
            return [OrderChanged(cancelled, now_ns, text)]
        filled = lifecycle.fill(order, report.quantity_nanos)
        self._store(filled)
        self._positions[position_key] = position
        return [
            Executed(
                f"{filled.order_id}-{filled.fill_count}",
                filled,
                report.price_nanos,
                report.quantity_nanos,
                now_ns,
                self._venue.name,
            ),
            OrderChanged(filled, now_ns),
            PositionChanged(position, now_ns),
        ]

    def _store(self, order: Order) -> None:
        self._orders[order.ref] = order
        account = self._working.setdefault(order.account_id, {})
        if order.is_working:
            account[order.order_id] = None
        else:
            account.pop(order.order_id, None)
            if not account:
                del self._working[order.account_id]

    def _resolve(self, spec: OrderSpec) -> InstrumentKey | None:
        """The instrument an order is for, when it is known here (quoted, or listed in the
        reference data): on the order's exchange; without one, the exchange that quoted the
        symbol last, else the symbol's only listing."""
        try:
            if spec.exchange:
                key = InstrumentKey(spec.exchange, spec.symbol)
                known = key in self._touches or self.reference.is_listed(key)
                return key if known else None
            quoted = self._quoted_on.get(spec.symbol)
            if quoted is not None:
                return quoted
        except InvalidInstrumentError:
            return None
        listed = [key for key in self.reference.symbols if key.symbol == spec.symbol]
        return listed[0] if len(listed) == 1 else None

    def _market(self, key: InstrumentKey, now_ns: int) -> Market:
        rules = self.reference.rules_for(key)
        is_open = rules is not None and rules.hours.is_open(self.reference.time_zone(key), now_ns)
        return Market(rules, is_open, self._touches.get(key))

    def _check_position_range(self, spec: OrderSpec, account_id: str) -> Rejection | None:
        """INVALID_QUANTITY when some fills of ``spec`` and the account's other working
        orders in the symbol could take the net position beyond the wire's range: the most
        long it can get is with every buy filled and no sell, the most short the reverse. (So
        an order toward flat is refused only if it could go that far past flat.)"""
        position = self._positions.get((account_id, spec.symbol))
        net = position.net_nanos if position is not None else 0
        buying = spec.quantity_nanos if spec.side is Side.BUY else 0
        selling = spec.quantity_nanos - buying
        for order in self.working_orders(account_id):
            if order.spec.symbol == spec.symbol:
                if order.spec.side is Side.BUY:
                    buying += order.remaining_nanos
                else:
                    selling += order.remaining_nanos
        if net + buying <= NANOS_LIMIT and net - selling >= -NANOS_LIMIT:
            return None
        return Rejection(
            RejectReason.INVALID_QUANTITY,
            f"filled with the working orders, the position in {spec.symbol} could exceed the "
            f"largest quantity carried ({format_nanos(NANOS_LIMIT, min_decimals=0)})",
        )

    def _open_notional(self, account_id: str) -> int:
        total = 0
        for order in self.working_orders(account_id):
            touch = self._touches.get(order.key) if order.key is not None else None
            total += order_notional_nanos(order.spec, touch or Touch(), order.remaining_nanos)
        return total


def _unknown_symbol_text(symbol: str) -> str:
    """Symbols are upper case (``AAPL``, ``BTC-USD``): say so when that is all that is wrong."""
    if symbol != symbol.upper():
        return f"{symbol} is not traded here (symbols are upper case: {symbol.upper()})"
    return f"{symbol} is not traded here"


def _refuse_new(
    spec: OrderSpec,
    caller: str,
    reason: RejectReason,
    text: str,
    status: OrderStatus | None = None,
) -> RequestRefused:
    return RequestRefused(
        spec.order_id, caller, RequestKind.NEW_ORDER, Rejection(reason, text), status
    )


def _refuse_cancel(
    order_id: str,
    caller: str,
    reason: RejectReason,
    text: str,
    status: OrderStatus | None = None,
) -> RequestRefused:
    return RequestRefused(order_id, caller, RequestKind.CANCEL, Rejection(reason, text), status)

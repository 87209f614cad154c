"""Order checks before an order reaches the venue. Pure: every input is an argument.

Checks run in this order and the first failure is the answer, so one order gets one reason:

1. fields: quantity positive; LIMIT/STOP_LIMIT need a positive limit price, STOP/STOP_LIMIT a
   positive stop price, MARKET/STOP no limit price, MARKET/LIMIT no stop price (MALFORMED,
   INVALID_QUANTITY, INVALID_PRICE)
2. the instrument: known (UNKNOWN_SYMBOL), open (MARKET_CLOSED), not halted (INSTRUMENT_HALTED)
3. the grid: quantity a multiple of the lot (INVALID_QUANTITY), prices multiples of the tick
   (INVALID_PRICE)
4. the market: a quote to price against (NO_MARKET_DATA); a limit price within the band around
   the reference price (PRICE_OUT_OF_BAND)
5. the account: order notional and open notional within limits (NOTIONAL_LIMIT)

The order-rate limit and duplicate ids are the order book's (they need its state).
"""

from __future__ import annotations

from dataclasses import dataclass

from marketcore.fixed_point import format_nanos
from marketcore.trading.model import OrderSpec, OrderType, Rejection, RejectReason, Touch
from marketcore.trading.rules import InstrumentRules, RiskLimits, notional_nanos


@dataclass(frozen=True, slots=True)
class Market:
    """What the checks know about the instrument at the time of the order."""

    rules: InstrumentRules | None  # None: unknown instrument
    is_open: bool
    touch: Touch | None  # None: no quote yet


def check_fields(spec: OrderSpec) -> Rejection | None:
    kind = spec.order_type
    if spec.quantity_nanos <= 0:
        return Rejection(RejectReason.INVALID_QUANTITY, "quantity must be positive")
    if kind.has_limit and spec.limit_price_nanos <= 0:
        return Rejection(RejectReason.INVALID_PRICE, f"a {kind.name} order needs a limit price")
    if not kind.has_limit and spec.limit_price_nanos != 0:
        return Rejection(RejectReason.MALFORMED, f"a {kind.name} order takes no limit price")
    if kind.has_stop and spec.stop_price_nanos <= 0:
        return Rejection(RejectReason.INVALID_PRICE, f"a {kind.name} order needs a stop price")
    if not kind.has_stop and spec.stop_price_nanos != 0:
        return Rejection(RejectReason.MALFORMED, f"a {kind.name} order takes no stop price")
    return None


def check_order(
    spec: OrderSpec, market: Market, limits: RiskLimits, open_notional_nanos: int
) -> Rejection | None:
    """Why ``spec`` must be rejected, or None. ``open_notional_nanos``: the account's working
    orders' notional before this one."""
    problem = check_fields(spec) or _check_instrument(spec, market)
    if problem is not None:
        return problem
    assert market.rules is not None  # _check_instrument refuses unknown instruments
    touch = market.touch
    return (
        _check_grid(spec, market.rules)
        or _check_price(spec, touch, limits)
        or _check_notional(spec, touch, limits, open_notional_nanos)
    )


def _units(nanos: int) -> str:
    return format_nanos(nanos, min_decimals=0)


def _where(spec: OrderSpec) -> str:
    return f"{spec.symbol} on {spec.exchange}" if spec.exchange else spec.symbol


def _check_instrument(spec: OrderSpec, market: Market) -> Rejection | None:
    if market.rules is None:
        return Rejection(RejectReason.UNKNOWN_SYMBOL, f"{_where(spec)} is not traded here")
    if not market.is_open:
        return Rejection(RejectReason.MARKET_CLOSED, f"{_where(spec)} is outside its trading hours")
    if market.rules.halted:
        return Rejection(RejectReason.INSTRUMENT_HALTED, f"{_where(spec)} is halted")
    return None


def _check_grid(spec: OrderSpec, rules: InstrumentRules) -> Rejection | None:
    if spec.quantity_nanos % rules.lot_nanos:
        return Rejection(
            RejectReason.INVALID_QUANTITY,
            f"quantity {_units(spec.quantity_nanos)} is not a multiple of the lot "
            f"{_units(rules.lot_nanos)}",
        )
    for name, price in (("limit", spec.limit_price_nanos), ("stop", spec.stop_price_nanos)):
        if price and price % rules.tick_nanos:
            return Rejection(
                RejectReason.INVALID_PRICE,
                f"{name} price {_units(price)} is off the tick {_units(rules.tick_nanos)}",
            )
    return None


def _check_price(spec: OrderSpec, touch: Touch | None, limits: RiskLimits) -> Rejection | None:
    reference = touch.reference_nanos() if touch is not None else 0
    if reference <= 0:
        return Rejection(RejectReason.NO_MARKET_DATA, f"no quote for {_where(spec)} yet")
    if spec.limit_price_nanos:
        distance = abs(spec.limit_price_nanos - reference)
        if distance * 10_000 > reference * limits.price_band_bps:
            return Rejection(
                RejectReason.PRICE_OUT_OF_BAND,
                f"limit {_units(spec.limit_price_nanos)} is more than "
                f"{limits.price_band_bps} bps from the reference price {_units(reference)}",
            )
    return None


def _check_notional(
    spec: OrderSpec, touch: Touch | None, limits: RiskLimits, open_notional_nanos: int
) -> Rejection | None:
    notional = order_notional_nanos(spec, touch or Touch())
    if notional > limits.max_order_notional_nanos:
        return Rejection(
            RejectReason.NOTIONAL_LIMIT,
            f"order notional {_units(notional)} exceeds the per-order limit "
            f"{_units(limits.max_order_notional_nanos)}",
        )
    if open_notional_nanos + notional > limits.max_open_notional_nanos:
        return Rejection(
            RejectReason.NOTIONAL_LIMIT,
            f"working orders' notional {_units(open_notional_nanos)} + {_units(notional)} "
            f"exceeds the account limit {_units(limits.max_open_notional_nanos)}",
        )
    return None


def order_notional_nanos(spec: OrderSpec, touch: Touch, quantity_nanos: int | None = None) -> int:
    """The money an order (or ``quantity_nanos`` of it) commits: at its limit price; a stop at
    its stop price; a market order at the far touch, else the reference price."""
    quantity = spec.quantity_nanos if quantity_nanos is None else quantity_nanos
    if spec.order_type.has_limit:
        price = spec.limit_price_nanos
    elif spec.order_type is OrderType.STOP:
        price = spec.stop_price_nanos
    else:
        price = touch.far_side(spec.side)[0] or touch.reference_nanos()
    return notional_nanos(quantity, price)

"""The simulated venue: fills at the far touch, limits when marketable, displayed size shared
in arrival order and rounded to the lot, stops from the last trade, IOC, cancel and expiry."""

from __future__ import annotations

from typing import Any

import pytest

from marketcore.instruments import InstrumentKey
from marketcore.trading import lifecycle
from marketcore.trading.model import (
    Order,
    OrderStatus,
    OrderType,
    Rejection,
    RejectReason,
    Side,
    TimeInForce,
)
from marketcore.trading.model import Touch as T
from marketcore.trading.simulated_venue import SimulatedVenue
from marketcore.trading.venue import CancelRefused, Ended, Filled, StopTriggered
from tests.unit.trading_builders import UNIT, accepted, order_spec

KEY = InstrumentKey("NASDAQ", "AAPL")
OTHER = InstrumentKey("NYSE", "IBM")
QUOTE = T(
    bid_nanos=99 * UNIT, ask_nanos=101 * UNIT, bid_size_nanos=500 * UNIT, ask_size_nanos=300 * UNIT
)


def ref(order_id: str) -> tuple[str, str]:
    """How the venue names the order ``order_id`` of the builders' account."""
    return ("acct", order_id)


def order(order_id: str, *args: Any, key: InstrumentKey = KEY, **fields: Any) -> Order:
    return accepted(order_spec(order_id, *args, symbol=key.symbol, exchange=key.exchange, **fields))


def quoted_venue(touch: T = QUOTE, key: InstrumentKey = KEY) -> SimulatedVenue:
    venue = SimulatedVenue()
    assert venue.on_touch(key, touch) == []
    return venue


def test_market_orders_take_the_far_touch() -> None:
    venue = quoted_venue()
    assert venue.place(order("b"), UNIT) == [Filled(ref("b"), 101 * UNIT, 100 * UNIT)]
    assert venue.place(order("s", Side.SELL), UNIT) == [Filled(ref("s"), 99 * UNIT, 100 * UNIT)]
    assert len(venue) == 0


def test_an_order_without_a_quote_waits_for_one() -> None:
    venue = SimulatedVenue()
    assert venue.place(order("b"), UNIT) == []
    assert len(venue) == 1
    assert venue.on_touch(OTHER, QUOTE) == []  # another instrument's quote does not fill it
    assert venue.on_touch(KEY, QUOTE) == [Filled(ref("b"), 101 * UNIT, 100 * UNIT)]


def test_a_limit_fills_when_marketable_at_the_touch_not_the_limit() -> None:
    venue = quoted_venue()
    assert venue.place(order("b", limit=102 * UNIT, order_type=OrderType.LIMIT), UNIT) == [
        Filled(ref("b"), 101 * UNIT, 100 * UNIT)
    ]
    assert venue.place(order("rest", limit=100 * UNIT, order_type=OrderType.LIMIT), UNIT) == []
    # the market comes to it: the ask at the limit is marketable
    moved = T(99 * UNIT, 100 * UNIT, 500 * UNIT, 300 * UNIT)
    assert venue.on_touch(KEY, moved) == [Filled(ref("rest"), 100 * UNIT, 100 * UNIT)]


def test_a_sell_limit_needs_the_bid_at_or_above_it() -> None:
    venue = quoted_venue()
    assert venue.place(order("s", Side.SELL, OrderType.LIMIT, limit=100 * UNIT), UNIT) == []
    assert venue.on_touch(KEY, T(100 * UNIT, 101 * UNIT)) == [
        Filled(ref("s"), 100 * UNIT, 100 * UNIT)
    ]


def test_displayed_size_is_shared_in_arrival_order_and_renewed_by_each_quote() -> None:
    venue = SimulatedVenue()
    venue.place(order("first", quantity=200 * UNIT), UNIT)
    venue.place(order("second", quantity=200 * UNIT), UNIT)
    assert venue.on_touch(KEY, QUOTE) == [
        Filled(ref("first"), 101 * UNIT, 200 * UNIT),
        Filled(ref("second"), 101 * UNIT, 100 * UNIT),  # 300 shown: 100 left for the second
    ]
    assert venue.on_touch(KEY, QUOTE) == [Filled(ref("second"), 101 * UNIT, 100 * UNIT)]


def test_a_partial_fill_is_rounded_down_to_the_lot() -> None:
    venue = quoted_venue(T(99 * UNIT, 101 * UNIT, 0, 150_500_000_000))  # 150.5 shown
    assert venue.place(order("b", quantity=200 * UNIT), UNIT) == [
        Filled(ref("b"), 101 * UNIT, 150 * UNIT)
    ]
    # less than a lot shown: nothing fills
    assert venue.on_touch(KEY, T(99 * UNIT, 101 * UNIT, 0, 500_000_000)) == []


def test_a_quote_without_size_is_deep_enough() -> None:
    venue = quoted_venue(T(99 * UNIT, 101 * UNIT))
    assert venue.place(order("b", quantity=1_000_000 * UNIT), UNIT) == [
        Filled(ref("b"), 101 * UNIT, 1_000_000 * UNIT)
    ]


def test_a_one_sided_quote_fills_only_its_side() -> None:
    venue = quoted_venue(T(bid_nanos=99 * UNIT))
    assert venue.place(order("b"), UNIT) == []  # no ask to buy from
    assert venue.place(order("s", Side.SELL), UNIT) == [Filled(ref("s"), 99 * UNIT, 100 * UNIT)]


def test_stops_trigger_from_the_last_trade_then_execute() -> None:
    venue = quoted_venue(T(99 * UNIT, 101 * UNIT, last_nanos=100 * UNIT))
    buy_stop = order("bs", order_type=OrderType.STOP, stop=105 * UNIT)
    sell_stop = order("ss", Side.SELL, OrderType.STOP, stop=95 * UNIT)
    assert venue.place(buy_stop, UNIT) == []
    assert venue.place(sell_stop, UNIT) == []
    # the quote moves past the stop but the last trade does not: no trigger
    assert venue.on_touch(KEY, T(106 * UNIT, 107 * UNIT, last_nanos=100 * UNIT)) == []
    assert venue.on_touch(KEY, T(104 * UNIT, 106 * UNIT, last_nanos=105 * UNIT)) == [
        StopTriggered(ref("bs")),
        Filled(ref("bs"), 106 * UNIT, 100 * UNIT),
    ]
    assert venue.on_touch(KEY, T(94 * UNIT, 96 * UNIT, last_nanos=94 * UNIT)) == [
        StopTriggered(ref("ss")),
        Filled(ref("ss"), 94 * UNIT, 100 * UNIT),
    ]


def test_a_stop_already_reached_triggers_on_arrival() -> None:
    venue = quoted_venue(T(99 * UNIT, 101 * UNIT, last_nanos=100 * UNIT))
    assert venue.place(order("bs", order_type=OrderType.STOP, stop=100 * UNIT), UNIT) == [
        StopTriggered(ref("bs")),
        Filled(ref("bs"), 101 * UNIT, 100 * UNIT),
    ]


def test_a_triggered_stop_limit_works_as_a_limit() -> None:
    venue = quoted_venue(T(99 * UNIT, 101 * UNIT, last_nanos=100 * UNIT))
    stop_limit = order("sl", order_type=OrderType.STOP_LIMIT, stop=102 * UNIT, limit=103 * UNIT)
    assert venue.place(stop_limit, UNIT) == []
    # triggers, but the ask is above the limit: it rests
    assert venue.on_touch(KEY, T(103 * UNIT, 104 * UNIT, last_nanos=102 * UNIT)) == [
        StopTriggered(ref("sl"))
    ]
    assert venue.on_touch(KEY, T(102 * UNIT, 103 * UNIT, last_nanos=102 * UNIT)) == [
        Filled(ref("sl"), 103 * UNIT, 100 * UNIT)
    ]


def test_ioc_gets_one_chance_on_arrival() -> None:
    venue = quoted_venue()
    ioc = order("i", quantity=400 * UNIT, tif=TimeInForce.IOC)
    assert venue.place(ioc, UNIT) == [
        Filled(ref("i"), 101 * UNIT, 300 * UNIT),
        Ended(ref("i"), OrderStatus.CANCELLED, "IOC: remainder not filled on arrival"),
    ]
    complete = order("j", Side.SELL, quantity=100 * UNIT, tif=TimeInForce.IOC)
    assert venue.place(complete, UNIT) == [
        Filled(ref("j"), 99 * UNIT, 100 * UNIT)
    ]  # nothing left to cancel
    assert len(venue) == 0


def test_cancel_and_expire() -> None:
    venue = SimulatedVenue()
    venue.place(order("a"), UNIT)
    venue.place(order("b"), UNIT)
    assert venue.cancel(ref("a")) == [
        Ended(ref("a"), OrderStatus.CANCELLED, "cancelled on request")
    ]
    assert venue.cancel(ref("a")) == [CancelRefused(ref("a"), "not working at the venue")]
    assert venue.expire(ref("b"), "end of day") == [
        Ended(ref("b"), OrderStatus.EXPIRED, "end of day")
    ]
    assert venue.expire(ref("b"), "end of day") == []
    assert venue.on_touch(KEY, QUOTE) == []


def test_restore_takes_back_the_remainder_and_trigger_state() -> None:
    partly = lifecycle.fill(order("p", quantity=100 * UNIT), 60 * UNIT)
    triggered = lifecycle.trigger_stop(
        order("s", order_type=OrderType.STOP_LIMIT, stop=150 * UNIT, limit=102 * UNIT)
    )
    venue = SimulatedVenue()
    venue.restore(partly, UNIT)
    venue.restore(triggered, UNIT)
    assert len(venue) == 2
    # the stop does not need its (far away) stop price again: it was triggered before
    assert venue.on_touch(KEY, QUOTE) == [
        Filled(ref("p"), 101 * UNIT, 40 * UNIT),
        Filled(ref("s"), 101 * UNIT, 100 * UNIT),
    ]


def test_an_order_without_an_instrument_cannot_work() -> None:
    rejected = lifecycle.reject(order("x").spec, Rejection(RejectReason.UNKNOWN_SYMBOL, "x"))
    with pytest.raises(ValueError, match="without an instrument"):
        SimulatedVenue().place(rejected, UNIT)

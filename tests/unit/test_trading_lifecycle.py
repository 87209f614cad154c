"""The order state machine: legal changes, illegal ones refused, and its invariants under any
sequence of changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcore.instruments import InstrumentKey
from marketcore.trading import lifecycle
from marketcore.trading.lifecycle import IllegalTransition
from marketcore.trading.model import (
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    Rejection,
    RejectReason,
)
from tests.unit.trading_builders import accepted, order_spec

KEY = InstrumentKey("NASDAQ", "AAPL")
SHARE = 1_000_000_000  # nanos


def spec(quantity: int = 100 * SHARE, order_type: OrderType = OrderType.MARKET) -> OrderSpec:
    stop = 190 * SHARE if order_type.has_stop else 0
    limit = 191 * SHARE if order_type.has_limit else 0
    return order_spec(order_type=order_type, quantity=quantity, limit=limit, stop=stop)


def new_order(quantity: int = 100 * SHARE, order_type: OrderType = OrderType.MARKET) -> Order:
    return accepted(spec(quantity, order_type))


def test_accept_starts_new_at_sequence_one() -> None:
    order = new_order()
    assert (order.status, order.event_sequence, order.filled_nanos) == (OrderStatus.NEW, 1, 0)
    assert order.remaining_nanos == 100 * SHARE
    assert order.trade_date == "2026-11-20"
    assert order.is_working


def test_reject_is_final_with_its_reason() -> None:
    rejection = Rejection(RejectReason.UNKNOWN_SYMBOL, "AAPL is not traded here")
    order = lifecycle.reject(spec(), rejection)
    assert order.status is OrderStatus.REJECTED
    assert order.reject == rejection
    assert order.key is None
    assert order.remaining_nanos == 0
    assert not order.is_working


def test_partial_then_full_fill() -> None:
    partly = lifecycle.fill(new_order(), 40 * SHARE)
    assert (partly.status, partly.filled_nanos, partly.fill_count) == (
        OrderStatus.PARTIALLY_FILLED,
        40 * SHARE,
        1,
    )
    assert partly.remaining_nanos == 60 * SHARE
    done = lifecycle.fill(partly, 60 * SHARE)
    assert (done.status, done.filled_nanos, done.fill_count, done.event_sequence) == (
        OrderStatus.FILLED,
        100 * SHARE,
        2,
        3,
    )
    assert done.remaining_nanos == 0


@pytest.mark.parametrize("quantity", [0, -1, 100 * SHARE + 1])
def test_fill_outside_the_remainder_is_illegal(quantity: int) -> None:
    with pytest.raises(IllegalTransition):
        lifecycle.fill(new_order(), quantity)


def test_cancel_after_a_partial_fill_keeps_the_filled_quantity() -> None:
    cancelled = lifecycle.cancel(lifecycle.fill(new_order(), 30 * SHARE))
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.filled_nanos == 30 * SHARE
    assert cancelled.remaining_nanos == 0


@pytest.mark.parametrize(
    "finish",
    [
        lambda o: lifecycle.fill(o, o.remaining_nanos),
        lifecycle.cancel,
        lifecycle.expire,
        lambda o: lifecycle.reject(o.spec, Rejection(RejectReason.MALFORMED, "x")),
    ],
    ids=["filled", "cancelled", "expired", "rejected"],
)
@pytest.mark.parametrize(
    "change",
    [lambda o: lifecycle.fill(o, 1), lifecycle.cancel, lifecycle.expire, lifecycle.trigger_stop],
    ids=["fill", "cancel", "expire", "trigger"],
)
def test_a_final_order_never_changes(finish, change) -> None:  # type: ignore[no-untyped-def]
    final = finish(new_order(order_type=OrderType.STOP))
    assert final.status.is_final
    with pytest.raises(IllegalTransition):
        change(final)


def test_trigger_stop_once_without_a_status_change() -> None:
    triggered = lifecycle.trigger_stop(new_order(order_type=OrderType.STOP_LIMIT))
    assert triggered.stop_triggered
    assert (triggered.status, triggered.event_sequence) == (OrderStatus.NEW, 2)
    with pytest.raises(IllegalTransition):
        lifecycle.trigger_stop(triggered)


def test_only_stop_orders_trigger() -> None:
    with pytest.raises(IllegalTransition):
        lifecycle.trigger_stop(new_order(order_type=OrderType.LIMIT))


_CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), st.integers(min_value=-5, max_value=120)),
        st.tuples(st.sampled_from(["cancel", "expire", "trigger"]), st.just(0)),
    ),
    max_size=30,
)


@given(changes=_CHANGES, order_type=st.sampled_from(list(OrderType)))
def test_any_sequence_of_changes_keeps_the_invariants(
    changes: list[tuple[str, int]], order_type: OrderType
) -> None:
    order = new_order(100 * SHARE, order_type)
    for change, lots in changes:
        before = order
        try:
            if change == "fill":
                order = lifecycle.fill(order, lots * SHARE)
            elif change == "cancel":
                order = lifecycle.cancel(order)
            elif change == "expire":
                order = lifecycle.expire(order)
            else:
                order = lifecycle.trigger_stop(order)
        except IllegalTransition:
            assert order is before  # a refused change leaves the order as it was
            continue
        assert not before.status.is_final  # only a working order changes
        assert order.event_sequence == before.event_sequence + 1
        assert before.filled_nanos <= order.filled_nanos <= order.spec.quantity_nanos
        assert (order.status is OrderStatus.FILLED) == (
            order.filled_nanos == order.spec.quantity_nanos
        )
        if order.status is OrderStatus.PARTIALLY_FILLED:
            assert 0 < order.filled_nanos < order.spec.quantity_nanos
        assert order.stop_triggered <= order_type.has_stop

"""The order manager never makes a position the wire cannot carry (``NANOS_LIMIT``: int64
units at 1e-9, +-9223372036854775807.999999999).

- On submission: an order that, with the account's other working orders in the symbol, could
  take the net position beyond the range is rejected INVALID_QUANTITY; an order that can only
  bring a large position back toward flat is not.
- On a fill: a fill whose position (net, cost rounded to nanos, realized P&L) would not fit is
  not executed; the order is cancelled with the reason, the venue stops working it, and the
  trading log (read back by recovery) agrees with the order book.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from financial.marketdata.v2.orders_pb2 import OrderStatusUpdate
from gateway.fakes import MemoryTradingLog
from gateway.trading import convert
from gateway.trading.convert import Record, TradingTopics
from marketcore.fixed_point import NANOS_LIMIT, NANOS_PER_UNIT
from marketcore.instruments import InstrumentKey
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
    RejectReason,
    Side,
    Touch,
)
from marketcore.trading.order_manager import OrderManager, Submitted
from marketcore.trading.positions import Position, is_representable
from marketcore.trading.rules import ALWAYS_OPEN, InstrumentRules, ReferenceData, RiskLimits
from marketcore.trading.simulated_venue import SimulatedVenue
from tests.unit.trading_builders import order_spec

UNIT = NANOS_PER_UNIT
KEY = InstrumentKey("KRAKEN", "BIG-XBT")
NOW_NS = int(datetime(2026, 11, 20, 17, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
LIMIT_TEXT = "9223372036854775807.999999999"  # NANOS_LIMIT, as the texts print it
REFERENCE = ReferenceData({"KRAKEN": InstrumentRules(1, 1, ALWAYS_OPEN)})  # a nano grid
# no notional limit gets in the way: only the range guard decides
UNLIMITED = RiskLimits(
    max_order_notional_nanos=10**60,
    max_open_notional_nanos=10**60,
    orders_per_second=1e9,
    order_burst=10**9,
    price_band_bps=10**9,
)
TOPICS = TradingTopics("orders", "trades", "positions")
# 5e18 units: one such order fits, two of them do not (the limit is 9.22e18)
HALF = 5 * 10**18 * UNIT


def manager(venue: SimulatedVenue | None = None) -> OrderManager:
    # (not ``venue or ...``: an empty venue is falsy, it has a length)
    return OrderManager(venue if venue is not None else SimulatedVenue(), REFERENCE, UNLIMITED)


def spec(
    order_id: str,
    side: Side,
    quantity: int,
    limit: int = 0,
    order_type: OrderType | None = None,
) -> OrderSpec:
    kind = order_type or (OrderType.LIMIT if limit else OrderType.MARKET)
    return order_spec(
        order_id, side, kind, quantity, limit, symbol=KEY.symbol, exchange=KEY.exchange
    )


def submit(book: OrderManager, order: OrderSpec) -> Submitted:
    result = book.submit(order, order.account_id, NOW_NS)
    assert isinstance(result, Submitted), result
    return result


def reject_of(result: Submitted) -> tuple[RejectReason, str] | None:
    reject = result.order.reject
    return None if reject is None else (reject.reason, reject.detail)


GUARD_TEXT = (
    "filled with the working orders, the position in BIG-XBT could exceed the largest "
    f"quantity carried ({LIMIT_TEXT})"
)


# -- on submission ----------------------------------------------------------------------------


def test_working_orders_that_could_together_exceed_the_range_are_refused() -> None:
    book = manager()
    book.on_tick(KEY, Touch(UNIT, 2 * UNIT), NOW_NS)
    first = submit(book, spec("b-1", Side.BUY, HALF, limit=UNIT // 2))  # rests below the ask
    assert first.order.status is OrderStatus.NEW
    second = submit(book, spec("b-2", Side.BUY, HALF, limit=UNIT // 2))
    assert second.order.status is OrderStatus.REJECTED
    assert reject_of(second) == (RejectReason.INVALID_QUANTITY, GUARD_TEXT)
    # sells are the other way: they cannot take the position beyond the long side
    assert submit(book, spec("s-1", Side.SELL, HALF, limit=3 * UNIT)).order.reject is None
    # once the first buy is cancelled, the second fits
    book.cancel("b-1", "acct", NOW_NS)
    assert submit(book, spec("b-3", Side.BUY, HALF, limit=UNIT // 2)).order.reject is None


def test_the_largest_position_carried_is_allowed_and_one_nano_more_is_not() -> None:
    book = manager()
    book.on_tick(KEY, Touch(UNIT, 2 * UNIT), NOW_NS)
    whole = submit(book, spec("all", Side.BUY, NANOS_LIMIT, limit=UNIT // 2))
    assert whole.order.reject is None
    one_more = submit(book, spec("nano", Side.BUY, 1, limit=UNIT // 2))
    assert reject_of(one_more) == (RejectReason.INVALID_QUANTITY, GUARD_TEXT)
    # the short side has the same room
    short = submit(book, spec("short", Side.SELL, NANOS_LIMIT, limit=3 * UNIT))
    assert short.order.reject is None
    assert reject_of(submit(book, spec("more", Side.SELL, 1, limit=3 * UNIT))) == (
        RejectReason.INVALID_QUANTITY,
        GUARD_TEXT,
    )


def test_an_order_that_reduces_a_large_position_is_accepted() -> None:
    """Long 9e18 (recovered): selling part of it can only bring it toward flat, whatever its
    size; buying more than the room left cannot be allowed."""
    book = manager()
    large = Position("acct", KEY.symbol, net_nanos=9 * 10**18 * UNIT, cost_exact=9 * 10**18 * UNIT)
    book.restore([], [large])
    book.on_tick(KEY, Touch(UNIT, UNIT + 1), NOW_NS)
    sold = submit(book, spec("reduce", Side.SELL, 10**18 * UNIT))
    assert sold.order.status is OrderStatus.FILLED
    after = book.position("acct", KEY.symbol)
    assert after is not None
    assert after.net_nanos == 8 * 10**18 * UNIT
    room = NANOS_LIMIT - after.net_nanos
    assert reject_of(submit(book, spec("too-much", Side.BUY, room + 1))) == (
        RejectReason.INVALID_QUANTITY,
        GUARD_TEXT,
    )
    assert submit(book, spec("exactly", Side.BUY, room)).order.status is OrderStatus.FILLED
    full = book.position("acct", KEY.symbol)
    assert full is not None
    assert full.net_nanos == NANOS_LIMIT


# -- on a fill --------------------------------------------------------------------------------


def _record(events: list[TradingEvent]) -> list[Record]:
    """What the gateway appends to the trading log for ``events`` (raises if it cannot)."""
    return convert.records(events, TOPICS)


def _recovered(records: list[Record]) -> tuple[dict[str, Order], list[Position]]:
    state = MemoryTradingLog(records, TOPICS).read_state(1.0)
    return {order.order_id: order for order in state.orders}, state.positions


def test_a_fill_whose_cost_would_exceed_the_range_is_not_executed() -> None:
    venue = SimulatedVenue()
    book = manager(venue)
    book.on_tick(KEY, Touch(UNIT, 2 * UNIT), NOW_NS)
    # 5e18 units fit, but at 2 (the ask) they cost 1e19, beyond the range
    result = submit(book, spec("costly", Side.BUY, HALF))
    assert [type(e) for e in result.events] == [OrderChanged, OrderChanged]
    new, cancelled = result.events
    assert isinstance(new, OrderChanged)
    assert isinstance(cancelled, OrderChanged)
    assert (new.order.status, new.order.event_sequence) == (OrderStatus.NEW, 1)
    assert (cancelled.order.status, cancelled.order.event_sequence) == (OrderStatus.CANCELLED, 2)
    assert cancelled.order.filled_nanos == 0
    assert cancelled.text == (
        "fill of 5000000000000000000 at 2.00 not executed: the position would exceed the "
        "largest value carried"
    )
    assert book.position("acct", KEY.symbol) is None
    assert book.working_orders() == []
    # the venue forgot it: a new quote executes nothing, and the order cannot be cancelled
    assert len(venue) == 0
    assert book.on_tick(KEY, Touch(UNIT, 2 * UNIT), NOW_NS) == []
    refused = book.cancel("costly", "acct", NOW_NS)
    assert isinstance(refused, RequestRefused)
    assert (refused.rejection.reason, refused.order_status) == (
        RejectReason.TOO_LATE_TO_CANCEL,
        OrderStatus.CANCELLED,
    )
    # the log has NEW then CANCELLED with the reason; recovery sees a finished order
    records = _record(result.events)
    updates = [OrderStatusUpdate.FromString(r.value) for r in records]
    assert [(OrderStatus(u.status), u.event_sequence, u.text) for u in updates] == [
        (OrderStatus.NEW, 1, ""),
        (OrderStatus.CANCELLED, 2, cancelled.text),
    ]
    orders, positions = _recovered(records)
    assert orders == {"costly": book.order("acct", "costly")}
    assert positions == []
    restarted = manager()
    assert restarted.restore(list(orders.values()), []) == 0  # nothing goes back to work


def test_a_partly_filled_order_is_cancelled_when_a_later_fill_would_not_fit() -> None:
    """A resting buy of 6e18 fills 1e18 at 1 (cost 1e18); the next quote would fill 4.5e18
    more at 2 (cost 1e19 in all): that fill is not executed, the first one stands, and the
    venue no longer works the 0.5e18 it still had."""
    venue = SimulatedVenue()
    book = manager(venue)
    events: list[TradingEvent] = list(book.on_tick(KEY, Touch(UNIT // 2, 3 * UNIT), NOW_NS))
    placed = submit(book, spec("rest", Side.BUY, 6 * 10**18 * UNIT, limit=2 * UNIT))
    events += placed.events
    events += book.on_tick(KEY, Touch(UNIT // 2, UNIT, 0, 10**18 * UNIT), NOW_NS)
    events += book.on_tick(KEY, Touch(UNIT // 2, 2 * UNIT, 0, 45 * 10**17 * UNIT), NOW_NS)
    order = book.order("acct", "rest")
    assert order is not None
    assert (order.status, order.filled_nanos, order.event_sequence) == (
        OrderStatus.CANCELLED,
        10**18 * UNIT,
        3,
    )
    changes = [e for e in events if isinstance(e, OrderChanged)]
    assert [(c.order.status, c.order.event_sequence) for c in changes] == [
        (OrderStatus.NEW, 1),
        (OrderStatus.PARTIALLY_FILLED, 2),
        (OrderStatus.CANCELLED, 3),
    ]
    assert changes[-1].text == (
        "fill of 4500000000000000000 at 2.00 not executed: the position would exceed the "
        "largest value carried"
    )
    assert [type(e) for e in events].count(Executed) == 1
    position = book.position("acct", KEY.symbol)
    assert position is not None
    assert (position.net_nanos, position.cost_nanos, position.sequence) == (
        10**18 * UNIT,
        10**18 * UNIT,
        1,
    )
    assert len(venue) == 0  # the venue forgot the rest: the next quote fills nothing
    assert book.on_tick(KEY, Touch(UNIT // 2, UNIT), NOW_NS) == []
    orders, positions = _recovered(_record(events))
    assert orders == {"rest": order}
    assert positions == [position]


def test_a_fill_whose_realized_pnl_would_exceed_the_range_is_not_executed() -> None:
    """Long 9e18 bought at a nano each; selling it at 2 would realize 1.8e19."""
    book = manager()
    # cost 9e9 units, in 1e-18
    bought = Position("acct", KEY.symbol, net_nanos=9 * 10**18 * UNIT, cost_exact=9 * 10**27)
    book.restore([], [bought])
    book.on_tick(KEY, Touch(2 * UNIT, 3 * UNIT), NOW_NS)
    result = submit(book, spec("sell-all", Side.SELL, 9 * 10**18 * UNIT))
    assert result.order.status is OrderStatus.CANCELLED
    assert result.order.filled_nanos == 0
    assert book.position("acct", KEY.symbol) == bought
    # a smaller sale realizes what fits: 4e18 x (2 - 0.000000001)
    part = submit(book, spec("sell-part", Side.SELL, 4 * 10**18 * UNIT))
    assert part.order.status is OrderStatus.FILLED
    after = book.position("acct", KEY.symbol)
    assert after is not None
    assert after.realized_pnl_nanos == 4 * 10**18 * (2 * UNIT - 1)


# -- anything -------------------------------------------------------------------------------

_HUGE = st.one_of(
    st.integers(min_value=1, max_value=NANOS_LIMIT),
    st.sampled_from([HALF, NANOS_LIMIT, NANOS_LIMIT // 2 + 1, 10**18 * UNIT]),
)
_PRICE = st.one_of(
    st.integers(min_value=1, max_value=10**10 * UNIT), st.sampled_from([1, UNIT, 2 * UNIT])
)
_REQUESTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.sampled_from(list(Side)),
            st.sampled_from([OrderType.MARKET, OrderType.LIMIT]),
            _HUGE,
            _PRICE,
        ),
        st.tuples(st.just("tick"), _PRICE, st.one_of(st.just(0), _HUGE)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(requests=_REQUESTS)
def test_any_orders_at_any_size_and_price_stay_recordable_and_recoverable(
    requests: list[tuple],  # type: ignore[type-arg]
) -> None:
    venue = SimulatedVenue()
    book = manager(venue)
    records: list[Record] = []
    placed: list[str] = []
    assert book.on_tick(KEY, Touch(UNIT, UNIT + 1), NOW_NS) == []
    for request in requests:
        events: list[TradingEvent]
        if request[0] == "order":
            _, side, kind, quantity, price = request
            order_id = f"o{len(placed)}"
            placed.append(order_id)
            limit = price if kind is OrderType.LIMIT else 0
            events = submit(book, spec(order_id, side, quantity, limit, kind)).events
        elif request[0] == "tick":
            _, bid, size = request
            events = book.on_tick(KEY, Touch(bid, bid + 1, size, size, bid), NOW_NS)
        else:
            if not placed:
                continue
            outcome = book.cancel(placed[request[1] % len(placed)], "acct", NOW_NS)
            events = outcome if isinstance(outcome, list) else []
        for event in events:
            if isinstance(event, PositionChanged):
                assert is_representable(event.position)
        records += _record(events)  # raises DecimalRangeError if anything were unrecordable
    # the log, read back as recovery does, is the order book
    orders, positions = _recovered(records)
    assert orders == {order_id: book.order("acct", order_id) for order_id in placed}
    assert sorted(positions, key=repr) == sorted(book.positions("acct"), key=repr)
    # one order's events are numbered 1, 2, 3... in the log, and the venue works exactly the
    # orders the book says are working
    sequences: dict[str, list[int]] = {}
    for record in records:
        if record.topic == TOPICS.orders:
            update = OrderStatusUpdate.FromString(record.value)
            sequences.setdefault(update.order_id, []).append(update.event_sequence)
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in sequences.values())
    assert len(venue) == len(book.working_orders())
    restarted = manager()
    assert restarted.restore(list(orders.values()), positions) == len(book.working_orders())


@pytest.mark.parametrize("net", [NANOS_LIMIT, -NANOS_LIMIT])
def test_a_position_at_the_edge_is_recorded_and_recovered_exactly(net: int) -> None:
    edge = Position("acct", KEY.symbol, net_nanos=net, cost_exact=net, sequence=7)
    [record] = _record([PositionChanged(edge, NOW_NS)])
    _, positions = _recovered([record])
    assert positions == [edge]

"""The order manager over the simulated venue: every order's one fate, its events in order,
idempotency, accounts, cancel against fill, expiry and recovery; and, for any sequence of
requests and quotes, the invariants that keep money right."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from marketcore.instruments import InstrumentKey
from marketcore.trading.events import (
    Executed,
    OrderChanged,
    PositionChanged,
    RequestKind,
    RequestRefused,
    TradingEvent,
)
from marketcore.trading.model import (
    OrderSpec,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    Touch,
)
from marketcore.trading.order_manager import OrderManager, Submitted
from marketcore.trading.rules import (
    ALWAYS_OPEN,
    US_EQUITY_HOURS,
    InstrumentRules,
    ReferenceData,
    RiskLimits,
)
from marketcore.trading.simulated_venue import SimulatedVenue
from marketcore.trading.venue import Ended, Filled
from tests.unit.trading_builders import UNIT, order_spec

CENT = UNIT // 100
NASDAQ_AAPL = InstrumentKey("NASDAQ", "AAPL")
NYSE_AAPL = InstrumentKey("NYSE", "AAPL")
LISTED = InstrumentKey("NASDAQ", "NEWCO")
FRIDAY_MIDDAY = int(datetime(2026, 11, 20, 17, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
QUOTE = Touch(99 * UNIT, 101 * UNIT, 500 * UNIT, 300 * UNIT, 100 * UNIT)
REFERENCE = ReferenceData(
    exchanges={
        "NASDAQ": InstrumentRules(CENT, UNIT, ALWAYS_OPEN),
        "NYSE": InstrumentRules(CENT, UNIT, ALWAYS_OPEN),
    },
    symbols={LISTED: InstrumentRules(CENT, UNIT, ALWAYS_OPEN)},
)


def manager(reference: ReferenceData = REFERENCE, limits: RiskLimits | None = None) -> OrderManager:
    return OrderManager(SimulatedVenue(), reference, limits or RiskLimits(price_band_bps=2_000))


def quoted(touch: Touch = QUOTE, **kwargs: object) -> OrderManager:
    book = manager(**kwargs)  # type: ignore[arg-type]
    assert book.on_tick(NASDAQ_AAPL, touch, FRIDAY_MIDDAY) == []
    return book


def spec(order_id: str, *args: Any, **fields: Any) -> OrderSpec:
    """An order spec of Alice's unless told otherwise."""
    return order_spec(order_id, *args, **{"account": "alice", **fields})


def submit(book: OrderManager, order: OrderSpec, caller: str | None = None) -> Submitted:
    result = book.submit(order, caller or order.account_id, FRIDAY_MIDDAY)
    assert isinstance(result, Submitted), result
    return result


def statuses(events: list[TradingEvent]) -> list[tuple[str, OrderStatus]]:
    return [(e.order.order_id, e.order.status) for e in events if isinstance(e, OrderChanged)]


def test_a_market_order_fills_with_its_events_in_order() -> None:
    book = quoted()
    result = submit(book, spec("m"))
    assert not result.duplicate
    assert result.order.status is OrderStatus.FILLED
    new, executed, filled, position = result.events
    assert isinstance(new, OrderChanged)
    assert (new.order.status, new.order.event_sequence) == (OrderStatus.NEW, 1)
    assert isinstance(executed, Executed)
    assert (executed.execution_id, executed.price_nanos, executed.quantity_nanos) == (
        "m-1",
        101 * UNIT,
        100 * UNIT,
    )
    assert executed.venue == "SIM"
    assert isinstance(filled, OrderChanged)
    assert filled.order.status is OrderStatus.FILLED
    assert filled.order.event_sequence == executed.order.event_sequence == 2
    assert isinstance(position, PositionChanged)
    assert (position.position.net_nanos, position.position.cost_nanos) == (
        100 * UNIT,
        10_100 * UNIT,
    )
    assert book.working_orders() == []
    assert book.position("alice", "AAPL") == position.position


def test_a_resting_limit_fills_in_parts_as_quotes_arrive() -> None:
    book = quoted()
    result = submit(
        book, spec("l", order_type=OrderType.LIMIT, quantity=500 * UNIT, limit=100 * UNIT)
    )
    assert statuses(result.events) == [("l", OrderStatus.NEW)]
    assert book.working_orders("alice") == [result.order]
    first = book.on_tick(NASDAQ_AAPL, Touch(99 * UNIT, 100 * UNIT, 0, 200 * UNIT), FRIDAY_MIDDAY)
    assert statuses(first) == [("l", OrderStatus.PARTIALLY_FILLED)]
    second = book.on_tick(
        NASDAQ_AAPL, Touch(99 * UNIT, 99_500_000_000, 0, 400 * UNIT), FRIDAY_MIDDAY
    )
    assert statuses(second) == [("l", OrderStatus.FILLED)]
    fills = [e for e in first + second if isinstance(e, Executed)]
    assert [(f.execution_id, f.price_nanos, f.quantity_nanos) for f in fills] == [
        ("l-1", 100 * UNIT, 200 * UNIT),
        ("l-2", 99_500_000_000, 300 * UNIT),
    ]
    position = book.position("alice", "AAPL")
    assert position is not None
    assert position.net_nanos == 500 * UNIT
    assert position.sequence == 2


def test_a_stop_triggers_from_the_last_trade_as_its_own_event() -> None:
    book = quoted()
    result = submit(book, spec("s", Side.SELL, OrderType.STOP, stop=95 * UNIT))
    assert result.order.status is OrderStatus.NEW
    events = book.on_tick(
        NASDAQ_AAPL, Touch(93 * UNIT, 94 * UNIT, last_nanos=94 * UNIT), FRIDAY_MIDDAY
    )
    changes = [e for e in events if isinstance(e, OrderChanged)]
    assert [(c.order.stop_triggered, c.order.status, c.text) for c in changes] == [
        (True, OrderStatus.NEW, "stop triggered"),
        (True, OrderStatus.FILLED, ""),
    ]
    assert [c.order.event_sequence for c in changes] == [2, 3]


def test_the_last_trade_carries_over_quotes_without_one() -> None:
    book = quoted()
    book.on_tick(NASDAQ_AAPL, Touch(99 * UNIT, 101 * UNIT), FRIDAY_MIDDAY)
    touch = book.touch(NASDAQ_AAPL)
    assert touch is not None
    assert touch.last_nanos == 100 * UNIT


def test_a_resubmission_creates_nothing_and_gets_the_first_outcome() -> None:
    book = quoted()
    first = submit(book, spec("m"))
    again = submit(book, spec("m"))
    assert again.duplicate
    assert again.events == []
    assert again.order == first.order
    assert len(book) == 1


def test_a_rejected_order_keeps_its_id() -> None:
    book = quoted()
    rejected = submit(book, spec("r", quantity=100_500_000_000))
    assert rejected.order.status is OrderStatus.REJECTED
    assert rejected.order.reject is not None
    assert rejected.order.reject.reason is RejectReason.INVALID_QUANTITY
    assert statuses(rejected.events) == [("r", OrderStatus.REJECTED)]
    assert submit(book, spec("r", quantity=100_500_000_000)).duplicate
    fixed = book.submit(spec("r"), "alice", FRIDAY_MIDDAY)
    assert isinstance(fixed, RequestRefused)
    assert fixed.rejection.reason is RejectReason.DUPLICATE_ORDER_ID
    assert fixed.order_status is OrderStatus.REJECTED


def test_the_same_id_for_a_different_order_is_refused() -> None:
    book = quoted()
    submit(book, spec("d", order_type=OrderType.LIMIT, limit=90 * UNIT))
    refused = book.submit(
        spec("d", order_type=OrderType.LIMIT, limit=91 * UNIT), "alice", FRIDAY_MIDDAY
    )
    assert isinstance(refused, RequestRefused)
    assert (refused.request, refused.rejection.reason, refused.order_status) == (
        RequestKind.NEW_ORDER,
        RejectReason.DUPLICATE_ORDER_ID,
        OrderStatus.NEW,
    )


def test_order_ids_are_per_account_so_no_account_can_probe_anothers() -> None:
    book = quoted()
    alices = submit(book, spec("d", order_type=OrderType.LIMIT, limit=90 * UNIT))
    # bob's "d" is bob's own order: placed, whatever alice's "d" is
    bobs = submit(book, spec("d", account="bob", order_type=OrderType.LIMIT, limit=91 * UNIT))
    assert not bobs.duplicate
    assert bobs.order.ref == ("bob", "d")
    assert book.order("alice", "d") == alices.order
    # a cancel of an id bob never used reads the same whether alice used it or not
    used = book.cancel("x", "bob", FRIDAY_MIDDAY)
    submit(book, spec("x", order_type=OrderType.LIMIT, limit=90 * UNIT))
    used_by_alice = book.cancel("x", "bob", FRIDAY_MIDDAY)
    assert isinstance(used, RequestRefused)
    assert isinstance(used_by_alice, RequestRefused)
    assert used_by_alice.rejection == used.rejection
    assert used_by_alice.rejection.reason is RejectReason.UNKNOWN_ORDER
    assert used_by_alice.order_status is used.order_status is None
    # bob's cancel of "d" ends bob's order, not alice's
    cancelled = book.cancel("d", "bob", FRIDAY_MIDDAY)
    assert isinstance(cancelled, list)
    assert [event.order.ref for event in cancelled if isinstance(event, OrderChanged)] == [
        ("bob", "d")
    ]
    alices_now = book.order("alice", "d")
    assert alices_now is not None
    assert alices_now.is_working


def test_accounts_place_and_cancel_only_their_own_orders() -> None:
    book = quoted()
    impostor = book.submit(spec("a", account="alice"), "bob", FRIDAY_MIDDAY)
    assert isinstance(impostor, RequestRefused)
    assert impostor.rejection.reason is RejectReason.PERMISSION_DENIED
    assert len(book) == 0
    submit(book, spec("a", order_type=OrderType.LIMIT, limit=90 * UNIT))
    refused = book.cancel("a", "bob", FRIDAY_MIDDAY)  # bob has no order "a"
    assert isinstance(refused, RequestRefused)
    assert (refused.request, refused.rejection.reason, refused.order_status) == (
        RequestKind.CANCEL,
        RejectReason.UNKNOWN_ORDER,
        None,
    )
    naming_alice = book.cancel("a", "bob", FRIDAY_MIDDAY, account_id="alice")
    assert isinstance(naming_alice, RequestRefused)
    assert naming_alice.rejection.reason is RejectReason.PERMISSION_DENIED
    assert book.working_orders("bob") == []
    assert len(book.working_orders("alice")) == 1


def test_cancel_after_a_partial_fill_cancels_the_rest() -> None:
    book = quoted(Touch(99 * UNIT, 101 * UNIT, 0, 40 * UNIT))
    submit(book, spec("p", order_type=OrderType.LIMIT, limit=101 * UNIT))
    events = book.cancel("p", "alice", FRIDAY_MIDDAY)
    assert isinstance(events, list)
    assert statuses(events) == [("p", OrderStatus.CANCELLED)]
    cancelled = events[0]
    assert isinstance(cancelled, OrderChanged)
    assert cancelled.order.filled_nanos == 40 * UNIT
    assert cancelled.text == "cancelled on request"


def test_cancel_after_the_fill_completed_is_too_late() -> None:
    book = quoted()
    submit(book, spec("f"))
    refused = book.cancel("f", "alice", FRIDAY_MIDDAY)
    assert isinstance(refused, RequestRefused)
    assert (refused.rejection.reason, refused.order_status) == (
        RejectReason.TOO_LATE_TO_CANCEL,
        OrderStatus.FILLED,
    )
    unknown = book.cancel("nope", "alice", FRIDAY_MIDDAY)
    assert isinstance(unknown, RequestRefused)
    assert unknown.rejection.reason is RejectReason.UNKNOWN_ORDER


def test_a_venue_refusal_with_no_change_is_too_late() -> None:
    venue = SimulatedVenue()
    book = OrderManager(venue, REFERENCE, RiskLimits(price_band_bps=2_000))
    book.on_tick(NASDAQ_AAPL, QUOTE, FRIDAY_MIDDAY)
    placed = submit(book, spec("v", order_type=OrderType.LIMIT, limit=90 * UNIT))
    venue.cancel(("alice", "v"))  # the venue no longer works it, and its report is not in yet
    refused = book.cancel("v", "alice", FRIDAY_MIDDAY)
    assert isinstance(refused, RequestRefused)
    assert refused.rejection.reason is RejectReason.TOO_LATE_TO_CANCEL
    assert refused.order_status is placed.order.status


def test_reports_for_orders_that_are_not_working_change_nothing() -> None:
    book = quoted()
    submit(book, spec("f"))
    filled = Filled(("alice", "f"), 101 * UNIT, UNIT)
    assert book.on_venue_reports([filled, Filled(("alice", "ghost"), UNIT, UNIT)], 0) == []
    assert book.on_venue_reports([Ended(("alice", "f"), OrderStatus.CANCELLED, "late")], 0) == []
    assert book.on_venue_reports([Filled(("bob", "f"), 101 * UNIT, UNIT)], 0) == []  # no "f"


def test_ioc_remainder_is_cancelled_on_arrival() -> None:
    book = quoted()
    result = submit(book, spec("i", quantity=400 * UNIT, tif=TimeInForce.IOC))
    assert statuses(result.events) == [
        ("i", OrderStatus.NEW),
        ("i", OrderStatus.PARTIALLY_FILLED),
        ("i", OrderStatus.CANCELLED),
    ]
    assert result.order.filled_nanos == 300 * UNIT


def test_instruments_resolve_by_quote_or_listing() -> None:
    book = manager()
    unknown = submit(book, spec("u", exchange="NASDAQ"))
    assert unknown.order.reject is not None
    assert unknown.order.reject.reason is RejectReason.UNKNOWN_SYMBOL
    # listed but never quoted: known, but nothing to price against
    listed = submit(book, spec("n", symbol="NEWCO", exchange=""))
    assert listed.order.key == LISTED
    assert listed.order.reject is not None
    assert listed.order.reject.reason is RejectReason.NO_MARKET_DATA
    # without an exchange: the venue that quoted the symbol last
    book.on_tick(NASDAQ_AAPL, QUOTE, FRIDAY_MIDDAY)
    book.on_tick(NYSE_AAPL, QUOTE, FRIDAY_MIDDAY)
    assert submit(book, spec("x", exchange="")).order.key == NYSE_AAPL
    bad = submit(book, spec("bad", symbol="A|B", exchange="NASDAQ"))
    assert bad.order.reject is not None
    assert bad.order.reject.reason is RejectReason.UNKNOWN_SYMBOL


def test_positions_are_per_security_across_venues() -> None:
    book = quoted()
    book.on_tick(NYSE_AAPL, QUOTE, FRIDAY_MIDDAY)
    submit(book, spec("b"))
    submit(book, spec("s", Side.SELL, exchange="NYSE"))
    position = book.position("alice", "AAPL")
    assert position is not None
    assert position.net_nanos == 0
    assert position.realized_pnl_nanos == -200 * UNIT  # bought at 101, sold at 99
    assert book.positions("alice") == [position]
    assert book.positions("bob") == []


def test_rate_limit_counts_every_new_order_of_an_account() -> None:
    book = quoted(limits=RiskLimits(orders_per_second=1, order_burst=2, price_band_bps=2_000))
    outcomes = [submit(book, spec(f"o{i}")).order for i in range(3)]
    assert [o.status for o in outcomes] == [
        OrderStatus.FILLED,
        OrderStatus.FILLED,
        OrderStatus.REJECTED,
    ]
    assert outcomes[2].reject is not None
    assert outcomes[2].reject.reason is RejectReason.RATE_LIMIT
    assert submit(book, spec("b0", account="bob")).order.status is OrderStatus.FILLED


def test_open_notional_counts_working_orders_remainders() -> None:
    limits = RiskLimits(max_open_notional_nanos=20_000 * UNIT, price_band_bps=2_000)
    book = quoted(limits=limits)
    submit(book, spec("w1", order_type=OrderType.LIMIT, limit=90 * UNIT, quantity=200 * UNIT))
    second = submit(
        book, spec("w2", order_type=OrderType.LIMIT, limit=90 * UNIT, quantity=100 * UNIT)
    )
    assert second.order.reject is not None
    assert second.order.reject.reason is RejectReason.NOTIONAL_LIMIT
    book.cancel("w1", "alice", FRIDAY_MIDDAY)
    third = submit(
        book, spec("w3", order_type=OrderType.LIMIT, limit=90 * UNIT, quantity=100 * UNIT)
    )
    assert third.order.status is OrderStatus.NEW


def test_day_orders_expire_at_the_close_and_gtc_orders_do_not() -> None:
    hours = ReferenceData({"NASDAQ": InstrumentRules(CENT, UNIT, US_EQUITY_HOURS)})
    book = quoted(reference=hours)
    submit(book, spec("day", order_type=OrderType.LIMIT, limit=90 * UNIT))
    submit(book, spec("gtc", order_type=OrderType.LIMIT, limit=90 * UNIT, tif=TimeInForce.GTC))
    assert book.expire_due(FRIDAY_MIDDAY) == []
    after_close = FRIDAY_MIDDAY + 6 * 3_600 * 1_000_000_000  # 18:00 New York
    expired = book.expire_due(after_close)
    assert statuses(expired) == [("day", OrderStatus.EXPIRED)]
    assert [o.order_id for o in book.working_orders()] == ["gtc"]
    assert book.expire_due(after_close) == []


def test_restore_puts_working_orders_back_to_work() -> None:
    book = quoted(Touch(99 * UNIT, 101 * UNIT, 0, 40 * UNIT))
    submit(book, spec("p", order_type=OrderType.LIMIT, limit=100 * UNIT))  # rests
    submit(book, spec("f"))  # fills 40 of 100 against the displayed size
    recorded = [book.order("alice", "p"), book.order("alice", "f")]
    positions = book.positions("alice")

    restarted = manager()
    assert restarted.restore([o for o in recorded if o is not None], positions) == 2
    assert restarted.position("alice", "AAPL") == positions[0]
    events = restarted.on_tick(NASDAQ_AAPL, Touch(99 * UNIT, 100 * UNIT), FRIDAY_MIDDAY)
    assert sorted(statuses(events)) == [("f", OrderStatus.FILLED), ("p", OrderStatus.FILLED)]
    fills = {e.execution_id: e.quantity_nanos for e in events if isinstance(e, Executed)}
    assert fills == {"p-1": 100 * UNIT, "f-2": 60 * UNIT}  # execution ids continue, not restart


_REQUESTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(list(Side)),
            st.sampled_from(list(OrderType)),
            st.integers(min_value=1, max_value=300),  # shares
            st.integers(min_value=95, max_value=105),  # limit / stop, whole dollars
            st.sampled_from(list(TimeInForce)),
        ),
        st.tuples(st.just("cancel"), st.sampled_from(["alice", "bob"]), st.integers(0, 15)),
        st.tuples(
            st.just("tick"),
            st.integers(min_value=95, max_value=104),  # bid
            st.sampled_from([0, 30, 100, 250]),  # shares at each side, 0: unknown
            st.integers(min_value=94, max_value=106),  # last trade
        ),
        st.tuples(st.just("resubmit"), st.integers(0, 15)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(requests=_REQUESTS)
def test_any_requests_keep_every_order_consistent(requests: list[tuple]) -> None:  # type: ignore[type-arg]
    book = quoted()
    specs: list[OrderSpec] = []
    events: list[TradingEvent] = []
    for request in requests:
        events += _play(book, request, specs)
    _check_orders(book, specs, events)
    _check_positions(book, events)


def _play(book: OrderManager, request: tuple, specs: list[OrderSpec]) -> list[TradingEvent]:  # type: ignore[type-arg]
    """Make one generated request; returns the events it caused."""
    if request[0] == "order":
        _, account, side, kind, shares, price, tif = request
        limit = price * UNIT if kind.has_limit else 0
        stop = price * UNIT if kind.has_stop else 0
        order = spec(
            f"o{len(specs)}", side, kind, shares * UNIT, limit, stop, account=account, tif=tif
        )
        specs.append(order)
        return submit(book, order).events
    if request[0] == "tick":
        _, bid, size, last = request
        touch = Touch(bid * UNIT, (bid + 1) * UNIT, size * UNIT, size * UNIT, last * UNIT)
        return book.on_tick(NASDAQ_AAPL, touch, FRIDAY_MIDDAY)
    if not specs:
        return []
    if request[0] == "cancel":
        _, caller, index = request
        result = book.cancel(specs[index % len(specs)].order_id, caller, FRIDAY_MIDDAY)
        return result if isinstance(result, list) else []
    again = submit(book, specs[request[1] % len(specs)])
    assert again.duplicate
    assert again.events == []
    return []


def _check_orders(book: OrderManager, specs: list[OrderSpec], events: list[TradingEvent]) -> None:
    changes_of: dict[str, list[OrderChanged]] = {s.order_id: [] for s in specs}
    filled: dict[str, int] = dict.fromkeys(changes_of, 0)
    for event in events:
        if isinstance(event, OrderChanged):
            changes_of[event.order.order_id].append(event)
        elif isinstance(event, Executed):
            filled[event.order.order_id] += event.quantity_nanos
    for order_id, changes in changes_of.items():
        assert changes, f"{order_id} was never recorded"
        assert [c.order.event_sequence for c in changes] == list(range(1, len(changes) + 1))
        finals = [c for c in changes if c.order.status.is_final]
        assert finals in ([], [changes[-1]])  # at most one final status, and nothing after it
        state = book.order(changes[-1].order.account_id, order_id)
        assert state == changes[-1].order
        assert state.filled_nanos == filled[order_id] <= state.spec.quantity_nanos
        assert state.is_working == (state in book.working_orders(state.account_id))


def _check_positions(book: OrderManager, events: list[TradingEvent]) -> None:
    net: dict[str, int] = {}
    for event in events:
        if isinstance(event, Executed):
            signed = event.order.spec.side.sign * event.quantity_nanos
            net[event.account_id] = net.get(event.account_id, 0) + signed
    for account, quantity in net.items():
        position = book.position(account, "AAPL")
        assert position is not None
        assert position.net_nanos == quantity


def test_a_lower_case_symbol_is_unknown_with_the_spelling_that_trades() -> None:
    book = quoted()
    rejected = submit(book, spec("lc", symbol="aapl")).order
    assert rejected.reject is not None
    assert rejected.reject.reason is RejectReason.UNKNOWN_SYMBOL
    assert rejected.reject.detail == "aapl is not traded here (symbols are upper case: AAPL)"

"""Trading against the real Kafka: ticks from a ticks topic drive the simulated venue, and
every order change, fill and position lands on the test's own trading topics, keyed as
documented, exactly once (read back with read_committed)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import OrderCancelRequest, TradingMessage
from gateway import app
from gateway.client import GatewayClient
from gateway.errors import OrderOutcomeUnknown
from gateway.trading.convert import TradingTopics
from marketinfra.decimal_codec import set_decimal
from marketinfra.settings import KafkaSettings
from tests.contract.trading_support import ALICE, BOB, exact, order, read_until
from tests.integration.trading_support import Event, TradingHarness, create_topics
from tests.support import nanos

pytestmark = pytest.mark.integration
SYMBOL = "ITC-USD"


def _reference(path: Path, exchange: str) -> Path:
    """The test exchange trades around the clock; CLOSED never does now; HALT is halted;
    LISTED is listed but never quoted; ADA-BTC and BIG have grids finer than a micro."""
    now = datetime.now(UTC)
    start = (now.hour + 2) % 24
    opens, closes = (start, start + 1) if start < 23 else (1, 2)  # now is after 21:00 then
    path.write_text(
        json.dumps(
            {
                "exchanges": {
                    exchange: {"tick": "0.01", "lot": "0.001", "hours": "always"},
                    "CLOSED": {
                        "tick": "0.01",
                        "lot": "1",
                        "hours": f"{opens:02d}:00-{closes:02d}:00",
                    },
                },
                "instruments": {
                    f"{exchange}|HALT": {"halted": True},
                    f"{exchange}|LISTED": {},
                    # priced and sized finer than a micro, as Coinbase's ADA-BTC
                    f"{exchange}|ADA-BTC": {"tick": "0.00000001", "lot": "0.00000001"},
                    # a nano grid, for positions at the edge of the range
                    f"{exchange}|BIG": {"tick": "0.000000001", "lot": "0.000000001"},
                },
            }
        )
    )
    return path


@pytest.fixture
async def harness(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, tmp_path: Path
) -> AsyncIterator[TradingHarness]:
    run = uuid.uuid4().hex[:10]
    topics = TradingTopics(f"test.{run}.orders", f"test.{run}.trades", f"test.{run}.positions")
    ticks = f"test.{run}.ticks"
    create_topics(kafka_admin, [ticks, topics.orders, topics.trades, topics.positions])
    exchange = f"IT{run[:6].upper()}"
    harness = TradingHarness(
        kafka_settings,
        ticks,
        topics,
        trading_id=f"test-trading-{run}",
        exchange=exchange,
        reference=_reference(tmp_path / "reference.json", exchange),
        overrides={"max_order_notional": 50_000, "max_open_notional": 100_000},
    )
    await harness.start()
    yield harness
    await harness.stop()
    for future in kafka_admin.delete_topics(
        [ticks, topics.orders, topics.trades, topics.positions], operation_timeout=5
    ).values():
        future.result(timeout=10)


@pytest.fixture
async def make_harness(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[TradingHarness]]]:
    """A started harness with these settings (its own topics and exchange), stopped and its
    topics deleted after the test."""
    made: list[tuple[TradingHarness, list[str]]] = []

    async def make(**overrides: Any) -> TradingHarness:
        run = uuid.uuid4().hex[:10]
        topics = TradingTopics(f"test.{run}.orders", f"test.{run}.trades", f"test.{run}.positions")
        names = [f"test.{run}.ticks", topics.orders, topics.trades, topics.positions]
        create_topics(kafka_admin, names)
        exchange = f"IT{run[:6].upper()}"
        harness = TradingHarness(
            kafka_settings,
            names[0],
            topics,
            trading_id=f"test-trading-{run}",
            exchange=exchange,
            reference=_reference(tmp_path / f"reference-{run}.json", exchange),
            overrides=overrides,
        )
        made.append((harness, names))
        await harness.start()
        return harness

    yield make
    for harness, names in made:
        await harness.stop()
        for future in kafka_admin.delete_topics(names, operation_timeout=5).values():
            future.result(timeout=10)


def _statuses(events: list[Event]) -> list[tuple[str, int, int]]:
    return [(e.message.order_id, e.message.status, e.message.event_sequence) for e in events]


def _assert_recorded_once(harness: TradingHarness) -> None:
    """No event twice: (order, sequence) unique on orders, execution ids unique on trades,
    (account, symbol, sequence) unique on positions; keys as documented."""
    orders = harness.events("orders")
    seen = Counter((e.message.order_id, e.message.event_sequence) for e in orders)
    assert max(seen.values(), default=1) == 1, seen
    assert all(e.key == e.message.order_id.encode() for e in orders)
    trades = harness.events("trades")
    executions = Counter(e.message.execution_id for e in trades)
    assert max(executions.values(), default=1) == 1, executions
    assert all(e.key == e.message.account_id.encode() for e in trades)
    positions = harness.events("positions")
    numbers = Counter(
        (e.message.account_id, e.message.symbol, e.message.sequence) for e in positions
    )
    assert max(numbers.values(), default=1) == 1, numbers
    assert all(e.key == f"{e.message.account_id}|{e.message.symbol}".encode() for e in positions)


def _is_status(status: int, order_id: str = ""):
    return lambda m: (
        m.HasField("status")
        and m.status.status == status
        and (not order_id or m.status.order_id == order_id)
    )


async def test_market_limit_and_stop_orders_live_their_whole_lives(
    harness: TradingHarness,
) -> None:
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101, bid_size=1, ask_size=1, last="100.5")
    call = harness.client(ALICE).trading_session()
    # market buy of 1.5 against 1 at the ask: partial now, the rest on the next quote
    await call.write(
        TradingMessage(new_order=order("m-1", "buy", "1.5", exchange=exchange, symbol=SYMBOL))
    )
    await read_until(call, _is_status(common.ORDER_STATUS_PARTIALLY_FILLED, "m-1"))
    # limit sell above the market rests; a stop sell below the last waits for its trigger
    await call.write(
        TradingMessage(
            new_order=order("l-1", "sell", 1, limit=105, exchange=exchange, symbol=SYMBOL)
        )
    )
    await read_until(call, _is_status(common.ORDER_STATUS_NEW, "l-1"))
    await call.write(
        TradingMessage(new_order=order("s-1", "sell", 2, stop=99, exchange=exchange, symbol=SYMBOL))
    )
    await read_until(call, _is_status(common.ORDER_STATUS_NEW, "s-1"))
    await harness.tick(SYMBOL, 100, "101.5", bid_size=5, ask_size=5)
    await read_until(call, _is_status(common.ORDER_STATUS_FILLED, "m-1"))
    await harness.tick(SYMBOL, 105, 106, bid_size=1, ask_size=1)  # the market comes to l-1
    await read_until(call, _is_status(common.ORDER_STATUS_FILLED, "l-1"))
    await harness.tick(SYMBOL, 98, "98.5", bid_size=5, ask_size=5, last="98.9")  # trades through 99
    seen = await read_until(call, _is_status(common.ORDER_STATUS_FILLED, "s-1"))
    assert any(m.HasField("status") and m.status.stop_triggered for m in seen)
    await call.done_writing()

    # one order's events are in order (one key, one partition); orders interleave freely
    by_order: dict[str, list[tuple[int, int]]] = {}
    for order_id, status, sequence in _statuses(harness.events("orders")):
        by_order.setdefault(order_id, []).append((sequence, status))
    assert by_order == {
        "m-1": [
            (1, common.ORDER_STATUS_NEW),
            (2, common.ORDER_STATUS_PARTIALLY_FILLED),
            (3, common.ORDER_STATUS_FILLED),
        ],
        "l-1": [(1, common.ORDER_STATUS_NEW), (2, common.ORDER_STATUS_FILLED)],
        "s-1": [
            (1, common.ORDER_STATUS_NEW),
            (2, common.ORDER_STATUS_NEW),
            (3, common.ORDER_STATUS_FILLED),
        ],
    }
    fills = [
        (e.message.execution_id, nanos(e.message.fill_price), nanos(e.message.fill_quantity))
        for e in harness.events("trades")
    ]
    assert fills == [
        ("m-1-1", exact(101), exact(1)),
        ("m-1-2", exact("101.5"), exact("0.5")),
        ("l-1-1", exact(105), exact(1)),
        ("s-1-1", exact(98), exact(2)),
    ]
    positions = harness.events("positions")
    assert [nanos(e.message.net_quantity) for e in positions] == [
        exact(1),
        exact("1.5"),
        exact("0.5"),
        exact("-1.5"),
    ]
    _assert_recorded_once(harness)


async def test_every_reject_reason_is_a_reply_and_a_record(harness: TradingHarness) -> None:
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101, last="100.5")
    await harness.tick("HALT", 10, 11)
    client = harness.client(ALICE)
    cases = {
        "r-malformed": (
            order("r-malformed", "buy", 1, exchange=exchange, symbol=SYMBOL),
            common.REJECT_REASON_MALFORMED,
        ),
        "r-unknown": (
            order("r-unknown", "buy", 1, exchange=exchange, symbol="NOPE"),
            common.REJECT_REASON_UNKNOWN_SYMBOL,
        ),
        "r-lot": (
            order("r-lot", "buy", "0.0005", limit=100, exchange=exchange, symbol=SYMBOL),
            common.REJECT_REASON_INVALID_QUANTITY,
        ),
        "r-tick": (
            order("r-tick", "buy", 1, limit="100.005", exchange=exchange, symbol=SYMBOL),
            common.REJECT_REASON_INVALID_PRICE,
        ),
        "r-band": (
            order("r-band", "buy", 1, limit=120, exchange=exchange, symbol=SYMBOL),
            common.REJECT_REASON_PRICE_OUT_OF_BAND,
        ),
        "r-notional": (
            order("r-notional", "buy", 600, limit=100, exchange=exchange, symbol=SYMBOL),
            common.REJECT_REASON_NOTIONAL_LIMIT,
        ),
        "r-halted": (
            order("r-halted", "buy", 1, limit="10.5", exchange=exchange, symbol="HALT"),
            common.REJECT_REASON_INSTRUMENT_HALTED,
        ),
        "r-nodata": (
            order("r-nodata", "buy", 1, limit=10, exchange=exchange, symbol="LISTED"),
            common.REJECT_REASON_NO_MARKET_DATA,
        ),
    }
    # MALFORMED: a market order with a limit price
    set_decimal(cases["r-malformed"][0].limit_price, exact(100))
    summary = await client.submit_orders([request for request, _ in cases.values()])
    got = {result.order_id: result.reject_reason for result in summary.results}
    expected = {order_id: reason for order_id, (_, reason) in cases.items()}
    assert got == expected
    recorded = {e.message.order_id: e.message.reject_reason for e in harness.events("orders")}
    assert recorded == expected

    # business refusals that change no order: a reply, nothing recorded
    await client.submit_orders(
        [order("r-dup", "buy", 1, limit=100, exchange=exchange, symbol=SYMBOL)]
    )
    again = await client.submit_orders(
        [order("r-dup", "buy", 2, limit=100, exchange=exchange, symbol=SYMBOL)]
    )
    assert again.results[0].reject_reason == common.REJECT_REASON_DUPLICATE_ORDER_ID
    call = harness.client(ALICE).trading_session()
    for order_id, reason in (
        ("no-such-order", common.REJECT_REASON_UNKNOWN_ORDER),
        ("r-band", common.REJECT_REASON_TOO_LATE_TO_CANCEL),
    ):
        await call.write(TradingMessage(cancel=OrderCancelRequest(order_id=order_id)))
        seen = await read_until(call, lambda m: m.HasField("reject"))
        assert seen[-1].reject.reject_reason == reason
    await call.done_writing()
    other = await harness.client(BOB).submit_orders(
        [
            order(
                "r-other", "buy", 1, limit=100, exchange=exchange, symbol=SYMBOL, account_id="alice"
            )
        ]
    )
    assert other.results[0].reject_reason == common.REJECT_REASON_PERMISSION_DENIED
    assert "r-other" not in {e.message.order_id for e in harness.events("orders")}
    _assert_recorded_once(harness)


async def test_market_closed_is_rejected(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    """An instrument outside its hours (quoted, so only the hours decide)."""
    run = uuid.uuid4().hex[:10]
    topics = TradingTopics(f"test.{run}.orders", f"test.{run}.trades", f"test.{run}.positions")
    ticks = f"test.{run}.ticks"
    create_topics(kafka_admin, [ticks, topics.orders, topics.trades, topics.positions])
    harness = TradingHarness(
        kafka_settings,
        ticks,
        topics,
        f"test-trading-{run}",
        "CLOSED",
        reference=_reference(tmp_path / "reference.json", f"IT{run[:6].upper()}"),
    )
    await harness.start()
    try:
        await harness.tick("ANY", 10, "10.5")
        summary = await harness.client(ALICE).submit_orders(
            [order("c-1", "buy", 1, limit="10.25", exchange="CLOSED", symbol="ANY")]
        )
        assert summary.results[0].reject_reason == common.REJECT_REASON_MARKET_CLOSED
    finally:
        await harness.stop()


async def test_rate_limit_rejects_past_the_burst(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    topics = TradingTopics(f"test.{run}.orders", f"test.{run}.trades", f"test.{run}.positions")
    ticks = f"test.{run}.ticks"
    create_topics(kafka_admin, [ticks, topics.orders, topics.trades, topics.positions])
    exchange = f"IT{run[:6].upper()}"
    harness = TradingHarness(
        kafka_settings,
        ticks,
        topics,
        f"test-trading-{run}",
        exchange,
        reference=_reference(tmp_path / "reference.json", exchange),
        overrides={"order_burst": 3, "max_orders_per_second": 0.01},
    )
    await harness.start()
    try:
        await harness.tick(SYMBOL, 100, 101)
        summary = await harness.client(ALICE).submit_orders(
            [
                order(f"rl-{n}", "buy", 1, limit=99, exchange=exchange, symbol=SYMBOL)
                for n in range(5)
            ]
        )
        assert [r.reject_reason for r in summary.results] == [0, 0, 0] + [
            common.REJECT_REASON_RATE_LIMIT
        ] * 2
    finally:
        await harness.stop()


async def test_a_duplicate_over_either_rpc_creates_one_order(harness: TradingHarness) -> None:
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101)
    request = order("dup-1", "buy", 1, limit=99, exchange=exchange, symbol=SYMBOL)
    first = await harness.client(ALICE).submit_orders([request])
    second = await harness.client(ALICE).submit_orders([request])
    assert (first.results[0].duplicate, second.results[0].duplicate) == (False, True)
    assert second.results[0].status == common.ORDER_STATUS_NEW
    call = harness.client(ALICE).trading_session()
    await call.write(TradingMessage(new_order=request))
    seen = await read_until(call, lambda m: m.HasField("status") and m.status.duplicate)
    assert seen[-1].status.order_id == "dup-1"
    await call.done_writing()
    assert _statuses(harness.events("orders")) == [("dup-1", common.ORDER_STATUS_NEW, 1)]


async def test_a_cancel_racing_a_fill_has_one_outcome_told_to_the_client(
    harness: TradingHarness,
) -> None:
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101)
    orders = [
        order(f"race-{n}", "buy", 1, limit=100, exchange=exchange, symbol=SYMBOL) for n in range(20)
    ]
    client = harness.client(ALICE)
    await client.submit_orders(orders)
    call = client.trading_session()
    await read_until(call, lambda m: m.HasField("status") and m.status.order_id == "race-19")

    async def cancel_all() -> None:
        for request in orders:
            await call.write(TradingMessage(cancel=OrderCancelRequest(order_id=request.order_id)))

    # the fill (a quote at 100 makes them all marketable) and the cancels race
    await asyncio.gather(cancel_all(), harness.tick(SYMBOL, 99, 100, ask_size=0))
    told: dict[str, str] = {}

    def settled(message: TradingMessage) -> bool:
        if message.HasField("reject"):
            told[message.reject.order_id] = "too_late"
        elif message.HasField("status") and message.status.status == common.ORDER_STATUS_CANCELLED:
            told[message.status.order_id] = "cancelled"
        return len(told) == len(orders)

    await read_until(call, settled, timeout_s=15)
    await call.done_writing()
    final: dict[str, int] = {}
    for event in harness.events("orders"):
        final[event.message.order_id] = event.message.status
    filled = {e.message.order_id for e in harness.events("trades")}
    for request in orders:
        order_id = request.order_id
        if told[order_id] == "cancelled":
            assert final[order_id] == common.ORDER_STATUS_CANCELLED
            assert order_id not in filled
        else:
            assert final[order_id] == common.ORDER_STATUS_FILLED
            assert order_id in filled
    _assert_recorded_once(harness)


async def test_disconnect_cancels_or_keeps_orders_as_the_session_asked(
    harness: TradingHarness,
) -> None:
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101)
    client = harness.client(ALICE)
    for order_id, cancel in (("keep-1", False), ("drop-1", True)):
        call = client.trading_session(cancel_on_disconnect=cancel)
        await call.write(
            TradingMessage(
                new_order=order(order_id, "buy", 1, limit=99, exchange=exchange, symbol=SYMBOL)
            )
        )
        await read_until(call, _is_status(common.ORDER_STATUS_NEW, order_id))
        call.cancel()  # the client goes away without saying goodbye
    manager = harness.gateway.trading.desk.manager

    def dropped() -> bool:
        found = manager.order("alice", "drop-1")
        return found is not None and not found.is_working

    await harness.until(dropped, "drop-1 was not cancelled on disconnect")
    kept = manager.order("alice", "keep-1")
    assert kept is not None
    assert kept.is_working
    await harness.until(
        lambda: ("drop-1", common.ORDER_STATUS_CANCELLED, 2) in _statuses(harness.events("orders")),
        "the cancel on disconnect was not recorded",
    )
    assert ("keep-1", common.ORDER_STATUS_NEW, 1) in _statuses(harness.events("orders"))


async def test_a_restart_keeps_working_orders_and_duplicates_no_event(
    harness: TradingHarness,
) -> None:
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101, ask_size=1)
    client = harness.client(ALICE)
    summary = await client.submit_orders(
        [
            order("w-1", "buy", 2, limit=101, exchange=exchange, symbol=SYMBOL),  # 1 of 2 fills
            order("w-2", "sell", 1, limit=103, exchange=exchange, symbol=SYMBOL),  # rests
            order(
                "w-3",
                "buy",
                1,
                stop=102,
                exchange=exchange,
                symbol=SYMBOL,
                tif=common.TIME_IN_FORCE_GTC,
            ),
        ]
    )
    assert [r.status for r in summary.results] == [
        common.ORDER_STATUS_PARTIALLY_FILLED,
        common.ORDER_STATUS_NEW,
        common.ORDER_STATUS_NEW,
    ]
    before = harness.events("orders")
    await harness.stop()
    await harness.start()
    assert harness.gateway.trading is not None
    manager = harness.gateway.trading.desk.manager
    assert {o.order_id for o in manager.working_orders()} == {"w-1", "w-2", "w-3"}
    assert manager.position("alice", SYMBOL).net_nanos == exact(1)
    # the same request again is still a duplicate after the restart
    again = await harness.client(ALICE).submit_orders(
        [order("w-2", "sell", 1, limit=103, exchange=exchange, symbol=SYMBOL)]
    )
    assert again.results[0].duplicate
    # the market moves up (w-2 sells, w-3 triggers and buys), then down (w-1 buys the rest);
    # each order's numbering continues where it was
    await harness.tick(SYMBOL, 103, "103.5", bid_size=5, ask_size=5, last="102.5")
    await harness.tick(SYMBOL, 100, 101, bid_size=5, ask_size=5)
    await harness.until(lambda: not manager.working_orders(), "orders still working after the move")
    after = harness.events("orders")
    assert len(after) > len(before)
    by_order: dict[str, list[int]] = {}
    for order_id, _, sequence in _statuses(after):
        by_order.setdefault(order_id, []).append(sequence)
    assert {k: sorted(v) for k, v in by_order.items()} == {
        "w-1": [1, 2, 3],
        "w-2": [1, 2],
        "w-3": [1, 2, 3],  # trigger, then the fill
    }
    assert manager.position("alice", SYMBOL).net_nanos == exact(2)
    _assert_recorded_once(harness)


async def test_a_new_owner_fences_the_old_one(harness: TradingHarness) -> None:
    """Two gateways with one trading id: the newer one takes the log, the older one stops
    trading (UNAVAILABLE) instead of writing beside it."""
    exchange = harness.exchange
    await harness.tick(SYMBOL, 100, 101)
    old = harness.gateway
    harness.gateway = None
    await harness.start()
    assert old is not None
    assert old.trading is not None
    async with GatewayClient(f"127.0.0.1:{old.port}", token=ALICE, timeout_s=10) as stale:
        with pytest.raises(OrderOutcomeUnknown) as caught:
            await stale.submit_orders(
                [order("fenced-1", "buy", 1, limit=99, exchange=exchange, symbol=SYMBOL)],
                attempts=1,  # the client would resend; one answer is what this test is about
            )
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.order_ids == ["fenced-1"]
    assert "fenced-1" not in {e.message.order_id for e in harness.events("orders")}
    await app.stop(old)


async def test_sub_micro_orders_and_positions_are_exact_on_kafka_and_after_a_restart(
    harness: TradingHarness,
) -> None:
    """ADA-BTC at 0.00002288 / 0.0000229, sizes to eight decimals: the fill, the position
    with its sub-nano cost remainder, and a working order all come back exactly."""
    exchange = harness.exchange
    await harness.tick("ADA-BTC", "0.00002288", "0.0000229", ask_size="0.5")
    summary = await harness.client(ALICE).submit_orders(
        [
            order("ada-1", "buy", "0.12345678", limit="0.0000229", exchange=exchange,
                  symbol="ADA-BTC"),
            order("ada-2", "buy", "0.3", limit="0.00002289", exchange=exchange,
                  symbol="ADA-BTC"),  # rests one tick below the ask
            order("ada-3", "buy", "0.000000015", limit="0.00002289", exchange=exchange,
                  symbol="ADA-BTC"),
        ]
    )  # fmt: skip
    assert [(r.status, r.reject_text) for r in summary.results] == [
        (common.ORDER_STATUS_FILLED, ""),
        (common.ORDER_STATUS_NEW, ""),
        (
            common.ORDER_STATUS_REJECTED,
            "quantity 0.000000015 is not a multiple of the lot 0.00000001",
        ),
    ]
    [trade] = [e.message for e in harness.events("trades")]
    assert (nanos(trade.fill_price), nanos(trade.fill_quantity)) == (22_900, 123_456_780)
    [position] = [e.message for e in harness.events("positions")]
    # 0.12345678 x 0.0000229 = 0.000002827160262: 0.000002827 and 0.000000000160262 (1e-18)
    assert (nanos(position.cost), position.cost_sub_nanos) == (2_827, 160_262_000)

    await harness.stop()
    await harness.start()
    assert harness.gateway is not None
    assert harness.gateway.trading is not None
    manager = harness.gateway.trading.desk.manager
    recovered = manager.position("alice", "ADA-BTC")
    assert recovered is not None
    assert (recovered.net_nanos, recovered.cost_exact) == (123_456_780, 2_827_160_262_000)
    assert [o.order_id for o in manager.working_orders()] == ["ada-2"]
    await harness.tick("ADA-BTC", "0.00002288", "0.00002289")  # the market comes to ada-2
    await harness.until(lambda: not manager.working_orders(), "ada-2 did not fill")
    position = harness.events("positions")[-1].message
    # + 0.3 x 0.00002289 = 0.000006867: 0.000009694160262 in all
    assert (nanos(position.net_quantity), nanos(position.cost), position.cost_sub_nanos) == (
        423_456_780,
        9_694,
        160_262_000,
    )
    _assert_recorded_once(harness)


async def test_the_range_guard_keeps_the_log_recordable_and_recoverable(
    make_harness: Callable[..., Awaitable[TradingHarness]],
) -> None:
    """No notional limit in the way (10^30): an order that could take the position beyond
    9223372036854775807.999999999 is rejected; a fill whose cost would not fit is not
    executed, its order is cancelled with the reason, and a restart agrees."""
    harness = await make_harness(max_order_notional=10**30, max_open_notional=10**30)
    exchange = harness.exchange
    await harness.tick("BIG", 1, 2)
    client = harness.client(ALICE)
    summary = await client.submit_orders(
        [
            order("big-1", "buy", 5 * 10**18, exchange=exchange, symbol="BIG"),  # costs 1e19
            order("big-2", "buy", 10**18, exchange=exchange, symbol="BIG"),  # costs 2e18
            order("big-3", "buy", 6 * 10**18, limit="1.5", exchange=exchange, symbol="BIG"),
            order("big-4", "buy", 3 * 10**18, limit="1.5", exchange=exchange, symbol="BIG"),
        ]
    )
    assert [(r.status, r.reject_reason, r.reject_text) for r in summary.results] == [
        (common.ORDER_STATUS_CANCELLED, 0, ""),
        (common.ORDER_STATUS_FILLED, 0, ""),
        (common.ORDER_STATUS_NEW, 0, ""),  # 1e18 held + 6e18 working: fits
        (
            common.ORDER_STATUS_REJECTED,
            common.REJECT_REASON_INVALID_QUANTITY,
            "filled with the working orders, the position in BIG could exceed the largest "
            "quantity carried (9223372036854775807.999999999)",
        ),
    ]
    statuses = [e.message for e in harness.events("orders") if e.message.order_id == "big-1"]
    assert [(s.status, s.event_sequence, s.text) for s in statuses] == [
        (common.ORDER_STATUS_NEW, 1, ""),
        (
            common.ORDER_STATUS_CANCELLED,
            2,
            "fill of 5000000000000000000 at 2.00 not executed: the position would exceed "
            "the largest value carried",
        ),
    ]
    assert [e.message.order_id for e in harness.events("trades")] == ["big-2"]
    [position] = [e.message for e in harness.events("positions")]
    assert (nanos(position.net_quantity), nanos(position.cost)) == (
        exact(10**18),
        exact(2 * 10**18),
    )

    await harness.stop()
    await harness.start()
    assert harness.gateway is not None
    assert harness.gateway.trading is not None
    manager = harness.gateway.trading.desk.manager
    assert [o.order_id for o in manager.working_orders()] == ["big-3"]
    recovered = manager.position("alice", "BIG")
    assert recovered is not None
    assert (recovered.net_nanos, recovered.cost_nanos) == (exact(10**18), exact(2 * 10**18))
    again = await harness.client(ALICE).submit_orders(
        [order("big-1", "buy", 5 * 10**18, exchange=exchange, symbol="BIG")]
    )
    assert (again.results[0].duplicate, again.results[0].status) == (
        True,
        common.ORDER_STATUS_CANCELLED,
    )
    _assert_recorded_once(harness)

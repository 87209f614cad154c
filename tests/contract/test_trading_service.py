"""SubmitOrders and LiveTrading over a real grpc.aio server, with the in-memory feed and
trading log: the wire contract, status codes, sessions and the records made."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.orders_pb2 import (
    ExecutionReport,
    OrderCancelRequest,
    OrderRequest,
    OrderStatusUpdate,
    PositionUpdate,
    TradingMessage,
)
from gateway.trading.convert import Record
from marketinfra.topics import ORDERS_LIFECYCLE, POSITIONS_UPDATES, TRADES_EXECUTED
from tests.contract.trading_support import (
    ALICE,
    BOB,
    SYMBOL,
    VIEWER,
    exact,
    order,
    read_until,
    tick,
    trading_gateway,
)
from tests.support import nanos


async def test_submit_orders_answers_each_order_and_records_each_change() -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101, ask_size=1)])
        summary = await served.client(ALICE).submit_orders(
            [
                order("sub-1", "buy", "0.5"),  # market: fills at the ask
                order("sub-2", "buy", 1, limit=99),  # rests
                order("sub-3", "buy", 1, limit=150),  # out of the 10% band
            ]
        )
        assert [r.order_id for r in summary.results] == ["sub-1", "sub-2", "sub-3"]
        assert [r.status for r in summary.results] == [
            common.ORDER_STATUS_FILLED,
            common.ORDER_STATUS_NEW,
            common.ORDER_STATUS_REJECTED,
        ]
        assert summary.results[2].reject_reason == common.REJECT_REASON_PRICE_OUT_OF_BAND
        assert (summary.accepted, summary.rejected) == (2, 1)
        statuses = [
            OrderStatusUpdate.FromString(r.value) for r in served.records(ORDERS_LIFECYCLE.name)
        ]
        assert [(s.order_id, s.status, s.event_sequence) for s in statuses] == [
            ("sub-1", common.ORDER_STATUS_NEW, 1),
            ("sub-1", common.ORDER_STATUS_FILLED, 2),
            ("sub-2", common.ORDER_STATUS_NEW, 1),
            ("sub-3", common.ORDER_STATUS_REJECTED, 1),
        ]
        assert [r.key for r in served.records(TRADES_EXECUTED.name)] == [b"alice"]
        assert [r.key for r in served.records(POSITIONS_UPDATES.name)] == [b"alice|BTC-USD"]


async def test_a_malformed_order_refuses_the_whole_batch() -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101)])
        # past the client, which refuses to send an order without an id
        stub = services_pb2_grpc.MarketDataServiceStub(served.client(ALICE).channel)
        batch = [order("ok-1", "buy", 1, limit=100), OrderRequest(order_id="", symbol="X")]

        async def requests() -> AsyncIterator[OrderRequest]:
            for request in batch:
                yield request

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SubmitOrders(
                requests(), timeout=5, metadata=(("authorization", f"Bearer {ALICE}"),)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "order 2 of the batch" in (caught.value.details() or "")
        assert served.log.records == []


async def test_a_session_hears_its_orders_in_order_and_cancels() -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101, ask_size=1)])
        call = served.client(ALICE).trading_session()
        await call.write(TradingMessage(new_order=order("live-1", "buy", 2, limit=101)))
        seen = await read_until(
            call,
            lambda m: (
                m.HasField("status") and m.status.status == common.ORDER_STATUS_PARTIALLY_FILLED
            ),
        )
        kinds = [m.WhichOneof("payload") for m in seen]
        assert kinds == ["status", "execution", "status"]
        assert seen[1].execution.execution_id == "live-1-1"
        assert nanos(seen[1].execution.fill_quantity) == exact(1)
        await read_until(call, lambda m: m.HasField("position"))
        await call.write(TradingMessage(cancel=OrderCancelRequest(order_id="live-1")))
        seen = await read_until(call, lambda m: m.HasField("status"))
        assert seen[-1].status.status == common.ORDER_STATUS_CANCELLED
        assert nanos(seen[-1].status.filled_quantity) == exact(1)
        await call.write(TradingMessage(cancel=OrderCancelRequest(order_id="live-1")))
        seen = await read_until(call, lambda m: m.HasField("reject"))
        assert seen[-1].reject.reject_reason == common.REJECT_REASON_TOO_LATE_TO_CANCEL
        assert seen[-1].reject.order_status == common.ORDER_STATUS_CANCELLED
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK


async def test_order_ids_are_per_account_and_another_account_learns_nothing() -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101)])
        await served.client(ALICE).submit_orders([order("mine-1", "buy", 1, limit=99)])
        call = served.client(BOB).trading_session()
        refusals = []
        for order_id in ("mine-1", "never-used-1"):  # alice's id, and an id nobody used
            await call.write(TradingMessage(cancel=OrderCancelRequest(order_id=order_id)))
            seen = await read_until(call, lambda m: m.HasField("reject"))
            refusals.append(seen[-1].reject)
        assert [r.reject_reason for r in refusals] == [common.REJECT_REASON_UNKNOWN_ORDER] * 2
        assert refusals[0].text == refusals[1].text  # nothing tells the two apart
        assert refusals[0].order_status == refusals[1].order_status
        await call.write(TradingMessage(new_order=order("mine-1", "buy", 1, limit=98)))
        seen = await read_until(call, lambda m: m.HasField("status"))
        assert (seen[-1].status.order_id, seen[-1].status.account_id) == ("mine-1", "bob")
        assert seen[-1].status.status == common.ORDER_STATUS_NEW  # bob's own order
        await call.done_writing()
        summary = await served.client(BOB).submit_orders(
            [order("bob-1", "buy", 1, limit=99, account_id="alice")]
        )
        assert summary.results[0].reject_reason == common.REJECT_REASON_PERMISSION_DENIED
        again = await served.client(ALICE).submit_orders([order("mine-1", "buy", 1, limit=99)])
        assert again.results[0].duplicate  # alice's order is untouched by bob's
        assert again.results[0].status == common.ORDER_STATUS_NEW


async def test_a_market_data_only_token_cannot_trade() -> None:
    async with trading_gateway() as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.client(VIEWER).submit_orders([order("v-1", "buy", 1)])
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_restart_rebuilds_working_orders_from_the_log() -> None:
    records: list[Record] = []
    async with trading_gateway(records) as served:
        served.feed.push([tick(100, 101)])
        await served.client(ALICE).submit_orders([order("keep-1", "buy", 1, limit=99)])
    async with trading_gateway(records) as served:
        call = served.client(ALICE).trading_session()
        snapshot = await read_until(call, lambda m: m.HasField("status"))
        assert snapshot[0].status.order_id == "keep-1"  # a session starts with working orders
        assert snapshot[0].status.status == common.ORDER_STATUS_NEW
        served.feed.push([tick(98, "98.5", ask_size=5)])  # the market comes to the order
        seen = await read_until(
            call,
            lambda m: m.HasField("status") and m.status.status == common.ORDER_STATUS_FILLED,
        )
        assert seen[-1].status.event_sequence == 2
        assert nanos(seen[-1].status.filled_quantity) == exact(1)
        await call.done_writing()


# A Decimal that is no canonical value is refused, never normalized: the sender is broken.
_NOT_CANONICAL = "not a canonical decimal: units={units} nanos={nanos}"
# int64 units of -2^63 is canonical but has no positive counterpart: beyond the range carried
_BEYOND = (
    "beyond the range carried (units={units}; at most 9223372036854775807.999999999 either way)"
)
MALFORMED_DECIMALS = [
    pytest.param(
        "quantity", Decimal(units=1, nanos=1_000_000_000), _NOT_CANONICAL, id="nanos-too-large"
    ),
    pytest.param(
        "quantity", Decimal(units=0, nanos=-1_000_000_000), _NOT_CANONICAL, id="nanos-too-small"
    ),
    pytest.param("quantity", Decimal(units=1, nanos=-500_000_000), _NOT_CANONICAL, id="mixed"),
    pytest.param("limit_price", Decimal(units=-100, nanos=5), _NOT_CANONICAL, id="limit-mixed"),
    pytest.param(
        "stop_price", Decimal(units=99, nanos=2_000_000_000), _NOT_CANONICAL, id="stop-nanos"
    ),
    pytest.param("quantity", Decimal(units=-(2**63)), _BEYOND, id="quantity-int64-min"),
    pytest.param("limit_price", Decimal(units=-(2**63)), _BEYOND, id="limit-int64-min"),
]


def _malformed_order(order_id: str, field: str, value: Decimal) -> OrderRequest:
    request = order("x", "buy", 1, limit=100, stop=101)  # a stop-limit: all three fields
    request.order_id = order_id
    getattr(request, field).CopyFrom(value)
    return request


@pytest.mark.parametrize(("field", "value", "problem"), MALFORMED_DECIMALS)
async def test_a_malformed_decimal_refuses_a_batch_as_invalid_argument(
    field: str, value: Decimal, problem: str
) -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101)])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.client(ALICE).submit_orders(
                [order("fine-1", "buy", 1, limit=100), _malformed_order("bad-1", field, value)]
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        said = problem.format(units=value.units, nanos=value.nanos)
        assert caught.value.details() == (
            f"order 2 of the batch: order bad-1: {field} is {said}; nothing in the batch was placed"
        )
        assert served.log.records == []
        assert served.gateway.trading is not None
        assert len(served.gateway.trading.desk.manager) == 0


@pytest.mark.parametrize(("field", "value", "problem"), MALFORMED_DECIMALS)
async def test_a_malformed_decimal_ends_a_session_as_invalid_argument(
    field: str, value: Decimal, problem: str
) -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101)])
        call = served.client(ALICE).trading_session()
        await call.write(TradingMessage(new_order=order("ok-1", "buy", 1, limit=99)))
        await read_until(call, lambda m: m.HasField("status"))
        await call.write(TradingMessage(new_order=_malformed_order("bad-1", field, value)))
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
        said = problem.format(units=value.units, nanos=value.nanos)
        assert await call.details() == f"order bad-1: {field} is {said}"
        recorded = [
            OrderStatusUpdate.FromString(r.value).order_id
            for r in served.records(ORDERS_LIFECYCLE.name)
        ]
        assert recorded == ["ok-1"]  # the malformed order placed nothing


async def test_sub_micro_prices_and_sizes_cross_the_wire_exactly(tmp_path: Path) -> None:
    """An instrument quoted and traded finer than a micro: the order, its fill and the
    position carry the venue's exact digits (ADA-BTC at 0.00002288, 8-decimal sizes)."""
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps(
            {"instruments": {"COINBASE|ADA-BTC": {"tick": "0.00000001", "lot": "0.00000001"}}}
        )
    )
    async with trading_gateway(reference=reference) as served:
        served.feed.push([tick("0.00002288", "0.00002290", ask_size="1000.5", symbol="ADA-BTC")])
        client = served.client(ALICE)
        summary = await client.submit_orders(
            [
                order("ada-1", "buy", "0.12345678", limit="0.00002290", symbol="ADA-BTC"),
                order("ada-2", "buy", "0.123456785", limit="0.00002290", symbol="ADA-BTC"),
                order("ada-3", "buy", "1", limit="0.000022905", symbol="ADA-BTC"),
            ]
        )
        assert [(r.status, r.reject_reason, r.reject_text) for r in summary.results] == [
            (common.ORDER_STATUS_FILLED, 0, ""),
            (
                common.ORDER_STATUS_REJECTED,
                common.REJECT_REASON_INVALID_QUANTITY,
                "quantity 0.123456785 is not a multiple of the lot 0.00000001",
            ),
            (
                common.ORDER_STATUS_REJECTED,
                common.REJECT_REASON_INVALID_PRICE,
                "limit price 0.000022905 is off the tick 0.00000001",
            ),
        ]
        [trade] = [
            ExecutionReport.FromString(r.value) for r in served.records(TRADES_EXECUTED.name)
        ]
        assert (trade.fill_price.units, trade.fill_price.nanos) == (0, 22_900)
        assert (trade.fill_quantity.units, trade.fill_quantity.nanos) == (0, 123_456_780)
        [position] = [
            PositionUpdate.FromString(r.value) for r in served.records(POSITIONS_UPDATES.name)
        ]
        # 0.12345678 x 0.00002290 = 0.000002827160262: 0.000002827 + 0.000000000160262
        assert (position.cost.units, position.cost.nanos, position.cost_sub_nanos) == (
            0,
            2_827,
            160_262_000,
        )
        assert nanos(position.net_quantity) == exact("0.12345678")


# -- limits and refused records (issue 15) ---------------------------------------------------

HUGE = "A" * 600_000  # a ~600 KB symbol: once recorded several times over, failing the log


async def test_an_oversized_field_is_invalid_argument_and_nothing_is_recorded() -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101, ask_size=1)])
        stub = services_pb2_grpc.MarketDataServiceStub(served.client(ALICE).channel)
        metadata = (("authorization", f"Bearer {ALICE}"),)
        for field in ("symbol", "exchange", "account_id"):
            bad = order(f"big-{field}", "buy", 1)
            setattr(bad, field, HUGE)

            async def one(request: OrderRequest = bad) -> AsyncIterator[OrderRequest]:
                yield request

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SubmitOrders(one(), timeout=30, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = caught.value.details() or ""
            assert f"{field} is 600000 characters; at most 64" in details
            assert len(details) < 200

            session = stub.LiveTrading(metadata=metadata, timeout=30)
            await session.write(TradingMessage(new_order=bad))
            assert await session.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert served.log.records == []
        summary = await served.client(ALICE).submit_orders([order("fine-1", "buy", "0.5")])
        assert summary.results[0].status == common.ORDER_STATUS_FILLED


async def test_an_order_whose_record_kafka_refuses_is_withdrawn_and_the_rest_carry_on() -> None:
    async with trading_gateway() as served:
        served.feed.push([tick(100, 101, ask_size=1)])
        served.log.refuses = lambda record: b"refused-" in record.key
        summary = await served.client(ALICE).submit_orders(
            [
                order("kept-1", "buy", 1, limit=99),
                order("refused-1", "buy", "0.5"),  # a market order: fills in its submission
                order("kept-2", "buy", 1, limit=99),
            ]
        )
        statuses = [(r.order_id, r.status, r.reject_reason) for r in summary.results]
        assert statuses == [
            ("kept-1", common.ORDER_STATUS_NEW, 0),
            ("refused-1", common.ORDER_STATUS_REJECTED, common.REJECT_REASON_MALFORMED),
            ("kept-2", common.ORDER_STATUS_NEW, 0),
        ]
        assert "not placed" in summary.results[1].reject_text
        assert summary.rejection_reasons[0].startswith("refused-1: ")
        manager = served.gateway.trading.desk.manager  # type: ignore[union-attr]
        # withdrawn: the order and the fill it made are gone from memory, as from the log
        assert manager.order("alice", "refused-1") is None
        assert manager.position("alice", SYMBOL) is None
        assert served.records(TRADES_EXECUTED.name) == []
        recorded = {OrderStatusUpdate.FromString(r.value).order_id for r in served.log.records}
        assert recorded == {"kept-1", "kept-2"}

        call = served.client(ALICE).trading_session()
        await call.write(TradingMessage(new_order=order("refused-2", "buy", 1, limit=99)))
        seen = await read_until(call, lambda m: m.HasField("reject"))
        assert [m.WhichOneof("payload") for m in seen[-1:]] == ["reject"]
        assert seen[-1].reject.order_id == "refused-2"
        assert not any(m.HasField("status") and m.status.order_id == "refused-2" for m in seen)
        await call.write(TradingMessage(new_order=order("kept-3", "buy", 1, limit=99)))
        seen = await read_until(call, lambda m: m.HasField("status"))
        assert seen[-1].status.order_id == "kept-3"
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK
        assert served.gateway.trading.alive  # type: ignore[union-attr]

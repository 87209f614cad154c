"""A lost answer never buys twice: the client and ``mdgw order`` send an order again with the same
id after DEADLINE_EXCEEDED or UNAVAILABLE, and say how to find out when nothing answers.

The server here is a stand-in for the gateway's SubmitOrders on a real grpc.aio server: it
places an order id once (fills it at once) and answers a resend with the order's state
(``duplicate``), as the gateway's idempotency does; the first call can lose its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.orders_pb2 import OrderBatchSummary, OrderRequest, OrderResult
from gateway import cli
from gateway import client as client_module
from gateway.client import GatewayClient
from gateway.errors import OrderOutcomeUnknown
from marketcore.backoff import BackoffPolicy
from tests.support import nanos

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass
class FillingVenue(services_pb2_grpc.MarketDataServiceServicer):
    """``lose``: what happens to the answers of the first ``lose_calls`` calls, once their
    orders are placed: "deadline" (DEADLINE_EXCEEDED), "unavailable" or "drop" (never sent)."""

    lose: str = "deadline"
    lose_calls: int = 1
    calls: int = 0
    placed: dict[str, OrderRequest] = field(default_factory=dict)
    fills: int = 0

    async def SubmitOrders(
        self, request_iterator: AsyncIterator[OrderRequest], context: Context
    ) -> OrderBatchSummary:
        self.calls += 1
        results = []
        async for order in request_iterator:
            duplicate = order.order_id in self.placed
            if not duplicate:
                self.placed[order.order_id] = order
                self.fills += 1
            results.append(
                OrderResult(
                    order_id=order.order_id,
                    status=common.ORDER_STATUS_FILLED,
                    duplicate=duplicate,
                )
            )
        if self.calls <= self.lose_calls:
            if self.lose == "drop":
                await asyncio.Event().wait()  # the answer never comes: the client's deadline
            code = grpc.StatusCode.UNAVAILABLE if self.lose == "unavailable" else (
                grpc.StatusCode.DEADLINE_EXCEEDED
            )  # fmt: skip
            await context.abort(code, "the answer was lost")
        return OrderBatchSummary(accepted=len(results), results=results)


@pytest.fixture
def quick_resends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        client_module, "ORDER_RESEND_BACKOFF", BackoffPolicy(base_s=0.01, cap_s=0.02)
    )


async def _serve(venue: FillingVenue) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    services_pb2_grpc.add_MarketDataServiceServicer_to_server(venue, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def _order(order_id: str = "o-1") -> OrderRequest:
    return OrderRequest(
        order_id=order_id,
        symbol="AAPL",
        side=common.SIDE_BUY,
        quantity=Decimal(units=100),
        order_type=common.ORDER_TYPE_MARKET,
    )


# -- the Python client -----------------------------------------------------------------------


@pytest.mark.parametrize("lose", ["deadline", "unavailable", "drop"])
async def test_a_lost_answer_is_resent_with_the_same_id_and_fills_once(
    quick_resends: None, lose: str
) -> None:
    venue = FillingVenue(lose=lose)
    server, target = await _serve(venue)
    resends: list[tuple[int, grpc.StatusCode]] = []
    try:
        # a short deadline only matters for "drop", where it is how the answer goes missing
        async with GatewayClient(target, timeout_s=1.0) as client:
            summary = await client.submit_orders(
                [_order()], on_resend=lambda n, exc, _: resends.append((n, exc.code()))
            )
    finally:
        await server.stop(0)
    [result] = summary.results
    assert (result.order_id, result.status, result.duplicate) == (
        "o-1",
        common.ORDER_STATUS_FILLED,
        True,  # the answer to the resend: the first attempt's order
    )
    assert venue.fills == 1  # 100 shares, not 200
    assert venue.calls == 2
    if lose == "unavailable":
        # the channel's own retry policy resends after UNAVAILABLE first (the same bytes,
        # so the same id); the client resends only when that runs out
        assert resends in ([], [(1, grpc.StatusCode.UNAVAILABLE)])
    else:
        assert resends == [(1, grpc.StatusCode.DEADLINE_EXCEEDED)]


async def test_no_answer_at_all_names_the_order_ids(quick_resends: None) -> None:
    venue = FillingVenue(lose="unavailable", lose_calls=1000)
    server, target = await _serve(venue)
    try:
        async with GatewayClient(target) as client:
            with pytest.raises(OrderOutcomeUnknown) as caught:
                await client.submit_orders([_order("o-7"), _order("o-8")], attempts=3)
    finally:
        await server.stop(0)
    assert caught.value.order_ids == ["o-7", "o-8"]
    assert caught.value.attempts == 3
    assert "o-7, o-8" in str(caught.value)
    assert venue.fills == 2  # each placed once, however often it was sent


async def test_an_order_without_an_id_is_not_sent() -> None:
    async with GatewayClient("127.0.0.1:1") as client:
        with pytest.raises(ValueError, match="no order_id"):
            await client.submit_orders([_order(""), _order("o-2")])


# -- mdgw order -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdgw")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


async def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = await asyncio.to_thread(args.handler, args)
    return code


async def test_mdgw_order_prints_its_id_first_and_resends_it_after_a_lost_answer(
    quick_resends: None, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = FillingVenue(lose="deadline")
    server, target = await _serve(venue)
    try:
        code = await _run(["order", "buy", "AAPL", "100", "--target", target, "--insecure"])
    finally:
        await server.stop(0)
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    [order_id] = venue.placed
    assert venue.fills == 1
    assert all(line.startswith(f"{order_id}  ") for line in out)  # every line names the order
    assert out[0] == f"{order_id}  SENDING  buy 100 AAPL at market DAY"
    assert out[1].startswith(f"{order_id}  NO ANSWER  DEADLINE_EXCEEDED: the answer was lost; ")
    assert "same id" in out[1]
    assert out[2].startswith(f"{order_id}  FILLED  (duplicate: already placed, current state)")


async def test_mdgw_order_without_any_answer_says_exactly_how_to_check(
    quick_resends: None, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = FillingVenue(lose="unavailable", lose_calls=1000)
    server, target = await _serve(venue)
    try:
        argv = ["order", "buy", "AAPL", "100", "--limit", "189.5", "--target", target, "--insecure"]
        assert await _run(argv) == 3
        captured = capsys.readouterr()
        [order_id] = venue.placed
        assert captured.out.splitlines()[0].startswith(f"{order_id}  SENDING")
        first, command = captured.err.splitlines()
        assert first.startswith(f"mdgw order: {order_id}  OUTCOME UNKNOWN  no answer after 4 ")
        assert "may have been placed" in first
        words = shlex.split(command)
        assert words[:2] == ["mdgw", "order"]
        assert words[words.index("--id") + 1] == order_id
        # the suggested command, once the gateway answers again: the same order, placed once
        venue.lose_calls = 0
        assert await _run(words[1:]) == 0
        assert f"{order_id}  FILLED  (duplicate" in capsys.readouterr().out
    finally:
        await server.stop(0)
    assert venue.fills == 1
    assert nanos(venue.placed[order_id].limit_price) == 189_500_000_000


async def test_mdgw_order_refused_before_placing_says_not_placed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = grpc.aio.server()  # no MarketDataService at all: UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        argv = ["order", "buy", "AAPL", "1", "--id", "x-1", "--target", f"127.0.0.1:{port}"]
        assert await _run([*argv, "--insecure"]) == 1
    finally:
        await server.stop(0)
    assert capsys.readouterr().err.startswith("mdgw order: x-1  NOT PLACED  UNIMPLEMENTED: ")

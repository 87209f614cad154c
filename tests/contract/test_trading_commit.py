"""Nothing is told that is not in the log: SubmitOrders answers, and a LiveTrading session hears
of an order, only once the order's records are committed; when the commit fails instead, the
caller gets UNAVAILABLE (resubmit with the same ids), never the decision the log does not hold.

The trading log here holds each commit until the test lets it go or fails it, so the order of
events is decided by the test, not by timing: an answer sent before its commit would show as
an accepted order whose commit then failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import TradingMessage
from gateway import app
from gateway.config import GatewaySettings
from gateway.errors import JournalError, OrderOutcomeUnknown
from gateway.fakes import ManualFeed, MemoryQuoteStore, MemoryTradingLog
from gateway.market import MarketData
from gateway.service.trading import UNAVAILABLE_TEXT
from gateway.trading.convert import Record
from tests.contract.trading_support import ALICE, TOKENS, TradingServed, order, tick
from tests.support import until


class HeldTradingLog(MemoryTradingLog):
    """Appends wait in ``held`` until ``release`` commits them or ``fail`` fails the log."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[list[Record], asyncio.Future[None]]] = []

    def append(self, records: list[Record]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failed is not None:
            done.set_exception(self.failed)
        elif not records:
            done.set_result(None)
        else:
            self.held.append((records, done))
        return done

    def release(self) -> None:
        for records, done in self.held:
            self.records.extend(records)
            done.set_result(None)
        self.held.clear()

    def fail(self) -> None:
        self.failed = JournalError("the held log was told to fail")
        for _, done in self.held:
            done.set_exception(self.failed)
        self.held.clear()


@pytest.fixture
async def served() -> AsyncIterator[tuple[TradingServed, HeldTradingLog]]:
    settings = GatewaySettings(
        insecure=True, port=0, auth_tokens=TOKENS, shutdown_grace_s=1, trading="own"
    )  # fmt: skip
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        return feeds[0]

    log = HeldTradingLog()
    gateway = await app.start(
        settings, store=MemoryQuoteStore(), feed_factory=feed_factory, trading_log=log
    )
    feeds[0].push([tick(100, 101)])
    served = TradingServed(gateway, feeds[0], log)
    try:
        yield served, log
    finally:
        log.release()
        for client in served.clients.values():
            await client.close()
        await app.stop(gateway)


async def test_submit_orders_answers_only_once_the_order_is_committed(
    served: tuple[TradingServed, HeldTradingLog],
) -> None:
    gateway, log = served
    client = gateway.client(ALICE)
    call = asyncio.ensure_future(client.submit_orders([order("c-1", "buy", 1, limit=99)]))
    await until(lambda: len(log.held) == 1)  # decided, and waiting for its commit
    assert not call.done()
    log.release()
    summary = await call
    assert [(r.order_id, r.status) for r in summary.results] == [("c-1", common.ORDER_STATUS_NEW)]
    assert len(log.records) == 1


async def test_a_failed_commit_is_unavailable_never_the_decision(
    served: tuple[TradingServed, HeldTradingLog],
) -> None:
    gateway, log = served
    client = gateway.client(ALICE)
    call = asyncio.ensure_future(
        client.submit_orders([order("f-1", "buy", 1, limit=99)], attempts=1)
    )
    await until(lambda: len(log.held) == 1)
    log.fail()  # the order was decided (NEW) but its record is not in the log
    with pytest.raises(OrderOutcomeUnknown) as caught:
        await call  # an answer sent before the commit would have said NEW
    assert (caught.value.code, caught.value.detail) == ("UNAVAILABLE", UNAVAILABLE_TEXT)
    assert log.records == []
    # once the log has failed, every trading call says so the same way
    with pytest.raises(OrderOutcomeUnknown) as again:
        await client.submit_orders([order("f-2", "buy", 1, limit=99)], attempts=1)
    assert (again.value.code, again.value.detail) == ("UNAVAILABLE", UNAVAILABLE_TEXT)
    session = client.trading_session()
    assert await session.code() == grpc.StatusCode.UNAVAILABLE
    assert await session.details() == UNAVAILABLE_TEXT


async def test_a_session_hears_of_an_order_only_once_it_is_committed(
    served: tuple[TradingServed, HeldTradingLog],
) -> None:
    gateway, log = served
    session = gateway.client(ALICE).trading_session()
    await session.initial_metadata()  # the session is open
    await session.write(TradingMessage(new_order=order("s-1", "buy", 1, limit=99)))
    await until(lambda: len(log.held) == 1)
    log.release()
    message = await session.read()
    assert (message.status.order_id, message.status.status) == ("s-1", common.ORDER_STATUS_NEW)
    await session.done_writing()


async def test_a_session_whose_commit_fails_ends_unavailable_without_the_status(
    served: tuple[TradingServed, HeldTradingLog],
) -> None:
    gateway, log = served
    session = gateway.client(ALICE).trading_session()
    await session.initial_metadata()
    await session.write(TradingMessage(new_order=order("s-2", "buy", 1, limit=99)))
    await until(lambda: len(log.held) == 1)
    log.fail()
    heard, error = await _read_to_the_end(session)
    assert error is not None, "the session ended OK"
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == UNAVAILABLE_TEXT
    assert heard == []  # nothing about s-2: its commit failed


async def _read_to_the_end(
    session: Any,
) -> tuple[list[TradingMessage], grpc.aio.AioRpcError | None]:
    heard: list[TradingMessage] = []
    try:
        while (message := await session.read()) is not grpc.aio.EOF:
            heard.append(message)
    except grpc.aio.AioRpcError as exc:
        return heard, exc
    return heard, None

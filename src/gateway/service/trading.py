"""SubmitOrders and LiveTrading over the trading desk.

Status codes describe the call; business outcomes are replies:

- a request that is not an order or a cancel at all (undecodable bytes, no order id, no symbol,
  unknown side/type/time-in-force numbers, a quantity or price that is not a canonical
  ``Decimal``: nanos beyond +-999,999,999 or of the other sign than the units, a LiveTrading
  message that is not ``new_order`` or ``cancel``): INVALID_ARGUMENT. SubmitOrders checks the
  whole batch first, so a batch with a malformed order places nothing;
- a rejected order: an ``OrderResult`` / ``OrderStatusUpdate`` with status REJECTED and the
  reason; a refused cancel or a reused order id: a ``RequestReject``;
- an order whose record Kafka refuses for good (larger than the topic takes): withdrawn, and
  answered like a refused request (REJECTED / a ``RequestReject``, reason MALFORMED, naming
  the order id); nothing of it is recorded and everything else carries on;
- the trading log cannot be written: UNAVAILABLE (the outcome of the last orders is unknown;
  resubmit them with the same order ids once the gateway is back: duplicates are answered, not
  placed twice);
- a LiveTrading session more than ``SESSION_QUEUE_LIMIT`` messages behind: RESOURCE_EXHAUSTED
  (the log on Kafka has everything it missed).

LiveTrading: send metadata ``x-cancel-on-disconnect: true`` to have the orders placed in the
session cancelled when it ends (however it ends); by default they keep working. The gateway
sends initial metadata ``x-trading-session: open`` once the session is registered: a client that
waits for it before writing never races a refusal (a write racing the server's close can turn
the status into a bare INTERNAL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NoReturn, TypeAlias

import grpc
import structlog

from financial.marketdata.v2.orders_pb2 import (
    OrderBatchSummary,
    OrderRequest,
    OrderResult,
    TradingMessage,
)
from gateway.client import CANCEL_ON_DISCONNECT, SESSION_HEADER
from gateway.errors import JournalError, RecordRefusedError
from gateway.security import CURRENT_ACCOUNT
from gateway.trading import convert
from gateway.trading.convert import Malformed
from gateway.trading.desk import Session, TradingDesk, refusal
from marketcore.trading.events import RequestRefused
from marketcore.trading.model import OrderSpec

log = structlog.get_logger(__name__)
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
UNAVAILABLE_TEXT = (
    "the trading log cannot be written; outcomes of orders in flight are unknown: resubmit "
    "them with the same order ids when the gateway is back"
)


class TradingService:
    def __init__(self, desk: TradingDesk, max_batch_orders: int) -> None:
        self._desk = desk
        self._max_batch_orders = max_batch_orders

    async def SubmitOrders(
        self, request_iterator: AsyncIterator[OrderRequest | None], context: Context
    ) -> OrderBatchSummary:
        caller = _caller()
        specs: list[OrderSpec] = []
        async for request in request_iterator:
            position = len(specs) + 1
            if position > self._max_batch_orders:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"a batch holds at most {self._max_batch_orders} orders; nothing was placed",
                )
            if request is None:
                await _refuse_batch(context, position, "not an OrderRequest")
            spec = convert.spec_from_proto(request, caller)
            if isinstance(spec, Malformed):
                await _refuse_batch(context, position, str(spec))
            specs.append(spec)
        results: list[OrderResult] = []
        commits: list[asyncio.Future[None]] = []
        try:
            for spec in specs:
                outcome, committed = self._desk.place(spec, caller)
                commits.append(committed)
                if isinstance(outcome, RequestRefused):
                    results.append(convert.refused_result(outcome))
                else:
                    results.append(convert.order_result(outcome.order, duplicate=outcome.duplicate))
            # every one: an append Kafka refused fails alone, the others are committed
            done = await asyncio.gather(*commits, return_exceptions=True)
            _withdrawn_results(results, specs, done, caller)
        except JournalError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_TEXT)
        return _summary(results)

    async def LiveTrading(
        self, request_iterator: AsyncIterator[TradingMessage | None], context: Context
    ) -> None:
        caller = _caller()
        metadata = dict(context.invocation_metadata() or ())
        flag = str(metadata.get(CANCEL_ON_DISCONNECT, "")).lower()
        cancel_on_disconnect = flag in ("1", "true", "yes")
        if self._desk.failed is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_TEXT)
        session = self._desk.open_session(caller, cancel_on_disconnect=cancel_on_disconnect)
        log.info("trading_session_opened", cancel_on_disconnect=cancel_on_disconnect)
        # tells the client the session is open: it may write without racing a refusal
        await context.send_initial_metadata(((SESSION_HEADER, "open"),))
        writer = asyncio.ensure_future(_write_session(session, context))
        reader = asyncio.ensure_future(self._read_session(request_iterator, session))
        problem: tuple[grpc.StatusCode, str] | None = None
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                problem = reader.result()
                if problem is None:  # the client is done sending: tell it what is pending
                    flushed = asyncio.ensure_future(session.outbox.join())
                    await asyncio.wait({writer, flushed}, return_when=asyncio.FIRST_COMPLETED)
                    flushed.cancel()
            if writer.done() and problem is None:
                problem = _writer_problem(writer, session, context)
        finally:
            reader.cancel()
            writer.cancel()
            self._desk.close_session(session)
            log.info("trading_session_closed", orders_placed=len(session.placed))
        if problem is not None:
            await context.abort(*problem)

    async def _read_session(
        self, request_iterator: AsyncIterator[TradingMessage | None], session: Session
    ) -> tuple[grpc.StatusCode, str] | None:
        """Act on each client message; returns why the call must end, or None when the client
        half-closed."""
        desk, caller = self._desk, session.account_id
        async for message in request_iterator:
            kind = message.WhichOneof("payload") if message is not None else None
            try:
                if kind == "new_order":
                    assert message is not None
                    spec = convert.spec_from_proto(message.new_order, caller)
                    if isinstance(spec, Malformed):
                        return grpc.StatusCode.INVALID_ARGUMENT, str(spec)
                    desk.place(spec, caller, session)
                elif kind == "cancel":
                    assert message is not None
                    target = convert.cancel_from_proto(message.cancel, caller)
                    if isinstance(target, Malformed):
                        return grpc.StatusCode.INVALID_ARGUMENT, f"cancel: {target}"
                    order_id, account_id = target
                    desk.cancel(order_id, caller, session, account_id)
                else:
                    return (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "a LiveTrading client sends new_order or cancel messages",
                    )
            except JournalError:
                return grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_TEXT
        return None


def _withdrawn_results(
    results: list[OrderResult],
    specs: list[OrderSpec],
    done: list[BaseException | None],
    caller: str,
) -> None:
    """Replace the results of the submissions Kafka refused to record (withdrawn) with their
    refusal; raises the first other failure (JournalError: the log failed)."""
    for position, (spec, error) in enumerate(zip(specs, done, strict=True)):
        if isinstance(error, RecordRefusedError):
            results[position] = convert.refused_result(refusal(spec, caller, error))
        elif error is not None:
            raise error


async def _write_session(session: Session, context: Context) -> None:
    """Write the session's messages in order, each once its events are committed; returns
    when the session overflowed."""
    outbox = session.outbox
    while not session.overflowed:
        committed, message = await outbox.get()
        try:
            try:
                await committed
            except RecordRefusedError:
                continue  # withdrawn, never recorded: the session hears the refusal instead
            await context.write(message)
        finally:
            outbox.task_done()


def _writer_problem(
    writer: asyncio.Future[None], session: Session, context: Context
) -> tuple[grpc.StatusCode, str] | None:
    """Why the call ends, now that the writer stopped; None when the client went away."""
    if session.overflowed:
        return (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "this session fell too far behind; reconnect (orders.lifecycle has every change)",
        )
    error = writer.exception() if not writer.cancelled() else None
    if isinstance(error, JournalError):
        return grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_TEXT
    if context.cancelled() or context.done():
        return None
    if error is not None:
        raise error
    return None


async def _refuse_batch(context: Context, position: int, problem: str) -> NoReturn:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"order {position} of the batch: {problem}; nothing in the batch was placed",
    )


def _caller() -> str:
    account = CURRENT_ACCOUNT.get()
    if account is None:  # the interceptor authenticates every trading call first
        raise RuntimeError("trading call without an authenticated account")
    return account.account_id


def _summary(results: list[OrderResult]) -> OrderBatchSummary:
    rejected = [result for result in results if result.reject_reason]
    return OrderBatchSummary(
        accepted=len(results) - len(rejected),
        rejected=len(rejected),
        rejection_reasons=[f"{result.order_id}: {result.reject_text}" for result in rejected],
        results=results,
    )

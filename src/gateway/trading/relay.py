"""Trading on a worker that does not own the order book: forward the calls to the owner.

With ``mdgw gateway --workers N`` the kernel spreads connections over the workers, but one
order book must decide every order (idempotency, limits, the venue's liquidity). Worker 0 owns
it and also listens on a Unix socket in a private directory; the other workers relay
SubmitOrders and LiveTrading there, naming the caller they authenticated
(``security.RELAYED_ACCOUNT``). The owner's answers and status codes come back unchanged (the
owner marks its statuses with trailing metadata ``x-mdgw-trading-owner``). A status the owner
did not send (its socket is gone while it restarts, a deadline passed on the way) is never
passed on as gRPC wrote it, which names the internal socket: the client gets UNAVAILABLE (or
the deadline) with ``OWNER_UNREACHABLE``, a retry hint. ``watch_owner`` follows the connection
to the owner, so the worker's health for ``TRADING_HEALTH`` says NOT_SERVING while the owner
cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

import grpc

from financial.marketdata.v2.orders_pb2 import OrderBatchSummary, OrderRequest, TradingMessage
from gateway.client import CANCEL_ON_DISCONNECT
from gateway.security import CURRENT_ACCOUNT, RELAYED_ACCOUNT, SERVICE

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# The gRPC health service name that says whether this process can serve trading calls (its own
# order book's log works, or the owner it relays to is reachable). Market data is "" and
# MarketDataService, which stay SERVING while only trading cannot be served.
TRADING_HEALTH = "mdgw.trading"
# Trailing metadata on every status the owner sends its relays.
OWNER_MARK = ("x-mdgw-trading-owner", "1")
OWNER_UNREACHABLE = (
    "trading is restarting on this gateway (its order book is not reachable from here); "
    "retry in a few seconds: resending the same order ids is safe, they are never placed twice"
)
DEADLINE_ON_THE_WAY = (
    "the deadline passed before the order book answered; the outcome is unknown: resend with "
    "the same order ids to learn it (they are never placed twice)"
)
# Reconnect to a restarted owner within about a second (gRPC's default backoff reaches 120 s).
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class TradingRelay:
    def __init__(self, socket_path: Path, max_batch_orders: int) -> None:
        self._channel = grpc.aio.insecure_channel(f"unix:{socket_path}", options=_CHANNEL_OPTIONS)
        self._max_batch_orders = max_batch_orders
        self._submit = self._channel.stream_unary(
            f"/{SERVICE}/SubmitOrders",
            request_serializer=OrderRequest.SerializeToString,
            response_deserializer=OrderBatchSummary.FromString,
        )
        self._live = self._channel.stream_stream(
            f"/{SERVICE}/LiveTrading",
            request_serializer=TradingMessage.SerializeToString,
            response_deserializer=TradingMessage.FromString,
        )

    async def close(self) -> None:
        await self._channel.close()

    async def watch_owner(self, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Call ``on_change(reachable)`` now and whenever the connection to the owner comes or
        goes (runs until cancelled)."""
        channel = self._channel
        reachable: bool | None = None
        while True:
            state = channel.get_state(try_to_connect=True)
            now_reachable = state is grpc.ChannelConnectivity.READY
            if now_reachable != reachable:
                reachable = now_reachable
                await on_change(reachable)
            await channel.wait_for_state_change(state)

    async def SubmitOrders(
        self, request_iterator: AsyncIterator[OrderRequest | None], context: Context
    ) -> OrderBatchSummary:
        requests: list[OrderRequest] = []
        async for request in request_iterator:
            if request is None or len(requests) >= self._max_batch_orders:
                problem = "not an OrderRequest" if request is None else "too many orders"
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"order {len(requests) + 1} of the batch: {problem}; nothing was placed",
                )
            requests.append(request)

        async def forward() -> AsyncIterator[OrderRequest]:
            for request in requests:
                yield request

        try:
            answer: OrderBatchSummary = await self._submit(
                forward(), metadata=_metadata(context), timeout=context.time_remaining()
            )
        except grpc.aio.AioRpcError as exc:
            await _pass_on(context, exc.code(), exc.details(), exc.trailing_metadata())
        return answer

    async def LiveTrading(
        self, request_iterator: AsyncIterator[TradingMessage | None], context: Context
    ) -> None:
        call = self._live(metadata=_metadata(context), timeout=context.time_remaining())
        sending = asyncio.ensure_future(_forward(request_iterator, call))
        with contextlib.suppress(grpc.aio.AioRpcError):  # the call's status comes below
            opened = await call.initial_metadata()  # the owner's "session open"
            await context.send_initial_metadata(tuple(opened or ()))
        try:
            async for message in call:
                await context.write(message)
        except grpc.aio.AioRpcError as exc:
            if not _malformed(sending):
                await _pass_on(context, exc.code(), exc.details(), exc.trailing_metadata())
        finally:
            sending.cancel()
            call.cancel()  # the client went away: the owner ends the session (and its policy)
        if _malformed(sending):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a TradingMessage")
        code = await call.code()
        if code != grpc.StatusCode.OK:
            await _pass_on(context, code, await call.details(), await call.trailing_metadata())


async def _pass_on(
    context: Context, code: grpc.StatusCode, details: str | None, trailing: Any
) -> NoReturn:
    """End the client's call with the owner's status, or, when the owner did not send it
    (no ``OWNER_MARK``), with a status of our own that names nothing internal."""
    if OWNER_MARK in tuple(trailing or ()):
        await context.abort(code, details or "")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        await context.abort(code, DEADLINE_ON_THE_WAY)
    if code is grpc.StatusCode.CANCELLED:
        await context.abort(code, "cancelled")
    await context.abort(grpc.StatusCode.UNAVAILABLE, OWNER_UNREACHABLE)


LiveCall: TypeAlias = "grpc.aio.StreamStreamCall[Any, TradingMessage]"


async def _forward(requests: AsyncIterator[TradingMessage | None], call: LiveCall) -> bool:
    """Client to owner; True when the client sent something that is not a TradingMessage
    (the owner's call is then cancelled)."""
    async for message in requests:
        if message is None:
            call.cancel()
            return True
        await call.write(message)
    await call.done_writing()
    return False


def _malformed(sending: asyncio.Future[bool]) -> bool:
    return (
        sending.done()
        and not sending.cancelled()
        and sending.exception() is None
        and (sending.result())
    )


def _metadata(context: Context) -> tuple[tuple[str, str], ...]:
    account = CURRENT_ACCOUNT.get()
    if account is None:  # the interceptor authenticates every trading call first
        raise RuntimeError("trading call without an authenticated account")
    pairs = [(RELAYED_ACCOUNT, account.account_id)]
    for key, value in context.invocation_metadata() or ():
        if key == CANCEL_ON_DISCONNECT and isinstance(value, str):
            pairs.append((key, value))
    return tuple(pairs)

"""Trading on a worker that does not own the order book: forward the calls to the owner.

With ``mdgw gateway --workers N`` the kernel spreads connections over the workers, but one
order book must decide every order (idempotency, limits, the venue's liquidity). Worker 0 owns
it and also listens on a Unix socket in a private directory; the other workers relay
SubmitOrders and LiveTrading there, naming the caller they authenticated
(``security.RELAYED_ACCOUNT``). The owner's answers and status codes come back unchanged.
While the owner restarts, relayed calls fail UNAVAILABLE (retry: order ids make it safe).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from financial.marketdata.v2.orders_pb2 import OrderBatchSummary, OrderRequest, TradingMessage
from gateway.client import CANCEL_ON_DISCONNECT
from gateway.security import CURRENT_ACCOUNT, RELAYED_ACCOUNT, SERVICE

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class TradingRelay:
    def __init__(self, socket_path: Path, max_batch_orders: int) -> None:
        self._channel = grpc.aio.insecure_channel(f"unix:{socket_path}")
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
            await context.abort(exc.code(), exc.details() or "")
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
                await context.abort(exc.code(), exc.details() or "")
        finally:
            sending.cancel()
            call.cancel()  # the client went away: the owner ends the session (and its policy)
        if _malformed(sending):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a TradingMessage")
        code = await call.code()
        if code != grpc.StatusCode.OK:
            await context.abort(code, await call.details())


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

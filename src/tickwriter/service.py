"""TickWriterService: synchronous writes for internal callers that need an acknowledgement.

Uses the same validation, row building and writer as the Kafka path. Invalid input is
INVALID_ARGUMENT (nothing of the call is written); Cassandra down is UNAVAILABLE (safe to retry:
rows are idempotent and bars merge). An unexpected error is logged with its traceback and
answered INTERNAL, with no detail for the client (``ReportUnexpectedErrors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import grpc
import structlog

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.prices_pb2 import PriceUpdate, TickBatch
from financial.marketdata.v2.services_pb2 import WriteAck
from tickwriter.daily_bars import fold
from tickwriter.decode import validated_tick_row
from tickwriter.errors import RecordRejected, WriteFailed
from tickwriter.ports import RowWriter
from tickwriter.rows import TickRow

log = structlog.get_logger(__name__)
MAX_BATCH_TICKS = 10_000


class TickWriterServicer(services_pb2_grpc.TickWriterServiceServicer):
    def __init__(self, writer: RowWriter) -> None:
        self._writer = writer

    async def WriteTick(
        self, request: PriceUpdate, context: grpc.aio.ServicerContext[PriceUpdate, WriteAck]
    ) -> WriteAck:
        rows = await self._validate(context, [request])
        return await self._write(context, rows)

    async def WriteBatch(
        self, request: TickBatch, context: grpc.aio.ServicerContext[TickBatch, WriteAck]
    ) -> WriteAck:
        if not request.ticks:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch has no ticks")
        if len(request.ticks) > MAX_BATCH_TICKS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"batch over {MAX_BATCH_TICKS} ticks; split it"
            )
        rows = await self._validate(context, list(request.ticks))
        return await self._write(context, rows)

    async def _validate(
        self, context: grpc.aio.ServicerContext[Any, WriteAck], ticks: Sequence[PriceUpdate]
    ) -> list[TickRow]:
        rows = []
        for index, tick in enumerate(ticks):
            try:
                rows.append(validated_tick_row(tick, tick.SerializeToString()))
            except RecordRejected as exc:
                where = f"tick {index}: " if len(ticks) > 1 else ""
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{where}{exc}")
        return rows

    async def _write(
        self, context: grpc.aio.ServicerContext[Any, WriteAck], rows: list[TickRow]
    ) -> WriteAck:
        # The rows and their day bars in one round: acknowledged only when both are stored.
        bars = list(fold(rows).values())
        try:
            elapsed_s = await asyncio.to_thread(self._writer.write, rows, bars)
        except WriteFailed as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"Cassandra did not take the write: {exc}"
            )
        return WriteAck(
            success=True, write_latency_us=round(elapsed_s * 1e6), rows_written=len(rows)
        )


# grpc-stubs type handler behaviours as plain callables; on a grpc.aio server they are coroutines.
_Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class BindRpcContext(grpc.aio.ServerInterceptor):
    """Binds the RPC name and the caller's x-request-id to every log line of the call."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        structlog.contextvars.clear_contextvars()
        metadata = dict(handler_call_details.invocation_metadata or ())
        structlog.contextvars.bind_contextvars(
            rpc=handler_call_details.method, request_id=metadata.get("x-request-id", "-")
        )
        return await continuation(handler_call_details)


class ReportUnexpectedErrors(grpc.aio.ServerInterceptor):
    """The one place an unexpected exception of a unary RPC is logged (with its traceback) and
    turned into INTERNAL. Statuses set on purpose (context.abort) pass through untouched."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = cast(_Behavior, handler.unary_unary)

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("rpc_failed_unexpectedly")
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

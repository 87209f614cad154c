"""TickWriterService: synchronous writes for internal callers that need an acknowledgement.

Uses the same validation, limits, row building and writer as the Kafka path. Invalid input is
INVALID_ARGUMENT (nothing of the call is written), with a message that names the field and its
size, never echoes the value: bytes that are not the request message, a batch over
``MAX_BATCH_TICKS`` ticks, a tick over 16 KiB, an exchange, symbol or venue_symbol over 64
characters or a feed_handler_id over 256 (``marketcore.ticks``), a tick the rules refuse, or a
tick Cassandra refuses for good (a value it cannot store). Cassandra down is UNAVAILABLE (safe
to retry: rows are idempotent and bars merge). An unexpected error is logged with its traceback
and answered INTERNAL, with no detail for the client (``GuardCalls``).

Callers are checked as the gateway checks them (``marketinfra.grpc_security``): a bearer token
with the ``write_ticks`` permission on every call (UNAUTHENTICATED, PERMISSION_DENIED), over
TLS or mutual TLS; plaintext only on loopback (``TickWriterSettings.grpc_problem``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import grpc
import structlog

from financial.marketdata.v2 import services_pb2, services_pb2_grpc
from financial.marketdata.v2.prices_pb2 import PriceUpdate, TickBatch
from financial.marketdata.v2.services_pb2 import WriteAck
from marketinfra.grpc_security import REFUSALS, Authenticator, AuthFailure, lenient
from tickwriter import metrics
from tickwriter.daily_bars import fold
from tickwriter.decode import validated_tick_row
from tickwriter.errors import RecordRejected, WriteFailed, WriteRefused
from tickwriter.ports import RowWriter
from tickwriter.rows import TickRow

log = structlog.get_logger(__name__)
SERVICE: str = services_pb2.DESCRIPTOR.services_by_name["TickWriterService"].full_name
WRITE_TICKS = "write_ticks"  # the permission both RPCs need
METHOD_PERMISSIONS = {f"/{SERVICE}/WriteTick": WRITE_TICKS, f"/{SERVICE}/WriteBatch": WRITE_TICKS}
MAX_BATCH_TICKS = 10_000


class TickWriterServicer(services_pb2_grpc.TickWriterServiceServicer):
    def __init__(self, writer: RowWriter) -> None:
        self._writer = writer

    async def WriteTick(
        self,
        request: PriceUpdate | None,
        context: grpc.aio.ServicerContext[PriceUpdate, WriteAck],
    ) -> WriteAck:
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a PriceUpdate")
        rows = await self._validate(context, [request])
        return await self._write(context, rows)

    async def WriteBatch(
        self, request: TickBatch | None, context: grpc.aio.ServicerContext[TickBatch, WriteAck]
    ) -> WriteAck:
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a TickBatch")
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
            where = f"tick {index}: " if len(ticks) > 1 else ""
            try:
                rows.append(validated_tick_row(tick, tick.SerializeToString()))
            except RecordRejected as exc:
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
        except WriteRefused as exc:  # the ticks themselves: a retry would fail the same way
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Cassandra refused the write: {exc}"
            )
        return WriteAck(
            success=True, write_latency_us=round(elapsed_s * 1e6), rows_written=len(rows)
        )


def add_to_server(servicer: TickWriterServicer, server: grpc.aio.Server) -> None:
    """Register like the generated ``add_TickWriterServiceServicer_to_server``, except that
    bytes that are not the request reach the handlers as None (INVALID_ARGUMENT), not as
    gRPC's UNKNOWN naming a Python exception."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "WriteTick": grpc.unary_unary_rpc_method_handler(
            servicer.WriteTick, lenient(PriceUpdate), WriteAck.SerializeToString
        ),
        "WriteBatch": grpc.unary_unary_rpc_method_handler(
            servicer.WriteBatch, lenient(TickBatch), WriteAck.SerializeToString
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


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


class GuardCalls(grpc.aio.ServerInterceptor):
    """Per unary call: the caller is authenticated first (``tokens``; None: anyone, for tests
    of the handlers alone), then the one place an unexpected exception is logged (with its
    traceback) and turned into INTERNAL. Statuses set on purpose (context.abort) pass through
    untouched."""

    def __init__(self, tokens: Authenticator | None) -> None:
        self._tokens = tokens

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
        method = handler_call_details.method
        tokens = self._tokens

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if tokens is not None:
                outcome = tokens.authenticate(method, dict(context.invocation_metadata() or ()))
                if isinstance(outcome, AuthFailure):
                    metrics.AUTH_FAILURES.labels(outcome.value).inc()
                    await context.abort(*REFUSALS[outcome])
                if outcome is not None:
                    structlog.contextvars.bind_contextvars(account=outcome.account_id)
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                if context.code() is not None:  # sending our own status failed: do not abort twice
                    log.info("rpc_status_not_delivered", error=repr(exc))
                    return None
                log.exception("rpc_failed_unexpectedly")
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

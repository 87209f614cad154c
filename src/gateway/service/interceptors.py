"""One server interceptor for every call: log context, authentication, metrics, and exception
recovery, in a single wrapper (one extra frame per call, not four).

- structlog context per call: ``rpc``, ``peer``, ``request_id`` (``x-request-id`` metadata, or
  ``-``) and, once authenticated, ``account``.
- Authentication with ``security.TokenTable``: UNAUTHENTICATED or PERMISSION_DENIED before the
  handler runs; the account is available to handlers as ``security.CURRENT_ACCOUNT``.
- Metrics: ``gateway_rpc_handling_seconds{rpc}`` and ``gateway_rpcs_total{rpc,code}``.
- An exception escaping a handler is logged with its traceback here and the client gets
  INTERNAL with no detail. ``context.abort`` (AbortError) and cancellation pass through.

The wrapped handler is built once per method and cached; per-call work happens inside it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import structlog

from gateway import metrics
from gateway.core.limits import MAX_REQUEST_ID_LENGTH
from gateway.security import CURRENT_ACCOUNT, Account, Authenticator, AuthFailure
from marketinfra.grpc_security import REFUSALS

log = structlog.get_logger(__name__)
Behaviour = Callable[..., Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, tokens: Authenticator, trailing_metadata: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """``trailing_metadata``: sent with every call's status (the trading owner marks its
        answers with it, so a relay tells them from its own connection errors)."""
        self._tokens = tokens
        self._trailing = trailing_metadata
        self._wrapped: dict[tuple[str, int], Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cache_key = (method, id(handler))
        wrapped = self._wrapped.get(cache_key)
        if wrapped is None:
            wrapped = self._wrap(method, handler)
            self._wrapped[cache_key] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        call = _Call(method, self._tokens, self._trailing)
        deserializer, serializer = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary), deserializer, serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                call.streaming(handler.unary_stream), deserializer, serializer
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                call.unary(handler.stream_unary), deserializer, serializer
            )
        assert handler.stream_stream is not None  # one of the four is always set
        return grpc.stream_stream_rpc_method_handler(
            call.streaming(handler.stream_stream), deserializer, serializer
        )


class _Call:
    """The per-method wrapper factory; ``rpc`` is the bounded metric label."""

    def __init__(
        self, method: str, tokens: Authenticator, trailing: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.method = method
        self.rpc = method.rsplit("/", 1)[-1]
        self.tokens = tokens
        self.trailing = trailing
        self.latency = metrics.RPC_LATENCY.labels(self.rpc)
        self._finished: dict[str, Any] = {}  # status code -> counter child (labels() locks)

    async def _begin(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.trailing:
            context.set_trailing_metadata(self.trailing)
        metadata = dict(context.invocation_metadata() or ())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            rpc=self.rpc,
            peer=context.peer(),
            # a client's header: logged on every line of the call, so cut to its limit
            request_id=str(metadata.get("x-request-id", "-"))[:MAX_REQUEST_ID_LENGTH],
        )
        outcome = self.tokens.authenticate(self.method, metadata)
        if isinstance(outcome, AuthFailure):
            metrics.AUTH_FAILURES.labels(outcome.value).inc()
            code, detail = REFUSALS[outcome]
            await context.abort(code, detail)
        if isinstance(outcome, Account):
            structlog.contextvars.bind_contextvars(account=outcome.account_id)
            CURRENT_ACCOUNT.set(outcome)

    def _finish(self, started: float, code: str) -> None:
        self.latency.observe(time.perf_counter() - started)
        counter = self._finished.get(code)
        if counter is None:
            counter = self._finished[code] = metrics.RPCS.labels(self.rpc, code)
        counter.inc()

    def unary(self, behaviour: Behaviour) -> Behaviour:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                await self._begin(context)
                return await behaviour(request, context)
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception as exc:  # noqa: BLE001 - the one place any escape becomes INTERNAL
                code = "INTERNAL"
                code = await _recover(exc, context)
            except BaseException:
                code = "CANCELLED"
                raise
            finally:
                self._finish(started, code)
            return None

        return wrapped

    def streaming(self, behaviour: Behaviour) -> Behaviour:
        if not inspect.isasyncgenfunction(behaviour):
            return self.unary(behaviour)  # a handler that writes with context.write()

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                await self._begin(context)
                responses: AsyncIterator[Any] = behaviour(request, context)
                async for response in responses:
                    yield response
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception as exc:  # noqa: BLE001 - the one place any escape becomes INTERNAL
                code = "INTERNAL"
                code = await _recover(exc, context)
            except BaseException:
                code = "CANCELLED"
                raise
            finally:
                self._finish(started, code)

        return wrapped


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


async def _recover(exc: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Log an unexpected exception with its traceback (here only) and end the call with a bare
    INTERNAL: ``abort`` raises AbortError, so the client never sees the original exception.

    Unless the handler had already ended the call with a status (``context.code()`` is set):
    then the exception came from sending that status, because the call ended first (a cut-off
    client that never read again, a server stopping). Aborting again would fail ("Abort
    already called!") and count an INTERNAL that never was; the call keeps its own code.
    Returns the code to count."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        log.info("rpc_status_not_delivered", code=code.name, error=repr(exc))
        return code.name
    log.error("rpc_failed", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    return "INTERNAL"  # not reached: abort raises

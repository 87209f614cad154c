"""A small async client for MarketDataService.

- Channel: ``round_robin`` over every address the target resolves to (``dns:///name:port``
  spreads calls over replicas), retries for UNAVAILABLE only (never for other codes; a stream
  is retried only before its first message, as gRPC retries work), keepalive pings.
- Every call has a deadline: ``timeout_s`` for GetQuote and SubmitOrders, ``stream_timeout_s``
  for a stream.
- ``submit_orders`` is money-safe: every order carries its id before it is sent, and after
  DEADLINE_EXCEEDED or UNAVAILABLE (the answer may be lost, not the order) the same orders are
  sent again, ids and all, with backoff: the gateway answers an order id it already placed
  with that order's state (``duplicate``), never placing it twice. When every attempt goes
  unanswered it raises ``OrderOutcomeUnknown`` naming the ids.
- ``stream_prices`` resubscribes, with backoff, when a stream ends UNAVAILABLE (server
  shutting down, connection aged out) or its deadline passes: each new stream starts again
  with a snapshot and ``stream_sequence`` 1.
- Tokens travel as ``authorization: Bearer ...`` metadata on every call.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.orders_pb2 import OrderBatchSummary, OrderRequest, TradingMessage
from financial.marketdata.v2.prices_pb2 import (
    PriceSubscription,
    PriceUpdate,
    PriceUpdateBatch,
    QuoteRequest,
    QuoteResponse,
)
from gateway.config import ClientSettings
from gateway.errors import OrderOutcomeUnknown
from gateway.security import SERVICE, channel_credentials
from marketcore.backoff import BackoffPolicy, backoff_delay

_MIB = 1024 * 1024
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": SERVICE}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}
RESUBSCRIBE_ON = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# SubmitOrders is sent again after these: the orders may have been placed and only the answer
# lost, and a resend with the same order ids is answered, never placed twice.
RESEND_ORDERS_ON = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
ORDER_ATTEMPTS = 4
ORDER_RESEND_BACKOFF = BackoffPolicy(base_s=0.5, cap_s=4.0)
# on_resend(attempt that failed, its error, seconds before the next one)
ResendHook = Callable[[int, grpc.aio.AioRpcError, float], None]
ChannelOption = tuple[str, str | int]


def channel_options(server_name: str = "") -> list[ChannelOption]:
    options: list[ChannelOption] = [
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", 16 * _MIB),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def rpc_error_text(exc: grpc.aio.AioRpcError, *, insecure: bool) -> str:
    """``CODE: details`` of a failed call, or one line saying what to change when the call
    failed on TLS (gRPC's text is the TLS library's handshake error, with no hint)."""
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        text = details.lower()
        if not insecure and "wrong_version_number" in text:
            return (
                "UNAVAILABLE: the gateway does not answer in TLS (is it running with --insecure? "
                "then pass --insecure here too, or set GATEWAY_CLIENT_INSECURE=true)"
            )
        if not insecure and "certificate" in text and "handshake" in text:
            return (
                "UNAVAILABLE: the gateway's TLS certificate is not trusted here (set "
                "GATEWAY_CLIENT_CA_FILE to its CA; `mdgw certs` prints the development one)"
            )
        if not insecure and "handshake" in text:
            return (
                "UNAVAILABLE: the TLS handshake with the gateway failed (check --insecure and "
                "the GATEWAY_CLIENT_* TLS files)"
            )
        if insecure and "socket closed" in text:
            return (
                "UNAVAILABLE: the gateway closed the plaintext connection at once (if it uses "
                "TLS, leave out --insecure); or it is restarting: try again"
            )
    return f"{code.name}: {details}"


# LiveTrading metadata: cancel the session's orders when it ends (see service/trading.py).
CANCEL_ON_DISCONNECT = "x-cancel-on-disconnect"
# LiveTrading initial metadata from the gateway: the session is open (write after it).
SESSION_HEADER = "x-trading-session"


class GatewayClient:
    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str = "",
        timeout_s: float = 5.0,
        stream_timeout_s: float = 3_600.0,
        server_name: str = "",
        extra_options: Sequence[ChannelOption] = (),
    ) -> None:
        """``credentials`` None means plaintext (a gateway in insecure mode on loopback)."""
        options = [*channel_options(server_name), *extra_options]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = services_pb2_grpc.MarketDataServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s
        self.resubscribe_backoff = BackoffPolicy(base_s=0.2, cap_s=5.0)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> GatewayClient:
        credentials = None
        if not settings.insecure:
            credentials = channel_credentials(
                settings.ca_file, settings.cert_file, settings.key_file
            )
        return cls(
            settings.target,
            credentials=credentials,
            token=settings.token.get_secret_value(),
            timeout_s=settings.timeout_s,
            stream_timeout_s=settings.stream_timeout_s,
            server_name=settings.server_name,
        )

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def get_quote(
        self, symbol: str, exchange: str = "", *, timeout_s: float | None = None
    ) -> QuoteResponse:
        return await self._stub.GetQuote(
            QuoteRequest(symbol=symbol, exchange=exchange),
            timeout=timeout_s or self.timeout_s,
            metadata=self._metadata,
        )

    async def submit_orders(
        self,
        orders: Iterable[OrderRequest],
        *,
        timeout_s: float | None = None,
        attempts: int = ORDER_ATTEMPTS,
        on_resend: ResendHook | None = None,
    ) -> OrderBatchSummary:
        """SubmitOrders: one result per order, in order (an order placed by an earlier attempt
        comes back with ``duplicate`` set). Each order must carry its ``order_id``: it is what
        makes sending again safe. After DEADLINE_EXCEEDED or UNAVAILABLE the same orders are
        sent again, up to ``attempts`` calls in all; ``on_resend`` hears of each resend. Raises
        ``OrderOutcomeUnknown`` (naming the ids) when no attempt was answered, the AioRpcError
        for any other status (the gateway refused the call: nothing was placed, except for an
        INTERNAL or UNKNOWN, whose outcome is unknown too), ValueError for an order without id.
        """
        batch = list(orders)
        missing = [str(n + 1) for n, order in enumerate(batch) if not order.order_id]
        if missing:
            raise ValueError(
                f"order(s) {', '.join(missing)} of the batch have no order_id: set one before "
                "sending, so that a resend cannot place an order twice"
            )
        attempt = 1
        while True:
            try:
                return await self._submit_once(batch, timeout_s or self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code not in RESEND_ORDERS_ON:
                    raise
                if attempt >= attempts:
                    raise OrderOutcomeUnknown(
                        [order.order_id for order in batch], code.name, exc.details() or "", attempt
                    ) from exc
                delay_s = backoff_delay(attempt, ORDER_RESEND_BACKOFF, random.random())
                if on_resend is not None:
                    on_resend(attempt, exc, delay_s)
            await asyncio.sleep(delay_s)
            attempt += 1

    async def _submit_once(
        self, batch: Sequence[OrderRequest], timeout_s: float
    ) -> OrderBatchSummary:
        async def requests() -> AsyncIterator[OrderRequest]:
            for order in batch:
                yield order

        return await self._stub.SubmitOrders(requests(), timeout=timeout_s, metadata=self._metadata)

    def trading_session(
        self, *, cancel_on_disconnect: bool = False
    ) -> grpc.aio.StreamStreamCall[TradingMessage, TradingMessage]:
        """A LiveTrading call: ``write`` new orders and cancels, ``read`` (or iterate)
        execution reports, status updates, positions and rejects; ``done_writing`` to end.
        With ``cancel_on_disconnect`` the orders placed in it are cancelled when it ends."""
        metadata = self._metadata
        if cancel_on_disconnect:
            metadata = (*metadata, (CANCEL_ON_DISCONNECT, "true"))
        return self._stub.LiveTrading(timeout=self.stream_timeout_s, metadata=metadata)

    def subscribe(
        self, symbols: Sequence[str], exchange: str = "", throttle_ms: int = 0
    ) -> grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdate]:
        """One StreamPrices call, as is (no resubscription): for callers that want the status."""
        request = PriceSubscription(
            symbols=list(symbols), exchange=exchange, throttle_ms=throttle_ms
        )
        return self._stub.StreamPrices(
            request, timeout=self.stream_timeout_s, metadata=self._metadata
        )

    def subscribe_batches(
        self,
        symbols: Sequence[str],
        exchange: str = "",
        throttle_ms: int = 0,
        max_batch_size: int = 0,
        max_delay_ms: int = 0,
    ) -> grpc.aio.UnaryStreamCall[PriceSubscription, PriceUpdateBatch]:
        request = PriceSubscription(
            symbols=list(symbols),
            exchange=exchange,
            throttle_ms=throttle_ms,
            max_batch_size=max_batch_size,
            max_delay_ms=max_delay_ms,
        )
        return self._stub.StreamPriceBatches(
            request, timeout=self.stream_timeout_s, metadata=self._metadata
        )

    async def stream_prices(
        self,
        symbols: Sequence[str],
        exchange: str = "",
        throttle_ms: int = 0,
        *,
        batched: bool = True,
        max_failed_attempts: int = 5,
    ) -> AsyncIterator[PriceUpdate]:
        """Live prices, one by one, resubscribing after UNAVAILABLE or a passed stream
        deadline. With ``batched`` they travel as StreamPriceBatches (several updates per
        message: far fewer messages for Python to handle at both ends), falling back to
        StreamPrices on a server that does not offer it (UNIMPLEMENTED). Other errors
        (UNAUTHENTICATED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED...) are raised, and so is the
        last error after ``max_failed_attempts`` subscriptions in a row gave nothing."""
        attempt = 0
        while True:
            call: grpc.aio.UnaryStreamCall[PriceSubscription, Any]
            if batched:
                call = self.subscribe_batches(symbols, exchange, throttle_ms)
            else:
                call = self.subscribe(symbols, exchange, throttle_ms)
            received = False
            try:
                async for message in call:
                    received = True
                    attempt = 0
                    if isinstance(message, PriceUpdateBatch):
                        for update in message.updates:
                            yield update
                    else:
                        yield message
            except grpc.aio.AioRpcError as exc:
                if batched and not received and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    batched = False  # an older server: plain StreamPrices from now on
                    continue
                if exc.code() not in RESUBSCRIBE_ON or attempt + 1 >= max_failed_attempts:
                    raise
            else:
                return  # the server ended the stream normally
            finally:
                call.cancel()
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt, self.resubscribe_backoff, random.random()))

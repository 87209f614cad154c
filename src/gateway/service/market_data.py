"""MarketDataService: StreamPrices, StreamPriceBatches and GetQuote here; SubmitOrders and
LiveTrading go to the trading handlers (``service/trading.py``), or answer UNIMPLEMENTED when
trading is off on this gateway.

Status codes: a malformed request (including bytes that are not the request message) is
INVALID_ARGUMENT; an unknown symbol in GetQuote NOT_FOUND; too many streams, or a client too
slow for its stream, RESOURCE_EXHAUSTED with the reason; the store unreachable for a fallback
read UNAVAILABLE; a stream ended because the server is stopping UNAVAILABLE (resubscribe).

Unknown symbols in a subscription are accepted and stay silent until their first tick (a
symbol may start trading after the subscription); only malformed ones are refused.

Streams are written with ``context.write`` from a task of their own (the "pump"), so a client
that stops reading, which blocks the write, can still be cut off: the watchdog cancels the
pump and the handler ends the call with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeAlias

import grpc
import structlog

from financial.marketdata.v2.orders_pb2 import OrderBatchSummary, OrderRequest, TradingMessage
from financial.marketdata.v2.prices_pb2 import PriceSubscription, QuoteRequest, QuoteResponse
from gateway import metrics
from gateway.core.fanout import ShapeGroup, Subscriber
from gateway.core.subscriptions import Invalid, Subscription, SubscriptionLimits
from gateway.core.updates import FeedUpdate
from gateway.errors import QuoteStoreError
from gateway.market import MarketData
from gateway.security import SERVICE
from gateway.service import convert
from marketinfra.grpc_security import lenient

log = structlog.get_logger(__name__)
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# Updates taken from the outbox per round; the rest stay conflatable meanwhile.
TAKE_PER_ROUND = 64
SHUTDOWN_REASON = "gateway shutting down: resubscribe"
WORKER_HEADER = "x-gateway-worker"
GROUP_FAILED = "gateway error while batching: resubscribe"
TRADING_OFF = "trading is not served by this gateway (GATEWAY_TRADING=off)"


class TradingHandlers(Protocol):
    """The two trading RPCs (served here, or relayed to the owner); requests that do not
    decode arrive as None."""

    async def SubmitOrders(
        self, request_iterator: AsyncIterator[OrderRequest | None], context: Context
    ) -> OrderBatchSummary: ...

    async def LiveTrading(
        self, request_iterator: AsyncIterator[TradingMessage | None], context: Context
    ) -> None: ...


class MarketDataServicer:
    def __init__(
        self,
        market: MarketData,
        limits: SubscriptionLimits,
        max_streams: int,
        trading: TradingHandlers | None = None,
        worker_name: str = "",
    ) -> None:
        self._market = market
        # sent as initial metadata on every stream: which process serves it
        self._identity = ((WORKER_HEADER, worker_name),) if worker_name else ()
        self._limits = limits
        self._max_streams = max_streams
        self._trading = trading
        self._pumps: dict[Subscriber[FeedUpdate], asyncio.Task[None]] = {}
        self._drivers: dict[ShapeGroup[FeedUpdate], asyncio.Task[None]] = {}
        self._closing = False

    # -- RPCs -------------------------------------------------------------------------------

    async def StreamPrices(self, request: PriceSubscription | None, context: Context) -> None:
        subscription = await self._subscription(request, context, batched=False)
        await self._stream(subscription, context, self._pump_updates)

    async def StreamPriceBatches(self, request: PriceSubscription | None, context: Context) -> None:
        subscription = await self._subscription(request, context, batched=True)
        await self._stream(subscription, context, self._pump_batches)

    async def GetQuote(self, request: QuoteRequest | None, context: Context) -> QuoteResponse:
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a QuoteRequest")
        query = convert.quote_query_from_proto(request)
        if isinstance(query, Invalid):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(query))
        try:
            answer = await self._market.quote(query)
        except QuoteStoreError as exc:
            metrics.STORE_ERRORS.labels(exc.operation).inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "quote store unavailable; retry")
        if answer is None:
            where = f" on {query.exchange}" if query.exchange else ""
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no quote for {query.symbol}{where}")
        metrics.QUOTES.labels("store" if answer.from_store else "memory").inc()
        return convert.quote_response(answer.quote, from_store=answer.from_store)

    async def SubmitOrders(
        self, request_iterator: AsyncIterator[OrderRequest | None], context: Context
    ) -> OrderBatchSummary:
        if self._trading is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, TRADING_OFF)
        return await self._trading.SubmitOrders(request_iterator, context)

    async def LiveTrading(
        self, request_iterator: AsyncIterator[TradingMessage | None], context: Context
    ) -> None:
        if self._trading is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, TRADING_OFF)
        await self._trading.LiveTrading(request_iterator, context)

    # -- lifecycle ---------------------------------------------------------------------------

    def close_streams(self) -> int:
        """Shutdown: refuse new streams; open ones send what is pending and end UNAVAILABLE."""
        self._closing = True
        return self._market.fanout.close_all(SHUTDOWN_REASON, time.monotonic_ns())

    async def watch_lag(self, interval_s: float) -> None:
        """Cut off subscribers past the lag limit (runs for the server's lifetime)."""
        while True:
            await asyncio.sleep(interval_s)
            for subscriber in self._market.cut_lagging():
                pump = self._pumps.get(subscriber)
                if pump is not None:
                    pump.cancel()  # it may be blocked in a write to a client that stopped reading

    # -- streams -----------------------------------------------------------------------------

    async def _subscription(
        self, request: PriceSubscription | None, context: Context, *, batched: bool
    ) -> Subscription:
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a PriceSubscription")
        subscription = convert.subscription_from_proto(request, self._limits, batched=batched)
        if isinstance(subscription, Invalid):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(subscription))
        if self._closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_REASON)
        if len(self._market.fanout) >= self._max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this gateway serves {self._max_streams} streams already; try another",
            )
        return subscription

    async def _stream(
        self,
        subscription: Subscription,
        context: Context,
        pump: Callable[[Subscriber[FeedUpdate], asyncio.Event, Context], Any],
    ) -> None:
        ready = asyncio.Event()
        queued_ns = time.monotonic_ns()
        subscriber = self._market.subscribe(subscription, ready.set)
        ending: tuple[grpc.StatusCode, str] | None = None
        log.info(
            "stream_opened",
            symbols=len(subscription.symbols),
            exchange=subscription.exchange,
            throttle_ms=subscription.throttle_ns // 1_000_000,
        )
        try:
            if self._identity:
                await context.send_initial_metadata(self._identity)
            await self._market.seed_from_store(subscriber, subscription, queued_ns)
            if subscription.max_delay_ns:  # batched: its shape's batches may be shared
                self._drive(self._market.share(subscriber))
            task: asyncio.Task[None] = asyncio.ensure_future(pump(subscriber, ready, context))
            task.add_done_callback(_retrieve)
            self._pumps[subscriber] = task
            await asyncio.wait({task})  # returns when the pump ends, also when it was cancelled
            if subscriber.cut_reason is not None:
                metrics.STREAM_ENDS.labels("slow_client").inc()
                log.warning("stream_cut_off", reason=subscriber.cut_reason, sent=subscriber.sent)
                ending = (grpc.StatusCode.RESOURCE_EXHAUSTED, subscriber.cut_reason)
            else:
                task.result()  # re-raises what broke the pump (the interceptor: INTERNAL)
                if subscriber.closing is not None:
                    metrics.STREAM_ENDS.labels("shutdown").inc()
                    ending = (grpc.StatusCode.UNAVAILABLE, subscriber.closing)
        finally:
            pending = self._pumps.pop(subscriber, None)
            if pending is not None and not pending.done():
                pending.cancel()
            metrics.STREAM_CONFLATED.inc(subscriber.outbox.conflated)
            stopped = self._market.unsubscribe(subscriber)
            if stopped is not None:
                self._drivers.pop(stopped).cancel()
            log.info("stream_closed", sent=subscriber.sent, conflated=subscriber.outbox.conflated)
        if ending is not None:
            # After the stream let go of everything: a client that stopped reading has a write
            # of ours stuck in its flow-control window, and the status waits behind it until
            # the client reads or the connection ends; the gateway holds nothing for it then.
            await context.abort(*ending)

    async def _pump_updates(
        self, subscriber: Subscriber[FeedUpdate], ready: asyncio.Event, context: Context
    ) -> None:
        """StreamPrices: one PriceUpdate per message, until cut off or the server closes."""
        outbox = subscriber.outbox
        wall_ns = time.time_ns
        while subscriber.cut_reason is None:
            ready.clear()
            if subscriber.closing is not None:
                taken = outbox.drain()
            else:
                taken = outbox.take(time.monotonic_ns(), TAKE_PER_ROUND)
            if taken:
                number = subscriber.number(len(taken))
                for update in taken:
                    sent_ns = wall_ns()
                    if not await _write(context, convert.stamp(update.payload, number, sent_ns)):
                        return
                    _observe_sent(update, sent_ns)
                    number += 1
                metrics.STREAM_UPDATES.inc(len(taken))
                continue
            if subscriber.closing is not None:
                return
            await _wait_ready(ready, outbox.next_ready_ns())

    async def _pump_batches(
        self, subscriber: Subscriber[FeedUpdate], ready: asyncio.Event, context: Context
    ) -> None:
        """StreamPriceBatches: what became ready since the last send, in one message of at most
        ``max_batch_size`` updates; an update waits at most ``max_delay`` for its batch. While
        the stream shares its shape's batches, it sends those (``inbox``) as they come."""
        outbox, inbox = subscriber.outbox, subscriber.inbox
        size = subscriber.subscription.max_batch_size
        while subscriber.cut_reason is None:
            ready.clear()
            if inbox:
                if not await _write_batch(subscriber, context, inbox.popleft().updates):
                    return
                continue
            if subscriber.closing is None and 0 < len(outbox) < size:
                await _let_batch_fill(subscriber, ready)
                if subscriber.cut_reason is not None:
                    return
            closing = subscriber.closing is not None
            taken = outbox.drain() if closing else outbox.take(time.monotonic_ns(), size)
            while taken:
                chunk, taken = taken[:size], taken[size:]
                if not await _write_batch(subscriber, context, chunk):
                    return
            if inbox:
                continue  # it joined its shape's group meanwhile
            if closing:
                return
            await _wait_ready(ready, outbox.next_ready_ns() if len(outbox) else None)

    def _drive(self, group: ShapeGroup[FeedUpdate] | None) -> None:
        """Start building a shape group's batches (``share`` just started it)."""
        if group is None:
            return
        ready = asyncio.Event()
        group.lead.wake = ready.set
        task = asyncio.ensure_future(self._build_batches(group, ready))

        def ended(task: asyncio.Task[None]) -> None:
            # only a stopped group's driver is cancelled; anything else is a bug: its streams
            # would wait for batches that never come, so they end and clients resubscribe
            if task.cancelled() or task.exception() is None:
                return
            log.error("shape_group_failed", error=repr(task.exception()))
            for subscriber in (*group.members, *group.waiting):
                subscriber.closing = GROUP_FAILED
                subscriber.wake()

        task.add_done_callback(ended)
        self._drivers[group] = task

    async def _build_batches(self, group: ShapeGroup[FeedUpdate], ready: asyncio.Event) -> None:
        """A shape group's batches: the batching rules of ``_pump_batches``, once for every
        member, each batch handed to them all (``FanOut.deliver``); never waits on a client."""
        lead, fanout = group.lead, self._market.fanout
        outbox, size = lead.outbox, group.shape.max_batch_size
        while True:
            ready.clear()
            if 0 < len(outbox) < size:
                await _let_batch_fill(lead, ready)
            now_ns = time.monotonic_ns()
            fanout.deliver(group, outbox.take(now_ns, size), now_ns)
            if not len(outbox):
                await _wait_ready(ready, None)


async def _let_batch_fill(subscriber: Subscriber[FeedUpdate], ready: asyncio.Event) -> None:
    """Wait up to max_delay for the batch to fill; the fan-out wakes the stream once, when it is
    full (or the stream must end, or joins its shape's group)."""
    subscriber.wake_at = subscriber.subscription.max_batch_size
    try:
        await _wait_ready(ready, time.monotonic_ns() + subscriber.subscription.max_delay_ns)
    finally:
        subscriber.wake_at = 1


async def _write_batch(
    subscriber: Subscriber[FeedUpdate], context: Context, updates: list[FeedUpdate]
) -> bool:
    """Number, stamp and write one batch; False when the call ended under us."""
    number = subscriber.number(len(updates))
    sent_ns = time.time_ns()
    message = convert.stamped_batch([u.payload for u in updates], number, sent_ns)
    if not await _write(context, message):
        return False
    for update in updates:
        _observe_sent(update, sent_ns)
    metrics.STREAM_UPDATES.inc(len(updates))
    return True


def _observe_sent(update: FeedUpdate, sent_ns: int) -> None:
    """The hops that end at this send: Kafka record time (ms precision) and feed receipt."""
    if update.record_time_ns:
        metrics.RECORD_TO_SEND.observe(max(0, sent_ns - update.record_time_ns) / 1e9)
    received_ns = update.tick.received_time_ns
    if received_ns:
        metrics.RECEIPT_TO_SEND.observe(max(0, sent_ns - received_ns) / 1e9)


async def _write(context: Context, data: bytes) -> bool:
    """Write one message; False when the call ended under us (the client went away)."""
    try:
        await context.write(data)
    except Exception:  # grpc raises a private error type for a dead call
        if context.cancelled() or context.done():
            return False
        raise
    return True


async def _wait_ready(ready: asyncio.Event, until_ns: int | None) -> None:
    """Wait for ``ready`` (an outbox gained a value, or the stream must end), or until
    ``until_ns`` on the monotonic clock. A timer that sets ``ready``, not ``wait_for``: this
    runs per batch, and ``wait_for`` costs a task per call."""
    if until_ns is None:
        await ready.wait()
        return
    timeout_s = (until_ns - time.monotonic_ns()) / 1e9
    if timeout_s <= 0:
        return
    timer = asyncio.get_running_loop().call_later(timeout_s, ready.set)
    try:
        await ready.wait()
    finally:
        timer.cancel()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a pump's failure as seen: when the handler was cancelled first (the client went
    away), nobody else looks at it."""
    if not task.cancelled():
        task.exception()


# -- registration -----------------------------------------------------------------------------


def _already_encoded(data: bytes) -> bytes:
    return data


def add_to_server(servicer: MarketDataServicer, server: grpc.aio.Server) -> None:
    """Register like the generated ``add_MarketDataServiceServicer_to_server``, except that
    the price streams write bytes already encoded (``convert.stamp``/``convert.stamped_batch``) and
    undecodable requests reach the handlers as None."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "StreamPrices": grpc.unary_stream_rpc_method_handler(
            servicer.StreamPrices, lenient(PriceSubscription), _already_encoded
        ),
        "StreamPriceBatches": grpc.unary_stream_rpc_method_handler(
            servicer.StreamPriceBatches, lenient(PriceSubscription), _already_encoded
        ),
        "GetQuote": grpc.unary_unary_rpc_method_handler(
            servicer.GetQuote, lenient(QuoteRequest), QuoteResponse.SerializeToString
        ),
        "SubmitOrders": grpc.stream_unary_rpc_method_handler(
            servicer.SubmitOrders, lenient(OrderRequest), OrderBatchSummary.SerializeToString
        ),
        "LiveTrading": grpc.stream_stream_rpc_method_handler(
            servicer.LiveTrading, lenient(TradingMessage), TradingMessage.SerializeToString
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)

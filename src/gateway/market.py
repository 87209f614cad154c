"""The process's market state on the event loop: the quote view, the fan-out, the store.

The Kafka feed hands decoded batches to ``apply`` (on the loop, so no locks); streams and
GetQuote read from here. A tick already seen (Kafka delivers at least once) is dropped first
(``core.dedupe``), so the quote view, the streams and the trading desk each take it once.
Rules live in ``core``; this module only sequences them with I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from gateway import metrics
from gateway.core.dedupe import SeenTicks
from gateway.core.fanout import FanOut, ShapeGroup, Subscriber
from gateway.core.ports import QuoteStore
from gateway.core.quotes import Quote, QuoteBook
from gateway.core.subscriptions import QuoteQuery, Subscription
from gateway.core.updates import FeedUpdate
from gateway.errors import QuoteStoreError
from gateway.service.convert import decode_update
from marketcore.instruments import InstrumentKey, InvalidInstrumentError
from marketcore.trading_calendar import trade_date_text

log = structlog.get_logger(__name__)
NANOS_PER_SECOND = 1_000_000_000
# After a failed store read for a quote's day, memory answers alone for this long.
STORE_RETRY_AFTER_NS = 5 * NANOS_PER_SECOND
# A stream's snapshot asks the store for at most this many instruments it does not know.
STORE_SNAPSHOT_MAX_LOOKUPS = 200


@dataclass(frozen=True, slots=True)
class QuoteAnswer:
    quote: Quote
    from_store: bool


class MarketData:
    def __init__(
        self,
        store: QuoteStore,
        probe_exchanges: Sequence[str],
        max_lag_ns: int,
        *,
        stream_depth: int = 1,
        started_ns: int | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.book = QuoteBook(started_ns if started_ns is not None else wall_ns())
        self.fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns, stream_depth)
        self.seen = SeenTicks()
        self._store = store
        self._probe_exchanges = list(probe_exchanges)
        self._monotonic_ns = monotonic_ns
        self._wall_ns = wall_ns
        self._store_retry_at_ns = 0
        self.applied = 0
        # called on the loop with each batch's fresh updates (the trading desk)
        self.listeners: list[Callable[[Sequence[FeedUpdate]], None]] = []

    # -- the feed ----------------------------------------------------------------------------

    def apply(self, updates: Sequence[FeedUpdate]) -> None:
        """Fold a batch from the feed into the view and offer the fresh ones to subscribers."""
        now_ns = self._monotonic_ns()
        book, fanout, seen = self.book, self.fanout, self.seen
        stale = duplicates = 0
        evicted = seen.evicted
        fresh: list[FeedUpdate] | None = [] if self.listeners else None
        for update in updates:
            tick = update.tick
            event_ns = tick.event_time_ns or tick.received_time_ns
            if seen.is_duplicate(
                tick.exchange, tick.symbol, tick.feed_handler_id, tick.feed_sequence, event_ns
            ):
                duplicates += 1
            elif book.apply(update):
                fanout.publish(update.key, update, now_ns)
                if fresh is not None:
                    fresh.append(update)
            else:
                stale += 1
        if fresh:
            for listener in self.listeners:
                listener(fresh)
        self.applied += len(updates)
        self._count(stale, duplicates, seen.evicted - evicted)
        if updates:
            metrics.FEED_RECORDS.labels("applied").inc(len(updates) - stale - duplicates)
            newest = max(update.event_ns for update in updates)
            metrics.FEED_DELAY.set(max(0.0, (self._wall_ns() - newest) / NANOS_PER_SECOND))
            metrics.INSTRUMENTS.set(len(book))

    @staticmethod
    def _count(stale: int, duplicates: int, evicted: int) -> None:
        if stale:
            metrics.FEED_RECORDS.labels("stale").inc(stale)
        if duplicates:
            metrics.FEED_RECORDS.labels("duplicate").inc(duplicates)
        if evicted:
            metrics.FEED_DEDUPE_EVICTIONS.inc(evicted)

    # -- streams -----------------------------------------------------------------------------

    def subscribe(
        self, subscription: Subscription, wake: Callable[[], None]
    ) -> Subscriber[FeedUpdate]:
        """Register a stream and queue the latest known value of each instrument it covers
        (from memory) before any live update can reach it."""
        subscriber = self.fanout.add(subscription, wake)
        now_ns = self._monotonic_ns()
        for update in self.book.snapshot(subscription):
            subscriber.outbox.offer(update.key, update, now_ns)
        metrics.STREAMS.set(len(self.fanout))
        return subscriber

    def share(self, subscriber: Subscriber[FeedUpdate]) -> ShapeGroup[FeedUpdate] | None:
        """Let a batched stream share its shape's batches (see ``core.fanout``); returns a
        group this started, for the caller to drive."""
        group = self.fanout.share(subscriber)
        metrics.SHAPE_GROUPS.set(self.fanout.groups)
        return group

    def unsubscribe(self, subscriber: Subscriber[FeedUpdate]) -> ShapeGroup[FeedUpdate] | None:
        """Forget a stream; returns its shape's group when this stopped it."""
        stopped = self.fanout.remove(subscriber, self._monotonic_ns())
        metrics.STREAMS.set(len(self.fanout))
        metrics.SHAPE_GROUPS.set(self.fanout.groups)
        return stopped

    async def seed_from_store(
        self, subscriber: Subscriber[FeedUpdate], subscription: Subscription, queued_ns: int
    ) -> None:
        """Queue the stored latest value of symbols memory does not know, unless a live value
        came first. Store trouble is logged and skipped: live updates still flow."""
        symbols = self.book.unknown_symbols(subscription)
        if not symbols:
            return
        per_symbol = 1 if subscription.exchange is not None else len(self._probe_exchanges)
        if len(symbols) * per_symbol > STORE_SNAPSHOT_MAX_LOOKUPS:
            log.info("stream_snapshot_store_skipped", unknown_symbols=len(symbols))
            return
        try:
            found = await asyncio.gather(
                *(self._stored_latest(symbol, subscription.exchange) for symbol in symbols)
            )
        except QuoteStoreError as exc:
            log.warning("stream_snapshot_store_failed", error=str(exc), symbols=len(symbols))
            return
        for answers in found:
            for answer in answers:
                update = answer.quote.latest
                subscriber.outbox.seed(update.key, update, queued_ns)
        subscriber.wake()

    def cut_lagging(self) -> list[Subscriber[FeedUpdate]]:
        """Mark subscribers past the lag limit; the service ends their streams."""
        cut = []
        for subscriber, reason in self.fanout.lagging(self._monotonic_ns()):
            subscriber.cut_reason = reason
            subscriber.wake()
            cut.append(subscriber)
        return cut

    # -- quotes ------------------------------------------------------------------------------

    async def quote(self, query: QuoteQuery) -> QuoteAnswer | None:
        """From memory when the instrument is there (merging the store's bar of the day once
        when memory may have missed ticks of it), else from the store; None: unknown."""
        memory = self.book.quote(query)
        if memory is None:
            answers = await self._stored_latest(query.symbol, query.exchange)
            if not answers:
                return None
            return max(answers, key=lambda answer: answer.quote.latest.event_ns)
        if memory.needs_store and self._monotonic_ns() >= self._store_retry_at_ns:
            key = memory.quote.latest.key
            day = memory.quote.trade_date
            try:
                bars = await self._store.day_bars(key, 2)
            except QuoteStoreError as exc:
                # serve what memory has; merges are tried again after a pause, not every call
                self._store_retry_at_ns = self._monotonic_ns() + STORE_RETRY_AFTER_NS
                metrics.STORE_ERRORS.labels(exc.operation).inc()
                log.warning("quote_day_merge_failed", error=str(exc), instrument=str(key))
            else:
                today = next((bar for bar in bars if bar.trade_date == day), None)
                before = next((bar for bar in bars if bar.trade_date < day), None)
                self.book.merge_stored(key, day, today, before.close_nanos if before else 0)
                refreshed = self.book.quote(query)
                if refreshed is not None:
                    memory = refreshed
        return QuoteAnswer(memory.quote, from_store=False)

    async def _stored_latest(self, symbol: str, exchange: str | None) -> list[QuoteAnswer]:
        exchanges = [exchange] if exchange is not None else self._probe_exchanges
        keys = []
        for name in exchanges:
            try:
                keys.append(InstrumentKey(name, symbol))
            except InvalidInstrumentError:
                continue
        answers = await asyncio.gather(*(self._stored_quote(key) for key in keys))
        return [answer for answer in answers if answer is not None]

    async def _stored_quote(self, key: InstrumentKey) -> QuoteAnswer | None:
        bars = await self._store.day_bars(key, 2)
        day = bars[0].trade_date if bars else trade_date_text(key.exchange, self._wall_ns())
        payload = await self._store.latest_payload(key, day)
        if payload is None:
            return None
        update = decode_update(payload)
        if isinstance(update, str):
            log.warning("stored_tick_unusable", instrument=str(key), reason=update)
            return None
        today = bars[0] if bars and bars[0].trade_date == day else None
        before = next((bar for bar in bars if bar.trade_date < day), None)
        quote = Quote(update, today, before.close_nanos if before else 0, day)
        return QuoteAnswer(quote, from_store=True)

"""Builds a feed handler from settings and runs it: a live venue connection, or a replay.

One asyncio loop: the venue reader (parse -> normalize -> produce, never blocking) and an
upkeep task (serve librdkafka callbacks, publish metrics) every ``_UPKEEP_S``. SIGTERM or
SIGINT stops reading, then waits up to ``FEEDHANDLER_STOP_TIMEOUT_S`` for Kafka to
acknowledge every accepted tick; the exit code is 0 only if none was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import uvloop

from feedhandlers import metrics
from feedhandlers.adapters.fix_connection import FixFeedConnection
from feedhandlers.adapters.itch_connection import MoldReceiver, SoupFeedConnection
from feedhandlers.adapters.kafka_sink import KafkaTickSink
from feedhandlers.adapters.reconnecting import ConnectionSettings, FeedConnection
from feedhandlers.adapters.ws_connection import VenueClient, WsFeedConnection
from feedhandlers.capture import CaptureLine, open_capture, parse_capture_line
from feedhandlers.config import FeedHandlerSettings, Venue
from feedhandlers.metrics_publisher import MetricsPublisher
from feedhandlers.parsing import FrameParser
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import (
    OfflineSource,
    ReplayPace,
    itch_file_date,
    itch_file_records,
    replay_capture,
    replay_feed_handler_id,
)
from feedhandlers.venues.binance.client import BinanceClient
from feedhandlers.venues.binance.parse import BinanceParser
from feedhandlers.venues.binance.schema import Market
from feedhandlers.venues.coinbase.client import CoinbaseClient
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from feedhandlers.venues.fix.client import FixClient
from feedhandlers.venues.fix.parse import FixParser
from feedhandlers.venues.fix.session import SessionConfig
from feedhandlers.venues.itch.parse import ItchParser
from feedhandlers.venues.kraken.client import KrakenClient
from feedhandlers.venues.kraken.parse import KrakenParser
from marketcore.backoff import BackoffPolicy
from marketcore.watchdog import DeliveryWatchdog
from marketinfra.errors import InfraError
from marketinfra.health import HealthPort
from marketinfra.kafka import make_admin, require_topics
from marketinfra.logging import configure_logging
from marketinfra.loop_lag import watch_loop_lag
from marketinfra.metrics import start_metrics_endpoint
from marketinfra.readiness import KAFKA, Readiness

log = structlog.get_logger(__name__)
_UPKEEP_S = 0.1
VENUE = "venue"  # readiness: subscribed to the venue
DELIVERY = "delivery"  # readiness: Kafka acknowledges what waits (or nothing waits)
PRODUCER = "producer"  # liveness: the producer reports deliveries (the watchdog)


def make_client(settings: FeedHandlerSettings) -> VenueClient:
    """The WebSocket venues' connection details (FIX: ``make_connection``)."""
    if settings.venue in ("fix", "itch"):
        raise ValueError(f"{settings.venue} is not a WebSocket venue")
    symbols = settings.symbol_list()
    channels = settings.channel_list()
    if settings.venue == "coinbase":
        if channels:
            return CoinbaseClient(symbols, channels=channels, url=settings.url)
        return CoinbaseClient(symbols, url=settings.url)
    if settings.venue == "kraken":
        if channels:
            return KrakenClient(symbols, channels, settings.book_depth, url=settings.url)
        return KrakenClient(symbols, book_depth=settings.book_depth, url=settings.url)
    market = Market.USDM if settings.venue == "binance-usdm" else Market.SPOT
    return BinanceClient(symbols, market, url=settings.url, venue=settings.venue)


def make_parser(venue: Venue, settings: FeedHandlerSettings | None = None) -> FrameParser:
    symbols = settings.symbol_list() if settings else []
    if venue == "coinbase":
        return CoinbaseParser()
    if venue == "kraken":
        return KrakenParser()
    if venue == "fix":
        return FixParser(settings.fix_exchange if settings else "FIX")
    if venue == "itch":
        return ItchParser(symbols=set(symbols) if symbols else None)
    market = Market.USDM if venue == "binance-usdm" else Market.SPOT
    known = BinanceClient(symbols, market).venue_symbols() if symbols else None
    return BinanceParser(market, known)


def default_feed_handler_id(venue: str) -> str:
    """Unique per process (host, pid, start second), stable for its whole life."""
    return f"{venue}.{socket.gethostname()}.{os.getpid()}.{int(time.time())}"


def build_sink(
    settings: FeedHandlerSettings, *, wait_when_full: bool = False, live: bool = True
) -> KafkaTickSink:
    """``live``: from a venue now (a replay's receipt times are the capture's)."""
    return KafkaTickSink(
        settings.kafka.model_copy(update={"linger_ms": settings.linger_ms}),
        settings.ticks_topic,
        buffer_max_messages=settings.buffer_max_messages,
        buffer_max_kbytes=settings.buffer_max_kbytes,
        overflow_max_instruments=settings.overflow_max_instruments,
        stats_interval_ms=settings.stats_interval_ms,
        wait_when_full=wait_when_full,
        observe_latency=metrics.PRODUCE_LATENCY.labels(settings.venue).observe,
        observe_receipt_ack=metrics.RECEIPT_TO_ACK.labels(settings.venue).observe if live else None,
    )


@dataclass
class FeedHandler:
    settings: FeedHandlerSettings
    pipeline: FeedPipeline
    sink: KafkaTickSink
    connection: FeedConnection
    publisher: MetricsPublisher
    readiness: Readiness = field(default_factory=Readiness)
    # what only a restart cures (see marketinfra.health): the delivery watchdog
    liveness: Readiness = field(default_factory=Readiness)
    clock: Callable[[], float] = time.monotonic
    watchdog: DeliveryWatchdog = field(init=False)

    def __post_init__(self) -> None:
        self.readiness.add(KAFKA, "not checked yet")
        self.readiness.add(VENUE, "not connected yet")
        self.readiness.add(DELIVERY, "not checked yet")
        self.liveness.add(PRODUCER, "not checked yet")
        self.liveness.set(PRODUCER, True)  # nothing produced yet: nothing overdue
        self.watchdog = DeliveryWatchdog(
            self.settings.delivery_slow_s, self.settings.delivery_stall_after_s()
        )

    def upkeep(self) -> None:
        self.sink.poll()
        self.publisher.publish(self.pipeline.counters, self.sink, self.connection)
        # before the first statistics: build() reached the brokers (require_topics)
        self.readiness.set(KAFKA, self.sink.brokers_up != 0, "no broker connected")
        self.readiness.set(VENUE, self.connection.connected, "not connected to the venue")
        self._watch_delivery()

    def _watch_delivery(self) -> None:
        sink = self.sink
        verdict = self.watchdog.observe(self.clock(), sink.waiting(), sink.reports, sink.acks)
        self.readiness.set(DELIVERY, verdict.delivering, verdict.reason)
        if verdict.stalled and PRODUCER not in self.liveness.unmet():
            metrics.DELIVERY_STALLS.labels(self.settings.venue).inc()
            log.error(
                "delivery_stalled",
                reason=verdict.reason,
                waiting=sink.waiting(),
                reports=sink.reports,
                brokers_up=sink.brokers_up,
                action="liveness NOT_SERVING: restart this handler",
            )
        self.liveness.set(PRODUCER, not verdict.stalled, verdict.reason)


def connection_settings(settings: FeedHandlerSettings) -> ConnectionSettings:
    return ConnectionSettings(
        silence_timeout_s=settings.silence_timeout_s,
        open_timeout_s=settings.open_timeout_s,
        ping_interval_s=settings.ping_interval_s,
        ping_timeout_s=settings.ping_timeout_s,
        backoff=BackoffPolicy(base_s=settings.reconnect_base_s, cap_s=settings.reconnect_cap_s),
    )


def make_connection(settings: FeedHandlerSettings, pipeline: FeedPipeline) -> FeedConnection:
    if settings.venue == "fix":
        host, port = settings.tcp_address()
        session = SessionConfig(
            settings.fix_sender_comp_id, settings.fix_target_comp_id, settings.fix_heartbeat_s
        )
        client = FixClient(host, port, settings.symbol_list(), session)
        return FixFeedConnection(client, pipeline, connection_settings(settings))
    if settings.venue == "itch":
        if settings.url.startswith("udp://"):
            host, port = settings.udp_address()
            return MoldReceiver(host, port, pipeline)
        host, port = settings.tcp_address()
        return SoupFeedConnection(
            host,
            port,
            pipeline,
            connection_settings(settings),
            username=settings.itch_username,
            password=settings.itch_password.get_secret_value(),
        )
    return WsFeedConnection(make_client(settings), pipeline, connection_settings(settings))


def _pipeline(
    settings: FeedHandlerSettings, sink: KafkaTickSink, feed_handler_id: str
) -> FeedPipeline:
    return FeedPipeline(make_parser(settings.venue, settings), sink, feed_handler_id)


def build(settings: FeedHandlerSettings) -> FeedHandler:
    """Check the set-up first: a missing topic or an unreachable Kafka is one clear error."""
    require_topics(make_admin(settings.kafka), settings.kafka, [settings.ticks_topic])
    sink = build_sink(settings)
    sink.serve_reports()
    feed_handler_id = settings.feed_handler_id or default_feed_handler_id(settings.venue)
    pipeline = FeedPipeline(
        make_parser(settings.venue, settings),
        sink,
        feed_handler_id,
        observe_event_receipt=metrics.EVENT_TO_RECEIPT.labels(settings.venue).observe,
    )
    connection = make_connection(settings, pipeline)
    return FeedHandler(settings, pipeline, sink, connection, MetricsPublisher(settings.venue))


async def _until_stopped(handler: FeedHandler, work: Coroutine[Any, Any, object]) -> str:
    """Run ``work`` and the upkeep until a signal, a fatal producer error or ``work`` ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = asyncio.create_task(work)
    reason = "signal"
    try:
        while not stop.is_set():
            if worker.done():
                reason = "finished"
                break
            if handler.sink.fatal_error is not None:
                reason = "fatal_producer_error"
                break
            handler.upkeep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _UPKEEP_S)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker  # re-raises what the worker crashed with, if it did
    return reason


def _finish(handler: FeedHandler, reason: str) -> int:
    """Flush: wait for every accepted tick; 0 only if Kafka acknowledged them all."""
    settings = handler.settings
    log.info("feedhandler_stopping", reason=reason, waiting_for=handler.sink.depth())
    unacknowledged = handler.sink.close(settings.stop_timeout_s)
    handler.publisher.publish(handler.pipeline.counters, handler.sink, handler.connection)
    lost = unacknowledged + handler.sink.delivery_errors.total()
    log_event = log.error if lost or handler.sink.fatal_error else log.info
    log_event(
        "feedhandler_stopped",
        reason=reason,
        frames=handler.pipeline.counters.frames.total(),
        ticks=handler.pipeline.counters.ticks,
        accepted=handler.sink.accepted,
        unacknowledged=unacknowledged,
        delivery_errors=handler.sink.delivery_errors.total(),
        delivery_errors_by_code=dict(handler.sink.delivery_errors),
        dropped=dict(handler.sink.dropped),
        fatal=handler.sink.fatal_error,
    )
    return 1 if lost or handler.sink.fatal_error else 0


async def serve(handler: FeedHandler) -> int:
    log.info(
        "feedhandler_starting",
        venue=handler.settings.venue,
        symbols=handler.settings.symbol_list(),
        topic=handler.settings.ticks_topic,
        feed_handler_id=handler.pipeline.feed_handler_id,
    )
    health = HealthPort(handler.readiness, liveness=handler.liveness)
    await health.start(handler.settings.health)
    loop_lag = asyncio.create_task(watch_loop_lag(metrics.EVENT_LOOP_LAG))
    try:
        reason = await _until_stopped(handler, handler.connection.run())
    finally:
        loop_lag.cancel()
        await health.stop()
    return _finish(handler, reason)


async def replay(settings: FeedHandlerSettings, path: Path, pace: ReplayPace) -> int:
    """Replay a capture into Kafka; waits for Kafka rather than dropping (not live).

    A WebSocket frame log for the WebSocket venues; an ITCH 5.0 file (2-byte length
    prefixes) for ``itch``, paced by its timestamps.
    """
    session_date = settings.itch_date or itch_file_date(path)
    if settings.venue == "itch" and session_date is None:
        raise ValueError(
            f"the name of {path.name} carries no session date: set FEEDHANDLER_ITCH_DATE="
            "YYYY-MM-DD (the day its timestamps count from)"
        )
    require_topics(make_admin(settings.kafka), settings.kafka, [settings.ticks_topic])
    sink = build_sink(settings, wait_when_full=True, live=False)
    feed_handler_id = settings.feed_handler_id or replay_feed_handler_id(path, settings.venue)
    pipeline = _pipeline(settings, sink, feed_handler_id)
    handler = FeedHandler(
        settings, pipeline, sink, OfflineSource(settings.venue), MetricsPublisher(settings.venue)
    )
    log.info(
        "replay_starting",
        path=str(path),
        venue=settings.venue,
        speed=pace.speed,
        topic=settings.ticks_topic,
        feed_handler_id=feed_handler_id,
    )
    with open_capture(path) as capture:
        records: Iterable[CaptureLine]
        if session_date is not None and settings.venue == "itch":
            records = itch_file_records(capture, session_date)
        else:
            records = map(parse_capture_line, capture)
        work = replay_capture(records, pipeline, pace, upkeep=handler.sink.poll)
        reason = await _until_stopped(handler, work)
    return _finish(handler, reason)


def _start(settings: FeedHandlerSettings) -> None:
    configure_logging(settings.log)
    start_metrics_endpoint(settings.metrics, metrics.REGISTRY)


def main(settings: FeedHandlerSettings | None = None) -> int:
    settings = settings or FeedHandlerSettings()
    _start(settings)
    try:
        handler = build(settings)
    except InfraError as exc:
        # an expected set-up problem: one clear line, no traceback
        log.error("feedhandler_start_failed", error=str(exc))  # noqa: TRY400
        return 1
    except ValueError as exc:  # settings that only make sense together (URL vs venue...)
        log.error("feedhandler_invalid_settings", error=str(exc))  # noqa: TRY400
        return 2
    return uvloop.run(serve(handler))


def replay_main(settings: FeedHandlerSettings, path: Path, pace: ReplayPace) -> int:
    _start(settings)
    try:
        return uvloop.run(replay(settings, path, pace))
    except InfraError as exc:
        log.error("feedhandler_start_failed", error=str(exc))  # noqa: TRY400
        return 1
    except ValueError as exc:  # settings the replay needs (an ITCH file's date)
        log.error("feedhandler_invalid_settings", error=str(exc))  # noqa: TRY400
        return 2

"""Builds the gateway from settings and runs it on uvloop.

Start: the Kafka feed is positioned first (so nothing produced after start-up is missed), then
the server starts, and health (on the public port and on the plaintext ``HEALTH_PORT``) follows
readiness: SERVING while the feed reads every partition with a broker connected, a Cassandra
node is up and, for the trading owner, the trading log is writable. Stop (SIGTERM or
SIGINT): health turns NOT_SERVING, after ``shutdown_delay_s`` open streams send what is
pending and end with UNAVAILABLE ("resubscribe"), calls in flight get ``shutdown_grace_s`` to
finish, then the feed and the Cassandra session close and the process exits 0. Several
processes can run side by side: each has its own consumer (no consumer group) and its own
port, or one shared port with ``GATEWAY_REUSE_PORT``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
import uvloop
from cassandra.cluster import Cluster
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import ValidationError

from gateway import metrics
from gateway.adapters.kafka_feed import KafkaFeed
from gateway.adapters.quote_store import CassandraQuoteStore
from gateway.config import GatewaySettings
from gateway.core.ports import Feed, QuoteStore
from gateway.core.subscriptions import SubscriptionLimits
from gateway.errors import GatewayError
from gateway.market import MarketData
from gateway.security import (
    SERVICE,
    RelayedCallers,
    TokenTable,
    parse_tokens,
    server_credentials,
)
from gateway.service.interceptors import CallInterceptor
from gateway.service.market_data import MarketDataServicer, TradingHandlers, add_to_server
from gateway.service.trading import TradingService
from gateway.trading.desk import TradingLog
from gateway.trading.relay import OWNER_MARK, TRADING_HEALTH, TradingRelay
from gateway.trading.runtime import Trading, start_trading, stop_trading
from marketinfra.cassandra import connect, require_keyspace
from marketinfra.errors import InfraError
from marketinfra.health import Follower, HealthPort
from marketinfra.logging import configure_logging
from marketinfra.loop_lag import watch_loop_lag
from marketinfra.metrics import start_metrics_endpoint
from marketinfra.readiness import CASSANDRA, KAFKA, PARTITIONS, Readiness
from marketinfra.settings import LogSettings

log = structlog.get_logger(__name__)
LAG_CHECK_INTERVAL_S = 0.1
READINESS_CHECK_INTERVAL_S = 1.0
TRADING_LOG = "trading_log"  # readiness: the trading owner can write its log
_MS = 1000
FeedFactory = Callable[[MarketData, asyncio.AbstractEventLoop], Feed]


def server_options(settings: GatewaySettings) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * _MS)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * _MS)),
        ("grpc.keepalive_permit_without_calls", 1),
        # clients may ping this often without being sent GOAWAY ("too_many_pings")
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            int(settings.min_client_ping_interval_s * _MS),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        # gRPC adds +-10% jitter to the age, so replicas' clients do not reconnect in lockstep
        ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * _MS)),
        ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * _MS)),
        ("grpc.max_connection_idle_ms", int(settings.max_connection_idle_s * _MS)),
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
    ]


def token_table(settings: GatewaySettings) -> TokenTable:
    text = settings.auth_tokens.get_secret_value()
    table = parse_tokens(text, required=bool(text.strip()) or not settings.insecure)
    if not table.required:
        log.warning("auth_disabled", reason="insecure mode and no GATEWAY_AUTH_TOKENS")
    return table


@dataclass
class Gateway:
    settings: GatewaySettings
    server: grpc.aio.Server
    port: int
    servicer: MarketDataServicer
    market: MarketData
    health: health.aio.HealthServicer
    feed: Feed
    cluster: Cluster | None
    trading: Trading | None = None
    relay: TradingRelay | None = None  # trading relayed to the owner worker
    internal_server: grpc.aio.Server | None = None  # the owner's socket for relays
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    readiness: Readiness = field(default_factory=Readiness)
    health_port: HealthPort | None = None


async def start(
    settings: GatewaySettings,
    *,
    store: QuoteStore | None = None,
    feed_factory: FeedFactory | None = None,
    trading_log: TradingLog | None = None,
) -> Gateway:
    """Connect, position the feed, bind and start serving. ``store``, ``feed_factory`` and
    ``trading_log`` replace Cassandra and Kafka (contract tests, benchmarks). Raises
    GatewayError or InfraError with a message fit for one log line."""
    tokens = token_table(settings)
    cluster: Cluster | None = None
    if store is None:
        store, cluster = await _cassandra_store(settings)
    market = MarketData(
        store,
        settings.exchanges_to_probe(),
        settings.max_lag_ms * 1_000_000,
        stream_depth=settings.stream_depth,
    )
    limits = SubscriptionLimits(max_symbols=settings.max_symbols_per_stream)
    worker_name = settings.worker_name or f"{socket.gethostname()}.{os.getpid()}"
    loop = asyncio.get_running_loop()
    feed = (feed_factory or _kafka_feed(settings))(market, loop)
    trading: Trading | None = None
    relay: TradingRelay | None = None
    internal: grpc.aio.Server | None = None
    try:
        await asyncio.to_thread(feed.start, settings.kafka.request_timeout_ms / 1000)
        handlers: TradingHandlers | None = None
        if settings.trading == "own":
            trading = await start_trading(settings, market, trading_log)
            handlers = TradingService(trading.desk, settings.max_batch_orders)
        elif settings.trading == "relay":
            handlers = relay = _relay(settings)
        servicer = MarketDataServicer(
            market, limits, settings.max_streams, trading=handlers, worker_name=worker_name
        )
        server, health_servicer = _public_server(settings, servicer, tokens)
        port = _bind(server, settings)
        if trading is not None and settings.trading_relay_socket is not None:
            internal = await _serve_relays(servicer, settings.trading_relay_socket)
        await server.start()
    except BaseException:
        await _close_partial(internal, relay, trading)
        feed.stop()
        if cluster is not None:
            cluster.shutdown()
        raise
    if trading is not None:  # the owner serves trading; a relay's health follows its owner
        await health_servicer.set(TRADING_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    gateway = Gateway(
        settings, server, port, servicer, market, health_servicer, feed, cluster, trading
    )
    gateway.relay, gateway.internal_server = relay, internal
    _check_readiness(gateway, first=True)
    gateway.health_port = HealthPort(gateway.readiness, [Follower(health_servicer, ("", SERVICE))])
    try:
        await gateway.health_port.start(settings.health)
    except BaseException:
        await stop(gateway)
        raise
    gateway.tasks.append(asyncio.create_task(servicer.watch_lag(LAG_CHECK_INTERVAL_S)))
    if relay is not None:
        gateway.tasks.append(asyncio.create_task(relay.watch_owner(_trading_health(gateway))))
    gateway.tasks.append(asyncio.create_task(_watch_readiness(gateway)))
    gateway.tasks.append(asyncio.create_task(watch_loop_lag(metrics.EVENT_LOOP_LAG)))
    log.info(
        "gateway_serving",
        address=settings.address,
        port=port,
        tls="off" if settings.insecure else ("mutual" if settings.tls_client_ca_file else "on"),
        topic=settings.ticks_topic,
        trading=settings.trading,
    )
    return gateway


def _check_readiness(gateway: Gateway, *, first: bool = False) -> None:
    """Report every readiness condition of this gateway (``first``: name them)."""
    readiness, feed, cluster, trading = (
        gateway.readiness,
        gateway.feed,
        gateway.cluster,
        gateway.trading,
    )
    if first:
        readiness.add(PARTITIONS, "feed not started")
        readiness.add(KAFKA, "feed not started")
        if cluster is not None:
            readiness.add(CASSANDRA, "not checked yet")
        if trading is not None:
            readiness.add(TRADING_LOG, "not checked yet")
    readiness.set(PARTITIONS, feed.alive, "the Kafka feed stopped")
    readiness.set(
        KAFKA, feed.connected, "the Kafka feed is not reading (no broker connected, or silent)"
    )
    if cluster is not None:
        up = any(host.is_up for host in cluster.metadata.all_hosts())
        readiness.set(CASSANDRA, up, "no Cassandra node up")
    if trading is not None:
        readiness.set(TRADING_LOG, trading.alive, "the trading log failed")


async def _watch_readiness(gateway: Gateway) -> None:
    while True:
        await asyncio.sleep(READINESS_CHECK_INTERVAL_S)
        _check_readiness(gateway)


async def _cassandra_store(settings: GatewaySettings) -> tuple[QuoteStore, Cluster]:
    cluster, session = await asyncio.to_thread(connect, settings.cassandra, use_keyspace=False)
    try:
        require_keyspace(cluster, settings.cassandra.keyspace)
        store = CassandraQuoteStore(session, settings.cassandra.keyspace, settings.store_timeout_s)
    except BaseException:
        cluster.shutdown()
        raise
    return store, cluster


def _public_server(
    settings: GatewaySettings, servicer: MarketDataServicer, tokens: TokenTable
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(
        interceptors=[CallInterceptor(tokens)], options=server_options(settings)
    )
    add_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    return server, health_servicer


def _kafka_feed(settings: GatewaySettings) -> FeedFactory:
    def factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> Feed:
        return KafkaFeed(
            settings.kafka,
            settings.ticks_topic,
            market.apply,
            loop,
            batch_max=settings.feed_batch_max,
        )

    return factory


async def _close_partial(
    internal: grpc.aio.Server | None, relay: TradingRelay | None, trading: Trading | None
) -> None:
    """Undo the trading parts of a start that failed half-way."""
    if internal is not None:
        await internal.stop(0)
    if relay is not None:
        await relay.close()
    if trading is not None:
        await stop_trading(trading)


def _trading_health(gateway: Gateway) -> Callable[[bool], Awaitable[None]]:
    """What a relaying worker's health says for trading as its owner comes and goes."""

    async def report(reachable: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if reachable else (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )  # fmt: skip
        await gateway.health.set(TRADING_HEALTH, status)
        log_event = log.info if reachable else log.warning
        log_event("trading_owner_reachable" if reachable else "trading_owner_unreachable")

    return report


def _relay(settings: GatewaySettings) -> TradingRelay:
    assert settings.trading_relay_socket is not None  # the settings require it for "relay"
    return TradingRelay(settings.trading_relay_socket, settings.max_batch_orders)


async def _serve_relays(servicer: MarketDataServicer, socket_path: Path) -> grpc.aio.Server:
    """The trading owner's internal server for the other workers' relayed calls (see
    ``trading/relay.py``): a Unix socket, trusting the account the relay names."""
    # a socket file left by a previous owner that was killed
    await asyncio.to_thread(socket_path.unlink, missing_ok=True)
    interceptor = CallInterceptor(RelayedCallers(), trailing_metadata=(OWNER_MARK,))
    internal = grpc.aio.server(interceptors=[interceptor])
    add_to_server(servicer, internal)
    if internal.add_insecure_port(f"unix:{socket_path}") == 0:
        raise GatewayError(f"cannot listen on the trading socket {socket_path}")
    await internal.start()
    return internal


def _bind(server: grpc.aio.Server, settings: GatewaySettings) -> int:
    address = f"{settings.address}:{settings.port}"
    if settings.insecure:
        port = server.add_insecure_port(address)
    else:
        # both set: GatewaySettings refuses TLS without them
        assert settings.tls_cert_file is not None
        assert settings.tls_key_file is not None
        credentials = server_credentials(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        )
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise GatewayError(f"cannot listen on {address} (in use, or not an address here)")
    return port


async def stop(gateway: Gateway) -> None:
    """Drain and close; safe to call once per started gateway."""
    settings = gateway.settings
    if gateway.health_port is not None:
        await gateway.health_port.stop()
    await gateway.health.enter_graceful_shutdown()
    log.info("gateway_stopping", streams=len(gateway.market.fanout))
    if settings.shutdown_delay_s:
        await asyncio.sleep(settings.shutdown_delay_s)
    gateway.servicer.close_streams()
    await gateway.server.stop(settings.shutdown_grace_s)
    if gateway.internal_server is not None:
        await gateway.internal_server.stop(settings.shutdown_grace_s)
    if gateway.relay is not None:
        await gateway.relay.close()
    for task in gateway.tasks:
        task.cancel()
    await asyncio.gather(*gateway.tasks, return_exceptions=True)
    if gateway.trading is not None:
        await stop_trading(gateway.trading)
    await asyncio.to_thread(gateway.feed.stop)
    if gateway.cluster is not None:
        await asyncio.to_thread(gateway.cluster.shutdown)
    log.info("gateway_stopped")


async def serve(settings: GatewaySettings) -> int:
    try:
        gateway = await start(settings)
    except (GatewayError, InfraError) as exc:
        log.error("gateway_start_failed", error=str(exc))  # noqa: TRY400 - expected, no traceback
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    trading = gateway.trading
    while not stopping.is_set() and gateway.feed.alive and (trading is None or trading.alive):
        try:
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
        except TimeoutError:
            continue
    if not gateway.feed.alive:
        log.error("gateway_feed_died", error=str(gateway.feed.crashed))
    trading_failed = trading is not None and trading.journal.failed is not None
    if trading is not None and trading.journal.failed is not None:
        # memory may be ahead of the log: stop, and let the restart rebuild from the log
        log.error("gateway_trading_log_failed", error=str(trading.journal.failed))
    await stop(gateway)
    return 0 if gateway.feed.crashed is None and not trading_failed else 1


def main(overrides: Mapping[str, Any] | None = None) -> int:
    try:
        settings = GatewaySettings(**(overrides or {}))
    except ValidationError as exc:
        configure_logging(LogSettings())
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        log.error("gateway_config_invalid", problems=problems)  # noqa: TRY400 - no traceback
        return 2
    configure_logging(settings.log)
    start_metrics_endpoint(settings.metrics, metrics.REGISTRY)
    return uvloop.run(serve(settings))

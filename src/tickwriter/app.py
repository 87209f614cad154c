"""Builds the tick writer from settings and runs it: the Kafka pipeline on a thread, the
TickWriterService gRPC server on the asyncio loop. SIGTERM stops both cleanly: the current
micro-batch is written and committed, in-flight RPCs finish."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import structlog
from cassandra.cluster import Cluster
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from pydantic import ValidationError

from marketcore.backoff import BackoffPolicy
from marketcore.watchdog import overdue
from marketinfra.cassandra import connect, require_keyspace
from marketinfra.errors import InfraError, NotSetUpError
from marketinfra.grpc_security import TokenTable, server_credentials
from marketinfra.health import Follower, HealthPort
from marketinfra.kafka import (
    brokers_up,
    make_admin,
    make_consumer,
    make_producer,
    require_topics,
)
from marketinfra.logging import configure_logging
from marketinfra.loop_lag import watch_loop_lag
from marketinfra.metrics import start_metrics_endpoint
from marketinfra.readiness import CASSANDRA, KAFKA, PARTITIONS, Readiness
from marketinfra.settings import LogSettings
from tickwriter import metrics
from tickwriter.adapters.dead_letters import DeadLetterPublisher
from tickwriter.adapters.kafka_stats import LagGauges
from tickwriter.adapters.repository import CassandraRowWriter
from tickwriter.batching import FlushPolicy
from tickwriter.config import TickWriterSettings
from tickwriter.decode import decode_order_event, decode_tick, decode_trade
from tickwriter.pipeline import CommitTimer, Decoder, TickPipeline
from tickwriter.ports import RowWriter
from tickwriter.service import (
    METHOD_PERMISSIONS,
    SERVICE,
    WRITE_TICKS,
    BindRpcContext,
    GuardCalls,
    TickWriterServicer,
    add_to_server,
)

log = structlog.get_logger(__name__)
_DECODERS: Mapping[str, Decoder] = {
    "ticks": decode_tick,
    "trades": decode_trade,
    "orders": decode_order_event,
}
GRPC_GRACE_S = 10.0
CHECK_INTERVAL_S = 0.5
CASSANDRA_NODES = "cassandra_nodes"  # readiness: the driver sees a Cassandra node up
WRITER = "writer"  # liveness: the pipeline turns and has not been unable to write for long
SERVICE_NAME = SERVICE
HealthServicer = health_aio.HealthServicer


@dataclass
class TickWriter:
    settings: TickWriterSettings
    cluster: Cluster
    writer: CassandraRowWriter
    pipeline: TickPipeline
    readiness: Readiness
    liveness: Readiness

    def check(self, now_s: float) -> None:
        """Report the conditions the pipeline does not report itself (``now_s``: monotonic)."""
        hosts_up = any(host.is_up for host in self.cluster.metadata.all_hosts())
        self.readiness.set(CASSANDRA_NODES, hosts_up, "no Cassandra node up")
        pipeline, settings = self.pipeline, self.settings
        since = pipeline.unable_to_write_since
        if overdue(since, now_s, settings.restart_after_unable_s):
            self.liveness.set(
                WRITER, False, f"unable to write for over {settings.restart_after_unable_s:g} s"
            )
        elif overdue(pipeline.last_turn_at, now_s, settings.loop_stuck_s):
            self.liveness.set(WRITER, False, f"pipeline stuck for over {settings.loop_stuck_s:g} s")
        else:
            self.liveness.set(WRITER, True)


def build(settings: TickWriterSettings) -> TickWriter:
    """Connect and check the set-up first: a missing keyspace or topic is one clear error."""
    topics = list(settings.consumed_topics())
    require_topics(make_admin(settings.kafka), settings.kafka, [*topics, settings.dlq_topic])
    cluster, session = connect(settings.cassandra, use_keyspace=False)
    try:
        require_keyspace(cluster, settings.cassandra.keyspace)
    except NotSetUpError:
        cluster.shutdown()
        raise
    writer = CassandraRowWriter(
        session, settings.cassandra.keyspace, settings.rows_per_batch, settings.max_in_flight
    )
    readiness = Readiness()
    readiness.add(PARTITIONS, "not in the consumer group yet")
    readiness.add(CASSANDRA, "not written yet")
    readiness.set(CASSANDRA, True)  # connected just above; unmet while writes fail
    readiness.add(CASSANDRA_NODES, "not checked yet")
    liveness = Readiness()
    liveness.add(WRITER, "not checked yet")
    commit_timer = CommitTimer()
    overrides: dict[str, Any] = {
        "session.timeout.ms": settings.session_timeout_ms,
        "on_commit": commit_timer.on_commit,
    }
    lag_gauges = None
    if settings.stats_interval_ms:
        lag_gauges = LagGauges(refresh_interval_s=settings.stats_interval_ms / 1000)
        overrides["statistics.interval.ms"] = settings.stats_interval_ms
        overrides["stats_cb"] = _on_stats(lag_gauges, readiness)
        readiness.add(KAFKA, "not checked yet")
        readiness.set(KAFKA, True)  # require_topics reached the brokers; then statistics say
    if settings.group_instance_id:
        overrides["group.instance.id"] = settings.group_instance_id
    consumer = make_consumer(settings.kafka, settings.group_id, overrides)
    producer = make_producer(settings.kafka)
    decoders = {topic: _DECODERS[kind] for topic, kind in settings.consumed_topics().items()}
    pipeline = TickPipeline(
        consumer,
        writer,
        DeadLetterPublisher(producer, settings.dlq_topic),
        decoders,
        FlushPolicy(settings.flush_max_records, settings.flush_max_wait_ms),
        BackoffPolicy(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s),
        commit_timer,
        checkpoint_interval_s=settings.checkpoint_interval_ms / 1000,
        lag_gauges=lag_gauges,
        readiness=readiness,
    )
    app = TickWriter(settings, cluster, writer, pipeline, readiness, liveness)
    app.check(time.monotonic())
    return app


def _on_stats(lag_gauges: LagGauges, readiness: Readiness) -> Callable[[str], None]:
    def on_stats(stats_json: str) -> None:
        lag_gauges.on_stats(stats_json)
        try:
            connected = brokers_up(orjson.loads(stats_json))
        except orjson.JSONDecodeError:
            return
        readiness.set(KAFKA, connected > 0, "no broker connected")

    return on_stats


def token_table(settings: TickWriterSettings) -> TokenTable:
    """``TICKWRITER_AUTH_TOKENS``; empty in insecure mode: every caller may write."""
    text = settings.auth_tokens.get_secret_value()
    table = TokenTable.parse(
        text,
        setting="TICKWRITER_AUTH_TOKENS",
        permissions=[WRITE_TICKS],
        default_permissions=[WRITE_TICKS],
        method_permissions=METHOD_PERMISSIONS,
        required=bool(text.strip()) or not settings.grpc_insecure,
    )
    if not table.required:
        log.warning("auth_disabled", reason="insecure mode and no TICKWRITER_AUTH_TOKENS")
    return table


def grpc_server(
    settings: TickWriterSettings, writer: RowWriter, health: health_aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """TickWriterService and health on ``grpc_address:grpc_port``, as the settings say (TLS
    and tokens, or loopback plaintext): the server, not started, and its port. Raises
    SecurityConfigError for a token table or TLS file that cannot be used, InfraError when the
    address cannot be bound."""
    problem = settings.grpc_problem()
    if problem is not None:
        raise ValueError(problem)
    server = grpc.aio.server(interceptors=[BindRpcContext(), GuardCalls(token_table(settings))])
    add_to_server(TickWriterServicer(writer), server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{settings.grpc_address}:{settings.grpc_port}"
    if settings.grpc_insecure:
        port = server.add_insecure_port(address)
    else:
        assert settings.tls_cert_file is not None  # grpc_problem() requires both
        assert settings.tls_key_file is not None
        credentials = server_credentials(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        )
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise InfraError(f"cannot listen on {address} (in use, or not an address here)")
    return server, port


async def serve(app: TickWriter) -> int:
    settings = app.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    health = HealthServicer()  # TickWriterService's own, on its port, following readiness too
    health_port = HealthPort(
        app.readiness, [Follower(health, ("", SERVICE_NAME))], liveness=app.liveness
    )
    await health_port.start(settings.health)
    loop_lag = asyncio.create_task(watch_loop_lag(metrics.EVENT_LOOP_LAG))
    worker = threading.Thread(target=app.pipeline.run, name="tickwriter-pipeline", daemon=True)
    worker.start()
    server: grpc.aio.Server | None = None
    if settings.grpc_port:
        try:
            server, port = grpc_server(settings, app.writer, health)
        except (InfraError, ValueError) as exc:
            log.error("tickwriter_grpc_start_failed", error=str(exc))  # noqa: TRY400 - one line
            app.pipeline.stop()
            await asyncio.to_thread(worker.join)
            app.cluster.shutdown()
            return 1
        await server.start()
        tls = "off" if settings.grpc_insecure else (
            "mutual" if settings.tls_client_ca_file else "on"
        )  # fmt: skip
        log.info("tickwriter_grpc_serving", address=settings.grpc_address, port=port, tls=tls)

    while not stop.is_set() and worker.is_alive():
        app.check(time.monotonic())
        try:
            await asyncio.wait_for(stop.wait(), timeout=CHECK_INTERVAL_S)
        except TimeoutError:
            continue
    log.info("tickwriter_stopping")
    await health_port.stop()  # readiness goes NOT_SERVING first
    loop_lag.cancel()
    if server is not None:
        await server.stop(GRPC_GRACE_S)
    app.pipeline.stop()
    await asyncio.to_thread(worker.join)
    app.cluster.shutdown()
    return 1 if app.pipeline.crashed is not None else 0


def main(overrides: Mapping[str, Any] | None = None) -> int:
    try:
        settings = TickWriterSettings(**(overrides or {}))
    except ValidationError as exc:
        configure_logging(LogSettings())
        log.error("tickwriter_config_invalid", problems=str(exc))  # noqa: TRY400 - no traceback
        return 2
    configure_logging(settings.log)
    problem = settings.grpc_problem()
    if problem is not None:  # before connecting to anything: one line, exit 2
        log.error("tickwriter_config_invalid", problems=problem)
        return 2
    start_metrics_endpoint(settings.metrics, metrics.REGISTRY)
    try:
        app = build(settings)
    except InfraError as exc:
        # an expected set-up problem: one clear line, no traceback
        log.error("tickwriter_start_failed", error=str(exc))  # noqa: TRY400
        return 1
    return asyncio.run(serve(app))

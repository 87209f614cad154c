"""Builds the tick writer from settings and runs it: the Kafka pipeline on a thread, the
TickWriterService gRPC server on the asyncio loop. SIGTERM stops both cleanly: the current
micro-batch is written and committed, in-flight RPCs finish."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import structlog
from cassandra.cluster import Cluster
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from financial.marketdata.v2 import services_pb2, services_pb2_grpc
from marketcore.backoff import BackoffPolicy
from marketinfra.cassandra import connect, require_keyspace
from marketinfra.errors import InfraError, NotSetUpError
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
from tickwriter import metrics
from tickwriter.adapters.dead_letters import DeadLetterPublisher
from tickwriter.adapters.kafka_stats import LagGauges
from tickwriter.adapters.repository import CassandraRowWriter
from tickwriter.batching import FlushPolicy
from tickwriter.config import TickWriterSettings
from tickwriter.decode import decode_order_event, decode_tick, decode_trade
from tickwriter.pipeline import CommitTimer, Decoder, TickPipeline
from tickwriter.service import BindRpcContext, ReportUnexpectedErrors, TickWriterServicer

log = structlog.get_logger(__name__)
_DECODERS: Mapping[str, Decoder] = {
    "ticks": decode_tick,
    "trades": decode_trade,
    "orders": decode_order_event,
}
GRPC_GRACE_S = 10.0
SERVICE_NAME = services_pb2.DESCRIPTOR.services_by_name["TickWriterService"].full_name
HealthServicer = health_aio.HealthServicer


@dataclass
class TickWriter:
    settings: TickWriterSettings
    cluster: Cluster
    writer: CassandraRowWriter
    pipeline: TickPipeline
    readiness: Readiness


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
    return TickWriter(settings, cluster, writer, pipeline, readiness)


def _on_stats(lag_gauges: LagGauges, readiness: Readiness) -> Callable[[str], None]:
    def on_stats(stats_json: str) -> None:
        lag_gauges.on_stats(stats_json)
        try:
            connected = brokers_up(orjson.loads(stats_json))
        except orjson.JSONDecodeError:
            return
        readiness.set(KAFKA, connected > 0, "no broker connected")

    return on_stats


async def serve(app: TickWriter) -> int:
    settings = app.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    health = HealthServicer()  # TickWriterService's own, on its port, following readiness too
    health_port = HealthPort(app.readiness, [Follower(health, ("", SERVICE_NAME))])
    await health_port.start(settings.health)
    loop_lag = asyncio.create_task(watch_loop_lag(metrics.EVENT_LOOP_LAG))
    worker = threading.Thread(target=app.pipeline.run, name="tickwriter-pipeline", daemon=True)
    worker.start()
    server: grpc.aio.Server | None = None
    if settings.grpc_port:
        server = grpc.aio.server(interceptors=[BindRpcContext(), ReportUnexpectedErrors()])
        services_pb2_grpc.add_TickWriterServiceServicer_to_server(
            TickWriterServicer(app.writer), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        address = f"{settings.grpc_address}:{settings.grpc_port}"
        server.add_insecure_port(address)
        await server.start()
        log.info("tickwriter_grpc_serving", address=address)

    while not stop.is_set() and worker.is_alive():
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
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


def main() -> int:
    settings = TickWriterSettings()
    configure_logging(settings.log)
    start_metrics_endpoint(settings.metrics, metrics.REGISTRY)
    try:
        app = build(settings)
    except InfraError as exc:
        # an expected set-up problem: one clear line, no traceback
        log.error("tickwriter_start_failed", error=str(exc))  # noqa: TRY400
        return 1
    return asyncio.run(serve(app))

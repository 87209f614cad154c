"""Kafka clients with the project's defaults, built in one place.

Producers: acks=all with idempotence, lz4, a small linger, and the murmur2 partitioner so a
key maps to the same partition as in Java clients, Kafka Streams and Strimzi tooling.
Idempotence covers librdkafka's own retries within one delivery timeout only: after a broker
outage longer than ``delivery.timeout.ms``, records reported as timed out may in fact have been
written, and producing them again (an application-level retry) writes them twice. Consumers
must therefore tolerate duplicates (the tick writer's rows are idempotent upserts;
the gateway drops them by feed_sequence; see the README).
Consumers: manual commits and cooperative-sticky assignment.
librdkafka's own log lines go through stdlib logging (and so structlog).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata

from marketinfra.errors import KafkaUnavailableError, NotSetUpError
from marketinfra.settings import KafkaSettings

log = structlog.get_logger(__name__)
_librdkafka_logger = logging.getLogger("librdkafka")

# callbacks (on_commit, error_cb, stats_cb) and a logging.Logger are valid librdkafka config too
ConfigValue = str | int | float | bool | Callable[..., None] | logging.Logger
KafkaConfig = dict[str, Any]


def _log_client_error(error: KafkaError) -> None:
    # Broker-down and similar errors arrive here; librdkafka keeps retrying by itself.
    log.warning("kafka_client_error", code=error.name(), reason=error.str(), fatal=error.fatal())


def base_config(settings: KafkaSettings) -> KafkaConfig:
    config: KafkaConfig = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "logger": _librdkafka_logger,
        "error_cb": _log_client_error,
        "socket.connection.setup.timeout.ms": min(settings.request_timeout_ms, 10_000),
    }
    config.update(settings.extra_config)
    return config


def producer_config(
    settings: KafkaSettings, overrides: Mapping[str, ConfigValue] | None = None
) -> KafkaConfig:
    config = base_config(settings)
    config.update(
        {
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": settings.linger_ms,
            "delivery.timeout.ms": settings.delivery_timeout_ms,
            "partitioner": "murmur2_random",
        }
    )
    config.update(overrides or {})
    return config


def consumer_config(
    settings: KafkaSettings, group_id: str, overrides: Mapping[str, ConfigValue] | None = None
) -> KafkaConfig:
    config = base_config(settings)
    config.update(
        {
            "group.id": group_id,
            # the trading log is written in transactions: never read what was aborted
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    config.update(overrides or {})
    return config


def make_producer(
    settings: KafkaSettings, overrides: Mapping[str, ConfigValue] | None = None
) -> Producer:
    return Producer(producer_config(settings, overrides))


def make_consumer(
    settings: KafkaSettings, group_id: str, overrides: Mapping[str, ConfigValue] | None = None
) -> Consumer:
    return Consumer(consumer_config(settings, group_id, overrides))


def make_admin(settings: KafkaSettings) -> AdminClient:
    return AdminClient(base_config(settings))


def require_topics(admin: AdminClient, settings: KafkaSettings, topics: list[str]) -> None:
    missing = sorted(set(topics) - set(cluster_metadata(admin, settings).topics))
    if missing:
        raise NotSetUpError(
            f"Kafka topic(s) {', '.join(missing)} do not exist: run `mdgw topics apply`"
        )


def cluster_metadata(
    admin: AdminClient, settings: KafkaSettings, timeout_s: float = 5.0
) -> ClusterMetadata:
    """Ask the cluster for metadata, or raise KafkaUnavailableError within ``timeout_s``."""
    try:
        metadata: ClusterMetadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailableError(settings.bootstrap_servers, str(exc)) from exc
    if not metadata.brokers:
        raise KafkaUnavailableError(settings.bootstrap_servers, "no broker in metadata")
    return metadata


def brokers_up(stats: dict[str, object]) -> int:
    """Brokers a client is connected to, from one librdkafka statistics object (the
    bootstrap placeholders, node id -1, are not brokers)."""
    brokers = stats.get("brokers")
    if not isinstance(brokers, dict):
        return 0
    return sum(
        1
        for broker in brokers.values()
        if isinstance(broker, dict)
        and broker.get("nodeid", -1) != -1
        and broker.get("state") == "UP"
    )


class RecordSource(Protocol):
    """What ``take_waiting`` needs of ``confluent_kafka.Consumer`` (tests pass a fake)."""

    def poll(self, timeout: float) -> Message | None: ...

    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...


def take_waiting(consumer: RecordSource, max_records: int, timeout_s: float) -> list[Message]:
    """Up to ``max_records`` records: wait up to ``timeout_s`` for the first, then take only
    what librdkafka has already fetched, without waiting.

    ``consume(num_messages=N, timeout=T)`` waits until N records came or T passed, so at a
    low rate every record would wait T for a batch that never fills. ``poll`` returns on the
    first record, and ``consume(timeout=0)`` adds what is already there: latency follows the
    rate, and batches form only from records that are already waiting (at high rates).
    Fewer than ``max_records`` returned means nothing more was waiting.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    if max_records <= 1:
        return [first]
    return [first, *consumer.consume(num_messages=max_records - 1, timeout=0)]

"""Every Kafka topic of the product, declared once, and an idempotent ``apply``.

Keys decide ordering: all records with one key land on one partition, in order.
Values are serialized ``financial.marketdata.v2`` messages. Every topic name carries the schema
version (``.v2``): v1 topics held int64 micros and are never read by this version (see the
README's migration notes; ``mdgw migrate`` carries a v1 trading log over).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from marketinfra.errors import TopicApplyError

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    key: str  # what the record key is, for people and for producers
    value: str  # the protobuf message in the value
    compression: str = "lz4"
    # "compact": Kafka keeps at least the latest record of every key, whatever its age
    cleanup_policy: str = "delete"

    def config(self, replication_factor: int) -> dict[str, str]:
        # With RF 3, min ISR 2 plus acks=all means an acknowledged record survives one broker loss.
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "compression.type": self.compression,
            "min.insync.replicas": str(min(2, replication_factor)),
            "message.timestamp.type": "CreateTime",
        }


TICKS_RAW = TopicSpec("ticks.raw.v2", 64, 7 * _DAY_MS, "EXCHANGE|SYMBOL", "PriceUpdate")
TICKS_DLQ = TopicSpec(
    "ticks.raw.v2.dlq",
    8,
    30 * _DAY_MS,
    "the original key",
    "the original bytes; headers dlq.error, dlq.topic, dlq.partition, dlq.offset, dlq.time_ns",
)
TRADES_EXECUTED = TopicSpec("trades.executed.v2", 32, 30 * _DAY_MS, "account_id", "ExecutionReport")
ORDERS_LIFECYCLE = TopicSpec(
    "orders.lifecycle.v2", 32, 30 * _DAY_MS, "order_id", "OrderStatusUpdate"
)
# Compacted: the latest position of every account and symbol stays, however old, so the
# gateway rebuilds positions from it at start-up (trades.executed is the full history).
POSITIONS_UPDATES = TopicSpec(
    "positions.updates.v2",
    16,
    7 * _DAY_MS,
    "account_id|symbol",
    "PositionUpdate",
    cleanup_policy="compact",
)
ALL_TOPICS: tuple[TopicSpec, ...] = (
    TICKS_RAW,
    TICKS_DLQ,
    TRADES_EXECUTED,
    ORDERS_LIFECYCLE,
    POSITIONS_UPDATES,
)


class ChangeKind(StrEnum):
    CREATED = "created"
    PARTITIONS_ADDED = "partitions_added"
    CONFIG_ALTERED = "config_altered"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class TopicChange:
    topic: str
    kind: ChangeKind
    detail: str = ""


def apply_topics(
    admin: AdminClient,
    specs: Iterable[TopicSpec],
    replication_factor: int,
    timeout_s: float = 30.0,
) -> list[TopicChange]:
    """Create missing topics, add missing partitions, align configs. Never deletes or shrinks."""
    specs = list(specs)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise TopicApplyError("*", f"cannot list topics: {exc}") from exc
    changes: list[TopicChange] = []
    missing = [spec for spec in specs if spec.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=replication_factor,
                    config=spec.config(replication_factor),
                )
                for spec in missing
            ],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for spec in missing:
            if _created(futures[spec.name], spec.name, timeout_s):
                changes.append(
                    TopicChange(spec.name, ChangeKind.CREATED, f"{spec.partitions} partitions")
                )
            else:  # it exists after all: align it like any other existing topic
                partitions = _visible_partitions(admin, spec.name, timeout_s)
                changes.extend(
                    _align_existing(admin, spec, partitions, replication_factor, timeout_s)
                )
    for spec in specs:
        if spec.name in existing:
            changes.extend(
                _align_existing(
                    admin, spec, len(existing[spec.name].partitions), replication_factor, timeout_s
                )
            )
    return changes


def _created(future: Future[Any], topic: str, timeout_s: float) -> bool:
    """True when the topic was created; False when it already existed. The metadata a broker
    answers with can lag behind the controller for a moment after a create (KRaft), so a topic
    created just before can look missing; another apply may also have raced this one."""
    try:
        _wait(future, topic, "create", timeout_s)
    except TopicApplyError as exc:
        cause = exc.__cause__
        if isinstance(cause, KafkaException) and (
            cause.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
        ):
            return False
        raise
    return True


def _visible_partitions(admin: AdminClient, topic: str, timeout_s: float) -> int:
    """The partition count of a topic that exists, once the metadata shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise TopicApplyError(topic, f"cannot describe: {exc}") from exc
        if found is not None and found.error is None and found.partitions:
            return len(found.partitions)
        if time.monotonic() >= deadline:
            raise TopicApplyError(topic, "exists, but its metadata did not show it in time")
        time.sleep(0.2)  # metadata catching up with the controller


def _align_existing(
    admin: AdminClient,
    spec: TopicSpec,
    current_partitions: int,
    replication_factor: int,
    timeout_s: float,
) -> list[TopicChange]:
    changes: list[TopicChange] = []
    if current_partitions < spec.partitions:
        # Adding partitions remaps keys; done only when the declaration asks for more.
        futures = admin.create_partitions([NewPartitions(spec.name, spec.partitions)])
        _wait(futures[spec.name], spec.name, "add partitions", timeout_s)
        changes.append(
            TopicChange(
                spec.name, ChangeKind.PARTITIONS_ADDED, f"{current_partitions} -> {spec.partitions}"
            )
        )
    resource = ConfigResource(ResourceType.TOPIC, spec.name)
    described = _wait(
        admin.describe_configs([resource])[resource], spec.name, "describe", timeout_s
    )
    wanted = spec.config(replication_factor)
    differing = {key: value for key, value in wanted.items() if described[key].value != value}
    if differing:
        resource = ConfigResource(
            ResourceType.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in differing.items()
            ],
        )
        _wait(
            admin.incremental_alter_configs([resource])[resource],
            spec.name,
            "alter config",
            timeout_s,
        )
        changes.append(
            TopicChange(
                spec.name,
                ChangeKind.CONFIG_ALTERED,
                ", ".join(f"{k}={v}" for k, v in differing.items()),
            )
        )
    if not changes:
        changes.append(TopicChange(spec.name, ChangeKind.UNCHANGED))
    return changes


def _wait(future: Future[Any], topic: str, action: str, timeout_s: float) -> Any:
    try:
        result = future.result(timeout=timeout_s)
    except KafkaException as exc:
        raise TopicApplyError(topic, f"{action} failed: {exc}") from exc
    except TimeoutError as exc:
        raise TopicApplyError(topic, f"{action} timed out after {timeout_s}s") from exc
    return result

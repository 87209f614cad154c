"""Rewinding a consumer group to a point in time, and sending dead letters back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tickwriter.adapters.dead_letters import DLQ_HEADERS, HEADER_TOPIC, message_headers
from tickwriter.errors import TickWriterError


@dataclass(frozen=True, slots=True)
class OffsetReset:
    topic: str
    partition: int
    new_offset: int


def reset_group_to_time(
    admin: AdminClient, lookup: Consumer, group: str, topics: list[str], when: datetime
) -> list[OffsetReset]:
    """Point ``group`` at the first record at or after ``when`` on every partition of ``topics``.

    Kafka accepts this only while the group has no active member: stop its consumers first.
    Partitions with nothing after ``when`` go to their end (nothing to replay there).
    """
    when_ms = int(when.timestamp() * 1000)
    metadata = lookup.list_topics(timeout=10)
    query: list[TopicPartition] = []
    for topic in topics:
        if topic not in metadata.topics:
            raise TickWriterError(f"topic {topic} does not exist")
        query += [TopicPartition(topic, p, when_ms) for p in metadata.topics[topic].partitions]
    found = lookup.offsets_for_times(query, timeout=10)
    resets = []
    for position in found:
        offset = position.offset
        if offset < 0:  # no record at or after `when`
            _low, offset = lookup.get_watermark_offsets(
                TopicPartition(position.topic, position.partition), timeout=10
            )
        resets.append(OffsetReset(position.topic, position.partition, offset))
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(r.topic, r.partition, r.new_offset) for r in resets]
    )
    try:
        result = admin.alter_consumer_group_offsets([request])[group].result(timeout=30)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        if isinstance(error, KafkaError) and error.code() in (
            KafkaError.GROUP_SUBSCRIBED_TO_TOPIC,
            KafkaError.UNKNOWN_MEMBER_ID,
            KafkaError.REBALANCE_IN_PROGRESS,
        ):
            raise TickWriterError(
                f"group {group} has active members: stop its consumers first ({error})"
            ) from exc
        raise TickWriterError(f"could not reset group {group}: {error}") from exc
    # An active group is refused partition by partition, not as a failed request.
    refused = [tp for tp in result.topic_partitions if tp.error is not None]
    if refused:
        first = refused[0].error
        if first.code() in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS):
            raise TickWriterError(
                f"group {group} has active members: stop its tick writers first, then replay"
            )
        raise TickWriterError(
            f"could not reset group {group} on {len(refused)} partitions: {first}"
        )
    return resets


@dataclass(frozen=True, slots=True)
class DlqReplayResult:
    replayed: int
    by_topic: dict[str, int]


def replay_dead_letters(
    consumer: Consumer,
    producer: Producer,
    dlq_topic: str,
    limit: int,
    idle_timeout_s: float = 3.0,
) -> DlqReplayResult:
    """Send dead letters back to the topic they came from (header dlq.topic), original key,
    value and headers, then commit. Records that still fail come back to the DLQ."""
    consumer.subscribe([dlq_topic])
    by_topic: dict[str, int] = {}
    replayed = 0
    last_seen = time.monotonic()
    try:
        while replayed < limit and time.monotonic() - last_seen < idle_timeout_s:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise TickWriterError(f"reading {dlq_topic}: {error}")
                continue
            last_seen = time.monotonic()
            headers = message_headers(message)
            origin = next((v.decode() for k, v in headers if k == HEADER_TOPIC and v), None)
            if origin is None:
                raise TickWriterError(
                    f"{dlq_topic} offset {message.offset()} has no {HEADER_TOPIC} header"
                )
            kept: list[tuple[str, str | bytes | None]] = [
                (k, v) for k, v in headers if k not in DLQ_HEADERS
            ]
            producer.produce(origin, value=message.value(), key=message.key(), headers=kept)
            if producer.flush(30) != 0:
                raise TickWriterError(f"could not deliver a replayed record to {origin}")
            consumer.commit(message=message, asynchronous=False)
            by_topic[origin] = by_topic.get(origin, 0) + 1
            replayed += 1
    finally:
        consumer.close()
    return DlqReplayResult(replayed, by_topic)

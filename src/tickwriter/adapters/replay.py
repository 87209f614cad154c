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
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tickwriter.adapters.dead_letters import DLQ_HEADERS, HEADER_TOPIC, message_headers
from tickwriter.batching import commit_positions
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
    chunk: int = 500,
    timeout_s: float = 30.0,
) -> DlqReplayResult:
    """Send the dead letters now in ``dlq_topic`` back to the topic they came from (header
    dlq.topic) with their original key, value and headers, committing ``consumer``'s group
    after each delivered chunk, so a second run sends nothing twice.

    Only what is in the DLQ when the call starts is read (from the group's committed position
    to the end offsets of that moment): a record that fails again is dead-lettered after that
    end and waits for the next run, instead of looping within this one.
    """
    by_topic: dict[str, int] = {}
    replayed = 0
    try:
        todo = _dlq_backlog(consumer, dlq_topic)
        if todo:
            consumer.assign([TopicPartition(dlq_topic, p, start) for p, (start, _) in todo.items()])
        deadline = time.monotonic() + timeout_s
        while todo and replayed < limit:
            if time.monotonic() > deadline:
                raise TickWriterError(f"{dlq_topic}: no progress within {timeout_s:.0f} s")
            wanted = min(chunk, limit - replayed)
            taken = [
                message
                for message in consumer.consume(wanted, timeout=0.5)
                if _is_record(message, dlq_topic) and _in_backlog(message, todo)
            ]
            if not taken:
                continue
            for origin in _send_back(producer, taken, dlq_topic, timeout_s):
                by_topic[origin] = by_topic.get(origin, 0) + 1
            positions = commit_positions(
                [(dlq_topic, m.partition() or 0, m.offset() or 0) for m in taken]
            )
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
                asynchronous=False,
            )
            replayed += len(taken)
            deadline = time.monotonic() + timeout_s
            for (_topic, partition), offset in positions.items():
                if offset >= todo[partition][1]:
                    del todo[partition]
    finally:
        consumer.close()
    return DlqReplayResult(replayed, by_topic)


def _send_back(
    producer: Producer, messages: list[Message], dlq_topic: str, timeout_s: float
) -> list[str]:
    """Produce each dead letter to its origin without the dlq.* headers and wait for the acks;
    returns the origin topic of each."""
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    origins = []
    for message in messages:
        origin = _origin(message, dlq_topic)
        kept: list[tuple[str, str | bytes | None]] = [
            (name, value) for name, value in message_headers(message) if name not in DLQ_HEADERS
        ]
        producer.produce(
            origin, value=message.value(), key=message.key(), headers=kept, on_delivery=on_delivery
        )
        origins.append(origin)
    if producer.flush(timeout_s) != 0 or failures:
        raise TickWriterError(
            f"replayed records were not all acknowledged ({failures[:3]}); run again: "
            "records sent twice are rewritten to the same rows"
        )
    return origins


def _dlq_backlog(consumer: Consumer, dlq_topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (first offset to replay, end offset now), for partitions with a backlog."""
    metadata = consumer.list_topics(dlq_topic, timeout=10)
    described = metadata.topics.get(dlq_topic)
    if described is None or described.error is not None:
        raise TickWriterError(f"topic {dlq_topic} does not exist")
    partitions = [TopicPartition(dlq_topic, p) for p in described.partitions]
    backlog: dict[int, tuple[int, int]] = {}
    for position in consumer.committed(partitions, timeout=10):
        low, high = consumer.get_watermark_offsets(position, timeout=10)
        start = max(position.offset, low)  # no commit yet (negative): from the beginning
        if start < high:
            backlog[position.partition] = (start, high)
    return backlog


def _in_backlog(message: Message, todo: dict[int, tuple[int, int]]) -> bool:
    span = todo.get(message.partition() or 0)
    return span is not None and span[0] <= (message.offset() or 0) < span[1]


def _is_record(message: Message, dlq_topic: str) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        raise TickWriterError(f"reading {dlq_topic}: {error}")
    return False


def _origin(message: Message, dlq_topic: str) -> str:
    for name, value in message_headers(message):
        if name == HEADER_TOPIC and value:
            return value.decode()
    raise TickWriterError(f"{dlq_topic} offset {message.offset()} has no {HEADER_TOPIC} header")

"""Helpers for tests against the real servers: bounded waits that fail with a clear message."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def tcp_reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_server(name: str, address: str, hint: str) -> None:
    host, _, port = address.rpartition(":")
    if not tcp_reachable(host or "127.0.0.1", int(port)):
        pytest.fail(f"{name} is not reachable at {address}: {hint}", pytrace=False)


def create_topics_and_wait(
    admin: AdminClient,
    names: Sequence[str],
    partitions: int,
    timeout_s: float = 60.0,
    config: dict[str, str] | None = None,
) -> None:
    """Create topics and return once the broker's metadata shows every partition of each with a
    leader: a created topic is not usable at once (consumers assigned to it before that get
    "Unknown topic or partition"), and on a busy machine the gap is seconds, not milliseconds.
    ``timeout_s`` is a guard against a stuck broker, far above any normal wait. ``config``:
    topic configs for every one of them."""
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
            for name in names
        ]
    )
    for future in futures.values():
        future.result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    waiting = set(names)
    while waiting:
        for name in sorted(waiting):
            topic = admin.list_topics(name, timeout=timeout_s).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.error is None and p.leader >= 0 for p in topic.partitions.values())
            ):
                waiting.discard(name)
        if waiting and time.monotonic() > deadline:
            pytest.fail(f"topics {sorted(waiting)} had no leaders after {timeout_s}s", False)
        if waiting:
            time.sleep(0.05)


def flush_or_fail(producer: Producer, bootstrap: str, timeout_s: float = 30.0) -> None:
    remaining = producer.flush(timeout_s)
    if remaining:
        pytest.fail(
            f"{remaining} record(s) not acknowledged by Kafka at {bootstrap} within {timeout_s}s: "
            "is the broker up? (mdgw infra status)",
            pytrace=False,
        )


def consume_or_fail(
    consumer: Consumer,
    count: int,
    bootstrap: str,
    timeout_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> list[Message]:
    """Poll until ``count`` records arrived, or fail saying what is missing after ``timeout_s``."""
    received: list[Message] = []
    deadline = clock() + timeout_s
    while len(received) < count:
        if clock() > deadline:
            pytest.fail(
                f"got {len(received)} of {count} record(s) from Kafka at {bootstrap} "
                f"in {timeout_s}s: is the broker up? (mdgw infra status)",
                pytrace=False,
            )
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            pytest.fail(f"Kafka consumer error: {error}", pytrace=False)
        received.append(message)
    return received


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default (Java) partitioner: murmur2 of the key, positive, modulo partitions.

    Written from the algorithm description to check our producers independently.
    """
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    length = len(key)
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = key[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions

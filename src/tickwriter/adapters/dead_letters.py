"""The dead-letter topic: the original bytes and headers, plus headers saying why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from tickwriter import metrics
from tickwriter.errors import WriteFailed

HEADER_ERROR = "dlq.error"
HEADER_REASON = "dlq.reason"
HEADER_TOPIC = "dlq.topic"
HEADER_PARTITION = "dlq.partition"
HEADER_OFFSET = "dlq.offset"
HEADER_TIME_NS = "dlq.time_ns"
DLQ_HEADERS = (
    HEADER_ERROR,
    HEADER_REASON,
    HEADER_TOPIC,
    HEADER_PARTITION,
    HEADER_OFFSET,
    HEADER_TIME_NS,
)


def message_headers(message: Message) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs; a header without a value becomes b""."""
    pairs = []
    for pair in message.headers() or []:
        name, value = pair[0], pair[1]
        raw = value.encode() if isinstance(value, str) else (value or b"")
        pairs.append((str(name), raw))
    return pairs


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    reason: str
    error: str


class DeadLetterPublisher:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def publish(self, letters: Sequence[DeadLetter], now_ns: int, timeout_s: float = 30.0) -> None:
        """Produce and wait for every letter; raises WriteFailed if any was not acknowledged,
        so the caller does not commit past a record that is neither written nor dead-lettered."""
        if not letters:
            return
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        for letter in letters:
            source = letter.message
            headers: list[tuple[str, str | bytes | None]] = list(message_headers(source))
            headers += [
                (HEADER_ERROR, letter.error.encode()),
                (HEADER_REASON, letter.reason.encode()),
                (HEADER_TOPIC, (source.topic() or "").encode()),
                (HEADER_PARTITION, str(source.partition()).encode()),
                (HEADER_OFFSET, str(source.offset()).encode()),
                (HEADER_TIME_NS, str(now_ns).encode()),
            ]
            self._producer.produce(
                self._topic,
                value=source.value(),
                key=source.key(),
                headers=headers,
                on_delivery=on_delivery,
            )
        remaining = self._producer.flush(timeout_s)
        if remaining or failures:
            raise WriteFailed("dlq", f"{remaining} undelivered, errors: {failures[:3]}")
        for letter in letters:
            metrics.DLQ_RECORDS.labels(letter.reason.split(":")[0]).inc()

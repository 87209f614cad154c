"""The dead-letter topic: the original bytes and headers, plus headers saying why."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tickwriter import metrics
from tickwriter.errors import WriteFailed

HEADER_ERROR = "dlq.error"
HEADER_REASON = "dlq.reason"
HEADER_TOPIC = "dlq.topic"
HEADER_PARTITION = "dlq.partition"
HEADER_OFFSET = "dlq.offset"
HEADER_TIME_NS = "dlq.time_ns"
# Set instead of the value when the original record, with the dlq.* headers, is too large for
# the DLQ topic: the letter still says where the record is (topic, partition, offset) and why.
HEADER_VALUE_DROPPED = "dlq.value_dropped"
DLQ_HEADERS = (
    HEADER_ERROR,
    HEADER_REASON,
    HEADER_TOPIC,
    HEADER_PARTITION,
    HEADER_OFFSET,
    HEADER_TIME_NS,
    HEADER_VALUE_DROPPED,
)
_MAX_ERROR_BYTES = 1000  # a reason's text, never the (possibly huge) value it is about


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


def _delivery_reports(
    failures: list[KafkaError], too_large: list[DeadLetter]
) -> Callable[[DeadLetter], Callable[[KafkaError | None, Message], None]]:
    """Delivery callbacks per letter: a letter too large for the topic is kept apart (sent
    again without its value); any other error is a failure of the whole publish."""

    def on_delivery_of(letter: DeadLetter) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                return
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                too_large.append(letter)
            else:
                failures.append(error)

        return on_delivery

    return on_delivery_of


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
        too_large: list[DeadLetter] = []
        on_delivery_of = _delivery_reports(failures, too_large)
        for letter in letters:
            try:
                self._produce(letter, on_delivery_of(letter), now_ns, with_value=True)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise WriteFailed("dlq", str(exc)) from exc
                too_large.append(letter)
            except BufferError as exc:  # the producer's queue is full: flush and retry
                raise WriteFailed("dlq", str(exc)) from exc
        remaining = self._producer.flush(timeout_s)
        if too_large and not remaining and not failures:
            # the bytes cannot travel; the letter still does, so the record is accounted for
            dropped, too_large[:] = list(too_large), []
            for letter in dropped:
                self._produce(letter, on_delivery_of(letter), now_ns, with_value=False)
            remaining = self._producer.flush(timeout_s)
        if remaining or failures or too_large:
            raise WriteFailed("dlq", f"{remaining} undelivered, errors: {failures[:3]}")
        for letter in letters:
            metrics.DLQ_RECORDS.labels(letter.reason.split(":")[0]).inc()

    def _produce(
        self,
        letter: DeadLetter,
        on_delivery: Callable[[KafkaError | None, Message], None],
        now_ns: int,
        *,
        with_value: bool,
    ) -> None:
        source = letter.message
        value = source.value()
        headers: list[tuple[str, str | bytes | None]] = list(message_headers(source))
        headers += [
            (HEADER_ERROR, letter.error.encode()[:_MAX_ERROR_BYTES]),
            (HEADER_REASON, letter.reason.encode()),
            (HEADER_TOPIC, (source.topic() or "").encode()),
            (HEADER_PARTITION, str(source.partition()).encode()),
            (HEADER_OFFSET, str(source.offset()).encode()),
            (HEADER_TIME_NS, str(now_ns).encode()),
        ]
        if not with_value:
            size = len(value or b"")
            headers.append((HEADER_VALUE_DROPPED, f"{size} bytes, too large".encode()))
        self._producer.produce(
            self._topic,
            value=value if with_value else None,
            key=source.key(),
            headers=headers,
            on_delivery=on_delivery,
        )

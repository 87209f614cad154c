"""The Kafka side of a feed handler: a producer that never blocks the venue reader.

Producer settings come from ``marketinfra.kafka.make_producer`` (acks=all, idempotence,
lz4, ``KAFKA_LINGER_MS``, murmur2 keys). On top of that:

- Every delivery report comes back to Python (served by ``poll``): a success gives its
  produce-to-acknowledgement latency (``Message.latency()``) to ``observe_latency`` (the
  feed handler's histogram); that costs about 0.4 us of CPU per record, measured against
  ``delivery.report.only.error`` on 300k records. Failed deliveries are counted by error
  code and logged (the first few, then one in ``_LOG_EVERY``), never dropped silently.
- With ``observe_receipt_ack``, each record also reports its frame's receipt to its
  acknowledgement: the time from receipt to ``produce()`` plus the latency above.
- ``Message.latency()`` is read when the report is served (librdkafka computes it then), so
  reports must be served as they come, not at the next upkeep (0.1 s): ``serve_reports``
  starts a thread that waits in ``poll`` (outside the GIL until a report is there).
- librdkafka statistics (``stats_cb``, once per ``statistics.interval.ms``) say how many
  brokers the producer is connected to (``brokers_up``): the feed handler's readiness. Losing
  the last broker, and getting one back, are logged (``kafka_brokers_down``/``_up``), as are
  librdkafka's client errors (``error_cb``: ``kafka_client_error``).
- ``reports`` and ``acks`` count delivery reports and acknowledgements, and ``waiting()`` the
  records produced and not yet reported: what the delivery watchdog
  (``marketcore.watchdog``) watches.

Buffer policy, when Kafka is slow or down (the handler keeps reading the venue):

1. librdkafka's queue holds up to ``buffer_max_messages`` records / ``buffer_max_kbytes``;
   records wait there, in order, until Kafka takes them, or until
   ``KAFKA_DELIVERY_TIMEOUT_MS`` passes (then each is a counted, logged delivery error).
2. When that queue is full, each instrument gets one overflow slot holding its newest
   tick: a newer tick replaces it (the older is dropped, reason ``conflated``), and at
   most ``overflow_max_instruments`` slots exist (beyond that: dropped, ``buffer_full``).
   Slots go into the queue, oldest first, before any new record, so one instrument's
   records reach Kafka in order and the freshest price gets there first after an outage.
3. A dropped tick leaves a gap in its instrument's ``feed_sequence``: consumers see where.

A tick is *accepted* once it is in librdkafka's queue. ``close`` (SIGTERM) moves the
slots into the queue and waits up to its timeout for every accepted record; it returns
how many were not acknowledged, so a clean stop that lost nothing is provable.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import orjson
import structlog
from confluent_kafka import KafkaError, KafkaException, Message

from marketinfra.kafka import ConfigValue, brokers_up, make_producer
from marketinfra.settings import KafkaSettings

log = structlog.get_logger(__name__)

_LOG_FIRST = 5
_LOG_EVERY = 10_000
CONFLATED = "conflated"
BUFFER_FULL = "buffer_full"
PRODUCE_FAILED = "produce_failed"


class ProducerPort(Protocol):
    """What the sink needs of ``confluent_kafka.Producer`` (tests pass a fake)."""

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None] = ...
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...

    def __len__(self) -> int: ...


ProducerFactory = Callable[[KafkaSettings, Mapping[str, ConfigValue]], Any]


class KafkaTickSink:
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        buffer_max_messages: int = 100_000,
        buffer_max_kbytes: int = 65_536,
        overflow_max_instruments: int = 10_000,
        stats_interval_ms: int = 5_000,
        wait_when_full: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        producer_factory: ProducerFactory = make_producer,
        observe_latency: Callable[[float], None] | None = None,
        observe_receipt_ack: Callable[[float], None] | None = None,
    ) -> None:
        """``wait_when_full``: for replays and backfills, which are not live: when the queue
        is full, wait for Kafka instead of conflating (nothing is dropped, the replay slows)."""
        self.topic = topic
        self._wait_when_full = wait_when_full
        self.bootstrap_servers = settings.bootstrap_servers
        self._overflow: dict[bytes, bytes] = {}
        self._overflow_max = overflow_max_instruments
        self._clock = clock
        self.accepted = 0
        self.dropped: Counter[str] = Counter()
        self.delivery_errors: Counter[str] = Counter()
        self.fatal_error: str | None = None
        self.reports = 0  # delivery reports served (acknowledgements and errors)
        self.acks = 0
        self._observe_latency = observe_latency
        self._observe_receipt_ack = observe_receipt_ack
        self._wall_ns = wall_ns
        self._reports_stop = threading.Event()
        self._reports: threading.Thread | None = None
        # brokers connected in the latest statistics (None: no statistics yet)
        self.brokers_up: int | None = None
        self.producer: ProducerPort = producer_factory(
            settings,
            {
                "queue.buffering.max.messages": buffer_max_messages,
                "queue.buffering.max.kbytes": buffer_max_kbytes,
                "delivery.report.only.error": False,
                "on_delivery": self._on_delivery,
                "error_cb": self._on_client_error,
                "statistics.interval.ms": stats_interval_ms,
                "stats_cb": self._on_stats,
            },
        )
        self._produce = self.producer.produce

    # --- hot path ------------------------------------------------------------------------

    def send(self, key: bytes, value: bytes, received_ns: int = 0) -> None:
        if self._overflow and not self._drain():
            self._hold(key, value)  # its receipt-to-ack is not observed: it waited for Kafka
            return
        try:
            if received_ns and self._observe_receipt_ack is not None:
                before_produce_s = (self._wall_ns() - received_ns) / 1e9
                self._produce(
                    self.topic, value, key, on_delivery=partial(self._on_ack, before_produce_s)
                )
            else:
                self._produce(self.topic, value, key)
        except BufferError:
            if self._wait_when_full:
                self._produce_waiting(key, value)
            else:
                self._hold(key, value)
            return
        except KafkaException as exc:  # a local refusal (record too large, ...)
            self._count_failure(PRODUCE_FAILED, str(exc))
            return
        self.accepted += 1

    def _produce_waiting(self, key: bytes, value: bytes) -> None:
        while True:
            self.producer.poll(0.01)
            try:
                self._produce(self.topic, value, key)
            except BufferError:
                continue
            except KafkaException as exc:
                self._count_failure(PRODUCE_FAILED, str(exc))
                return
            self.accepted += 1
            return

    def _hold(self, key: bytes, value: bytes) -> None:
        if key in self._overflow:
            self.dropped[CONFLATED] += 1
        elif len(self._overflow) >= self._overflow_max:
            self.dropped[BUFFER_FULL] += 1
            return
        self._overflow[key] = value  # an existing slot keeps its place: oldest drains first

    def _drain(self) -> bool:
        """Move overflow slots into the producer queue, oldest first; True when all went."""
        overflow = self._overflow
        while overflow:
            key = next(iter(overflow))
            try:
                self._produce(self.topic, overflow[key], key)
            except BufferError:
                return False
            except KafkaException as exc:
                self._count_failure(PRODUCE_FAILED, str(exc))
            else:
                self.accepted += 1
            del overflow[key]
        return True

    # --- upkeep (a few times a second) ---------------------------------------------------

    def serve_reports(self) -> None:
        """Serve delivery reports (and the other callbacks) on a thread as they come, so each
        latency is read when its acknowledgement arrives; ``close`` stops it."""
        if self._reports is None:
            self._reports = threading.Thread(
                target=self._serve_reports, name="feed-delivery-reports", daemon=True
            )
            self._reports.start()

    def _serve_reports(self) -> None:
        while not self._reports_stop.is_set():
            self.producer.poll(0.1)

    def poll(self) -> None:
        """Serve librdkafka's callbacks (errors, statistics) and move overflow slots on."""
        if self._reports is None:
            self.producer.poll(0)
        if self._overflow:
            self._drain()

    def depth(self) -> int:
        """Records accepted but not yet acknowledged, plus the overflow slots."""
        return len(self.producer) + len(self._overflow)

    def waiting(self) -> int:
        """Records produced whose delivery report has not come yet."""
        return len(self.producer)

    def overflow_depth(self) -> int:
        return len(self._overflow)

    def close(self, timeout_s: float) -> int:
        """Drain the slots and wait for every accepted record; returns how many were not
        acknowledged within ``timeout_s`` (0: nothing lost)."""
        self._reports_stop.set()
        if self._reports is not None:
            self._reports.join()
            self._reports = None
        deadline = self._clock() + timeout_s
        while self._overflow and self._clock() < deadline:
            if not self._drain():
                self.producer.poll(0.05)
        remaining = self.producer.flush(max(0.0, deadline - self._clock()))
        self.producer.poll(0)  # serve the error reports of what failed during the flush
        return remaining + len(self._overflow)

    # --- librdkafka callbacks (served by poll/flush, on this thread) --------------------

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        self.reports += 1
        if error is None:
            self.acks += 1
            latency_s = message.latency()
            if latency_s is not None and self._observe_latency is not None:
                self._observe_latency(latency_s)
            return
        self._count_failure(error.name(), error.str(), key=message.key())

    def _on_ack(self, before_produce_s: float, error: KafkaError | None, message: Message) -> None:
        self._on_delivery(error, message)
        if error is None and self._observe_receipt_ack is not None:
            latency_s = message.latency()
            if latency_s is not None:
                self._observe_receipt_ack(before_produce_s + latency_s)

    def _count_failure(self, code: str, detail: str, key: bytes | None = None) -> None:
        self.delivery_errors[code] += 1
        seen = self.delivery_errors[code]
        if seen <= _LOG_FIRST or seen % _LOG_EVERY == 0:
            log.error(
                "tick_delivery_failed",
                topic=self.topic,
                code=code,
                detail=detail,
                key=key.decode("utf-8", "replace") if key else None,
                occurrences=seen,
            )

    def _on_client_error(self, error: KafkaError) -> None:
        # Broker-down and similar errors: librdkafka keeps retrying by itself.
        log.warning(
            "kafka_client_error", code=error.name(), reason=error.str(), fatal=error.fatal()
        )
        if error.fatal():
            self.fatal_error = f"{error.name()}: {error.str()}"

    def _on_stats(self, stats_json: str) -> None:
        before, self.brokers_up = self.brokers_up, brokers_up(orjson.loads(stats_json))
        if self.brokers_up == 0 and before != 0:
            log.error("kafka_brokers_down", topic=self.topic, waiting=len(self.producer))
        elif self.brokers_up and before == 0:
            log.info("kafka_brokers_up", topic=self.topic, brokers=self.brokers_up)

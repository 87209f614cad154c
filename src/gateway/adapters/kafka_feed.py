"""The process's one Kafka consumer: every partition of the ticks topic, fanned out in memory.

Not a consumer group: every gateway process (and every worker, issue 7) needs every tick, so
partitions are assigned, not subscribed, and no offset is ever committed. Reading starts at
the end of each partition as it is when ``start`` returns (the offsets are read explicitly, so
a tick produced after ``start`` is never missed); what came before is the store's job.

The consumer runs on its own thread: records are decoded there (once), and handed to the event
loop in batches. At most ``max_batches_in_flight`` batches wait for the loop; past that the
thread stops reading, so a busy loop makes Kafka lag grow, never the process's memory.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import orjson
import structlog
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from gateway import metrics
from gateway.core.updates import FeedUpdate
from gateway.errors import FeedError
from gateway.service.convert import decode_update
from marketinfra.kafka import brokers_up, make_consumer, take_waiting
from marketinfra.settings import KafkaSettings

log = structlog.get_logger(__name__)
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}
Deliver = Callable[[Sequence[FeedUpdate]], None]
_IDLE_POLL_S = 0.1  # how often an idle feed thread looks at the stop flag


class KafkaFeed:
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        deliver: Deliver,
        loop: asyncio.AbstractEventLoop,
        *,
        batch_max: int = 500,
        max_batches_in_flight: int = 4,
        from_beginning: bool = False,
        silent_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``silent_after_s``: no librdkafka statistics (due every second, served by the
        consume loop) for this long means the feed is not reading: ``connected`` is False."""
        self._settings = settings
        self._topic = topic
        self._deliver = deliver
        self._loop = loop
        self._batch_max = batch_max
        self._from_beginning = from_beginning
        self._in_flight = threading.BoundedSemaphore(max_batches_in_flight)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self.crashed: BaseException | None = None
        self.partitions = 0
        self._brokers_up: int | None = None  # from librdkafka statistics; None: none yet
        self._silent_after_s = silent_after_s
        self._clock = clock
        self._stats_at = clock()  # the latest statistics (or the start)

    def start(self, timeout_s: float = 10.0) -> None:
        """Assign every partition at its current end (blocking), then read on a thread."""
        consumer = make_consumer(
            self._settings,
            f"gateway-{uuid.uuid4().hex[:12]}",  # required by librdkafka; never joined
            {
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 10,
                "statistics.interval.ms": 1000,
                "stats_cb": self._on_stats,
            },
        )
        try:
            assignment = self._assignment(consumer, timeout_s)
        except KafkaException as exc:
            consumer.close()
            raise FeedError(self._topic, str(exc)) from exc
        except FeedError:
            consumer.close()
            raise
        consumer.assign(assignment)
        self.partitions = len(assignment)
        self._stats_at = self._clock()
        self._consumer = consumer
        self._thread = threading.Thread(target=self._run, name="gateway-feed", daemon=True)
        self._thread.start()
        log.info("feed_started", topic=self._topic, partitions=self.partitions)

    def _assignment(self, consumer: Consumer, timeout_s: float) -> list[TopicPartition]:
        metadata = consumer.list_topics(self._topic, timeout=timeout_s)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            detail = topic.error.str() if topic is not None and topic.error else "no partitions"
            raise FeedError(self._topic, f"cannot read the topic ({detail})")
        deadline = time.monotonic() + timeout_s
        assignment = []
        for partition in sorted(topic.partitions):
            low, high = self._watermarks(consumer, partition, deadline)
            start = low if self._from_beginning else high
            assignment.append(TopicPartition(self._topic, partition, start))
        return assignment

    def _watermarks(self, consumer: Consumer, partition: int, deadline: float) -> tuple[int, int]:
        """A partition's (low, high) offsets. Retried until ``deadline`` while the partition
        has no leader yet (a topic just created, a broker restarting)."""
        while True:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition), timeout=remaining
                )
                return int(low), int(high)
            except KafkaException as exc:
                if exc.args[0].code() not in _NO_LEADER_YET or time.monotonic() >= deadline:
                    raise
            time.sleep(0.1)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """A broker connected in the latest statistics (before the first: positioning the
        feed at start, which needed the brokers, succeeded), and those statistics recent: a
        consume loop that stopped turning serves none."""
        if not self.alive or self._brokers_up == 0:
            return False
        return self._clock() - self._stats_at < self._silent_after_s

    def _on_stats(self, stats_json: str) -> None:  # on the feed thread, inside consume()
        before, self._brokers_up = self._brokers_up, brokers_up(orjson.loads(stats_json))
        self._stats_at = self._clock()
        if self._brokers_up == 0 and before != 0:
            log.error("feed_brokers_down", topic=self._topic)
        elif self._brokers_up and before == 0:
            log.info("feed_brokers_up", topic=self._topic, brokers=self._brokers_up)

    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None  # set by start() before the thread starts
        try:
            while not self._stop.is_set():
                # never waits for a batch to fill: a tick goes on as soon as it is fetched
                messages = take_waiting(consumer, self._batch_max, _IDLE_POLL_S)
                if messages:
                    self._hand_over(self._decode(messages))
        except Exception as exc:
            self.crashed = exc
            log.exception("feed_crashed")
        finally:
            consumer.close()
            log.info("feed_stopped", topic=self._topic)

    def _decode(self, messages: list[Message]) -> list[FeedUpdate]:
        updates: list[FeedUpdate] = []
        invalid = 0
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("feed_consume_error", error=str(error))
                continue
            kind, timestamp_ms = message.timestamp()
            record_ns = timestamp_ms * 1_000_000 if kind != TIMESTAMP_NOT_AVAILABLE else 0
            update = decode_update(message.value(), record_ns)
            if isinstance(update, str):
                invalid += 1
                metrics.FEED_RECORDS.labels(f"invalid_{update}").inc()
            else:
                updates.append(update)
        if invalid:
            log.debug("feed_records_invalid", count=invalid)
        return updates

    def _hand_over(self, updates: list[FeedUpdate]) -> None:
        if not updates:
            return
        while not self._in_flight.acquire(timeout=0.2):
            if self._stop.is_set():
                return
        try:
            self._loop.call_soon_threadsafe(self._apply, updates)
        except RuntimeError:  # the loop closed under us: the process is stopping
            self._in_flight.release()
            self._stop.set()

    def _apply(self, updates: list[FeedUpdate]) -> None:
        try:
            self._deliver(updates)
        finally:
            self._in_flight.release()

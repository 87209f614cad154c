"""The pipeline's rebalance rules with a scripted consumer and writer (no servers): what is
handed over is written and committed first; when Cassandra fails during a revoke, nothing of
the partitions kept is skipped, and poll() is never called from inside the callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from marketcore.backoff import BackoffPolicy
from tests.support import price_update
from tickwriter.batching import FlushPolicy
from tickwriter.decode import decode_tick
from tickwriter.errors import WriteFailed
from tickwriter.pipeline import TickPipeline

TOPIC = "ticks"


@dataclass
class FakeMessage:
    partition_: int
    offset_: int
    value_: bytes

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def value(self) -> bytes:
        return self.value_

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


@dataclass
class FakeConsumer:
    """Hands out scripted messages; a script step may instead run a rebalance callback."""

    script: list[FakeMessage | Callable[[FakeConsumer], None]] = field(default_factory=list)
    commits: list[dict[int, int]] = field(default_factory=list)
    in_callback: bool = False
    on_assign: Callable[..., None] | None = None
    on_revoke: Callable[..., None] | None = None
    on_lost: Callable[..., None] | None = None

    def subscribe(self, _topics: list[str], on_assign, on_revoke, on_lost) -> None:
        self.on_assign, self.on_revoke, self.on_lost = on_assign, on_revoke, on_lost
        on_assign(self, [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])

    def poll(self, _timeout: float) -> FakeMessage | None:
        assert not self.in_callback, "poll() called from inside a rebalance callback"
        if not self.script:
            return None
        step = self.script.pop(0)
        if callable(step):
            self.in_callback = True
            try:
                step(self)
            finally:
                self.in_callback = False
            return None
        return step

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append({tp.partition: tp.offset for tp in offsets})

    def pause(self, _partitions: list[TopicPartition]) -> None: ...
    def resume(self, _partitions: list[TopicPartition]) -> None: ...
    def close(self) -> None: ...

    def get_watermark_offsets(self, *_args: object, **_kwargs: object) -> tuple[int, int]:
        return (0, 0)


@dataclass
class FakeWriter:
    down: bool = False
    written: list[int] = field(default_factory=list)  # feed_sequence of every row written

    def write(self, rows, bars=()) -> float:
        if self.down:
            raise WriteFailed("unavailable", "scripted outage")
        self.written += [row.tick.feed_sequence for row in rows]
        return 0.0


class NoDeadLetters:
    def publish(self, letters, now_ns: int) -> None:
        assert not letters


def _message(partition: int, offset: int) -> FakeMessage:
    tick = price_update(
        exchange="X", symbol=f"S{partition}", last_nanos=1, event_time_ns=1,
        feed_handler_id="f", feed_sequence=partition * 1000 + offset,
    )  # fmt: skip
    return FakeMessage(partition, offset, tick.SerializeToString())


def _pipeline(consumer: FakeConsumer, writer: FakeWriter) -> TickPipeline:
    return TickPipeline(
        consumer,  # type: ignore[arg-type]
        writer,  # type: ignore[arg-type]
        NoDeadLetters(),  # type: ignore[arg-type]
        {TOPIC: decode_tick},
        FlushPolicy(max_records=100, max_wait_ms=10_000),  # flush only when told to
        BackoffPolicy(base_s=0.01, cap_s=0.02),
        checkpoint_interval_s=3600,
    )


def _revoke(partition: int) -> Callable[[FakeConsumer], None]:
    def step(consumer: FakeConsumer) -> None:
        assert consumer.on_revoke is not None
        consumer.on_revoke(consumer, [TopicPartition(TOPIC, partition)])

    return step


def test_revoke_writes_and_commits_before_handing_over() -> None:
    writer = FakeWriter()
    consumer = FakeConsumer(script=[_message(0, 0), _message(1, 0), _message(0, 1), _revoke(1)])
    pipeline = _pipeline(consumer, writer)
    consumer.subscribe([TOPIC], pipeline._on_assign, pipeline._on_revoke, pipeline._on_lost)
    for _ in range(4):
        pipeline._poll_once()
    assert sorted(writer.written) == [0, 1, 1000]
    assert consumer.commits == [{0: 2, 1: 1}]  # both, synchronously, before the hand-over


def test_cassandra_down_during_a_revoke_skips_nothing_that_is_kept() -> None:
    writer = FakeWriter(down=True)
    consumer = FakeConsumer(script=[_message(0, 0), _message(1, 0), _message(0, 1)])
    pipeline = _pipeline(consumer, writer)
    consumer.subscribe([TOPIC], pipeline._on_assign, pipeline._on_revoke, pipeline._on_lost)
    # Records waiting for their flush when partition 1 is revoked, with Cassandra down.
    pipeline._pending.messages.extend(consumer.poll(0) for _ in range(3))
    consumer.in_callback = True
    consumer.on_revoke(consumer, [TopicPartition(TOPIC, 1)])  # tries once, fails, no poll()
    consumer.in_callback = False
    assert writer.written == []
    assert consumer.commits == []
    # Partition 0's records are still pending; partition 1's went with the partition.
    assert [(m.partition(), m.offset()) for m in pipeline._pending.messages] == [(0, 0), (0, 1)]

    writer.down = False
    pipeline._flush()
    pipeline._checkpoint(wait=True)
    assert writer.written == [0, 1]
    assert consumer.commits == [{0: 2}]  # never partition 1: it belongs to the new owner

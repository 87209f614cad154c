"""The pipeline's central promise, checked over many generated streams with a scripted consumer
and a writer that fails at random (no servers): an offset is committed only after every record
below it is written (or dead-lettered) and the day bars of the written ticks are upserted; and
once the stream is drained every record is written and committed to the end. Poison records
mixed in (undecodable, or refused by the writer for good) end in the DLQ, and only they."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcore.backoff import BackoffPolicy
from tests.support import price_update
from tickwriter.adapters.dead_letters import DeadLetter
from tickwriter.batching import FlushPolicy
from tickwriter.daily_bars import DailyBar
from tickwriter.decode import decode_tick
from tickwriter.errors import WriteFailed, WriteRefused
from tickwriter.pipeline import TickPipeline
from tickwriter.rows import Row, TickRow

TOPIC = "ticks"
PARTITIONS = 3


GOOD, GARBAGE, REFUSED = "good", "garbage", "refused"
REFUSED_VENUE_SYMBOL = "refuse-me"  # the writer refuses these rows (as if unserializable)


@dataclass
class Record:
    partition: int
    offset: int
    kind: str

    def value(self) -> bytes:
        if self.kind == GARBAGE:
            return b"\xff\xffnot a tick"
        tick = price_update(
            exchange="X", symbol=f"S{self.partition}", last_nanos=1_000 + self.offset,
            venue_symbol=REFUSED_VENUE_SYMBOL if self.kind == REFUSED else "",
            event_time_ns=1_700_000_000 * 10**9 + self.offset, feed_handler_id="f",
            feed_sequence=self.partition * 100_000 + self.offset + 1,
        )  # fmt: skip
        return tick.SerializeToString()


class _Message:
    """The confluent_kafka.Message methods the pipeline calls."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self.record.partition

    def offset(self) -> int:
        return self.record.offset

    def value(self) -> bytes:
        return self.record.value()

    def key(self) -> bytes:
        return b"X|S"

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


@dataclass
class Log:
    """What happened, in order: ("rows" | "dlq", {(partition, offset)}), ("bars", {symbol}),
    ("commit", {partition: offset})."""

    events: list[tuple[str, object]] = field(default_factory=list)


@dataclass
class FakeConsumer:
    """Delivers the script in order, in batches of drawn sizes. It ignores pause(): records keep
    coming while a write is retried, a harder case than librdkafka's (which delivers nothing
    from paused partitions, only from partitions assigned meanwhile)."""

    script: list[_Message]
    log: Log
    batch_sizes: itertools.cycle[int]

    def subscribe(self, _topics: list[str], on_assign, on_revoke, on_lost) -> None:
        on_assign(self, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])

    def poll(self, _timeout: float) -> _Message | None:
        return self.script.pop(0) if self.script else None

    def consume(self, num_messages: int, timeout: float) -> list[_Message]:
        taken = min(num_messages, next(self.batch_sizes), len(self.script))
        batch, self.script[:taken] = self.script[:taken], []
        return batch

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.log.events.append(("commit", {tp.partition: tp.offset for tp in offsets}))

    def pause(self, _partitions: list[TopicPartition]) -> None: ...
    def resume(self, _partitions: list[TopicPartition]) -> None: ...
    def close(self) -> None: ...


@dataclass
class FlakyWriter:
    """Fails whenever the next of its drawn outcomes says so (Cassandra timing out), and
    refuses for good any call holding a row marked ``REFUSED_VENUE_SYMBOL``."""

    outcomes: itertools.cycle[bool]
    log: Log

    def write(self, rows: Sequence[Row], bars: Collection[DailyBar] = ()) -> float:
        if next(self.outcomes):
            raise WriteFailed("timeout", "scripted")
        if any(
            isinstance(r, TickRow) and r.tick.venue_symbol == REFUSED_VENUE_SYMBOL for r in rows
        ):
            raise WriteRefused("serialization", "scripted")
        ticks = [row for row in rows if isinstance(row, TickRow)]
        if ticks:
            self.log.events.append(("rows", {_where(row) for row in ticks}))
        if bars:
            self.log.events.append(("bars", {bar.symbol for bar in bars}))
        return 0.0


@dataclass
class FlakyDeadLetters:
    outcomes: itertools.cycle[bool]
    log: Log

    def publish(self, letters: Sequence[DeadLetter], now_ns: int) -> None:
        if letters and next(self.outcomes):
            raise WriteFailed("dlq", "scripted")
        if letters:
            where = {(m.partition() or 0, m.offset() or 0) for m in (x.message for x in letters)}
            self.log.events.append(("dlq", where))


def _where(row: TickRow) -> tuple[int, int]:
    sequence = row.tick.feed_sequence - 1
    return (sequence // 100_000, sequence % 100_000)


@settings(max_examples=60, deadline=None)
@given(
    partitions=st.lists(
        st.tuples(st.integers(0, PARTITIONS - 1), st.sampled_from([GOOD, GOOD, GARBAGE, REFUSED])),
        max_size=80,
    ),
    failures=st.lists(st.booleans(), min_size=1, max_size=12),
    batch_sizes=st.lists(st.integers(0, 30), min_size=1, max_size=6),
    max_records=st.integers(1, 40),
    checkpoint_every_poll=st.booleans(),
)
def test_commits_never_pass_written_rows_or_their_bars(
    partitions: list[tuple[int, str]],
    failures: list[bool],
    batch_sizes: list[int],
    max_records: int,
    checkpoint_every_poll: bool,
) -> None:
    failures.append(False)  # the outage always ends
    next_offset = dict.fromkeys(range(PARTITIONS), 0)
    script = []
    for partition, kind in partitions:
        script.append(_Message(Record(partition, next_offset[partition], kind)))
        next_offset[partition] += 1
    log = Log()
    consumer = FakeConsumer(list(script), log, itertools.cycle(batch_sizes))
    pipeline = TickPipeline(
        consumer,  # type: ignore[arg-type]  # the methods the pipeline calls
        FlakyWriter(itertools.cycle(failures), log),
        FlakyDeadLetters(itertools.cycle(reversed(failures)), log),
        {TOPIC: decode_tick},
        FlushPolicy(max_records=max_records, max_wait_ms=0 if checkpoint_every_poll else 1e9),
        BackoffPolicy(base_s=0.0001, cap_s=0.0002),
        checkpoint_interval_s=0 if checkpoint_every_poll else 3600,
    )
    consumer.subscribe([TOPIC], pipeline._on_assign, pipeline._on_revoke, pipeline._on_lost)
    while consumer.script:
        pipeline._poll_once()
    pipeline._poll_once()  # the last records: nothing more is waiting, so they are flushed
    pipeline._checkpoint(wait=True)

    handled: set[tuple[int, int]] = set()  # written or dead-lettered so far
    dead_lettered: set[tuple[int, int]] = set()
    bars_due: set[str] = set()  # symbols written since the last bars upsert
    committed = dict.fromkeys(range(PARTITIONS), 0)
    for kind, what in log.events:
        if kind in ("rows", "dlq"):
            assert isinstance(what, set)
            handled |= what
            if kind == "dlq":
                dead_lettered |= what
            if kind == "rows":
                bars_due |= {f"S{partition}" for partition, _offset in what}
        elif kind == "bars":
            assert isinstance(what, set)
            bars_due -= what
        else:
            assert isinstance(what, dict)
            assert not bars_due, f"committed before the bars of {bars_due} were upserted"
            for partition, offset in what.items():
                below = {(partition, o) for o in range(offset)}
                assert below <= handled, f"partition {partition} committed past unwritten rows"
                committed[partition] = offset
    assert handled == {(m.partition(), m.offset()) for m in script}, "a record was lost"
    assert committed == next_offset, "not committed to the end"
    poison = {(m.partition(), m.offset()) for m in script if m.record.kind != GOOD}
    assert dead_lettered == poison, "the DLQ holds exactly the poison records"

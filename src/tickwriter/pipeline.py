"""The consume -> batch -> write -> commit loop (runs on its own thread).

At-least-once, each row stored once: offsets are committed only after every record up to them
is written to Cassandra or delivered to the DLQ, and every row is an idempotent upsert, so a
record read twice (after a crash, a rebalance or a replay), or produced twice (Kafka may hold
duplicates after a long broker outage), rewrites the same row.

Poison records: a record that cannot be decoded or breaks a limit or rule goes to the DLQ at
decode (``tickwriter.decode``). A write that fails in a way a retry may fix (Cassandra down,
timed out, overloaded: ``WriteFailed``) is retried with backoff, consumption paused. A write
that fails in a way no retry fixes (``WriteRefused``: the driver cannot encode a value,
Cassandra answers InvalidRequest) is retried row by row: rows written alone are stored, those
refused alone go to the DLQ (``write_refused:<kind>``) with their bytes. Either way the writer
keeps running and commits past the record only once it is stored or dead-lettered.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from marketcore.backoff import BackoffPolicy, backoff_delay
from marketinfra.kafka import take_waiting
from marketinfra.readiness import CASSANDRA, PARTITIONS, Readiness
from tickwriter import metrics
from tickwriter.adapters.dead_letters import DeadLetter
from tickwriter.adapters.kafka_stats import LagGauges
from tickwriter.batching import FlushPolicy, commit_positions, should_flush
from tickwriter.daily_bars import BarKey, DailyBar, fold
from tickwriter.errors import RecordRejected, WriteFailed, WriteRefused
from tickwriter.ports import DeadLetterSink, RowWriter
from tickwriter.rows import Row, TickRow

log = structlog.get_logger(__name__)
Decoder = Callable[[bytes | None], Row]
_IDLE_POLL_S = 0.2  # how often an idle loop looks at the stop flag
_MAX_ERROR_CHARS = 500  # an unexpected exception's text, as a DLQ reason detail


class CommitTimer:
    """Times offset commits, including the ones not waited for (librdkafka's on_commit)."""

    def __init__(self) -> None:
        self._started = 0.0

    def started(self) -> None:
        self._started = time.perf_counter()

    def on_commit(self, error: KafkaError | None, _partitions: list[TopicPartition]) -> None:
        if error is not None:
            log.warning("commit_failed", error=str(error))
        elif self._started:
            metrics.COMMIT_LATENCY.observe(time.perf_counter() - self._started)


@dataclass
class _Pending:
    messages: list[Message] = field(default_factory=list)
    first_at: float = 0.0


class TickPipeline:
    def __init__(
        self,
        consumer: Consumer,
        writer: RowWriter,
        dead_letters: DeadLetterSink,
        decoders: Mapping[str, Decoder],
        policy: FlushPolicy,
        retry: BackoffPolicy,
        commit_timer: CommitTimer | None = None,
        checkpoint_interval_s: float = 0.25,
        lag_gauges: LagGauges | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        """``readiness``: told when the group gives this member its partitions (or takes
        them away) and when writes to Cassandra fail (consumption paused) or recover."""
        self._readiness = readiness
        self._lag_gauges = lag_gauges
        self._checkpoint_interval_s = checkpoint_interval_s
        self._uncommitted: dict[tuple[str, int], int] = {}  # written, not yet committed
        # day bars of written ticks, upserted at the next checkpoint (before the commit)
        self._bars: dict[BarKey, DailyBar] = {}
        self._last_checkpoint = time.monotonic()
        self._commit_timer = commit_timer or CommitTimer()
        self._consumer = consumer
        self._writer = writer
        self._dead_letters = dead_letters
        self._decoders = dict(decoders)
        self._policy = policy
        self._retry = retry
        self._pending = _Pending()
        self._assigned: set[tuple[str, int]] = set()
        self._flushing = False
        self._in_rebalance = False  # inside a rebalance callback: no poll(), no retry loop
        self._paused = False
        self._stop = threading.Event()
        self.flushes = 0
        self.crashed: BaseException | None = None
        # time.monotonic() of the first of the writes failing now (None: writes go through),
        # and of the loop's latest turn: what the writer's liveness watches
        self.unable_to_write_since: float | None = None
        self.last_turn_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    @property
    def assigned_partitions(self) -> int:
        return len(self._assigned)

    def run(self) -> None:
        self._consumer.subscribe(
            list(self._decoders),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("tickwriter_consuming", topics=sorted(self._decoders))
        try:
            while not self._stop.is_set():
                self._poll_once()
            if self._pending.messages:
                self._flush()
            self._checkpoint(wait=True)  # a clean stop writes and commits what it has
        except Exception as exc:
            # Nothing unwritten was committed; the process exits non-zero and is restarted.
            self.crashed = exc
            log.exception("pipeline_crashed")
        finally:
            self._consumer.close()
            log.info("tickwriter_stopped", flushes=self.flushes)

    # -- the loop ------------------------------------------------------------------------

    def _poll_once(self) -> None:
        self.last_turn_at = time.monotonic()
        pending = self._pending
        want = self._policy.max_records - len(pending.messages)
        if pending.messages:
            waited_ms = (time.monotonic() - pending.first_at) * 1000
            timeout_s = max(0.0, (self._policy.max_wait_ms - waited_ms) / 1000)
        else:
            timeout_s = _IDLE_POLL_S
        # returns on the first record, with what was already fetched: "nothing more waiting"
        # (fewer than asked) is known at once, and should_flush writes then
        batch = take_waiting(self._consumer, want, timeout_s)
        arrived = self._accept(batch)
        if arrived and not pending.messages:
            pending.first_at = time.monotonic()
        pending.messages.extend(arrived)
        waited_ms = (time.monotonic() - pending.first_at) * 1000 if pending.messages else 0.0
        if should_flush(self._policy, len(pending.messages), waited_ms, drained=len(batch) < want):
            self._flush()
        if self._uncommitted and (
            time.monotonic() - self._last_checkpoint >= self._checkpoint_interval_s
        ):
            self._checkpoint(wait=False)

    def _accept(self, batch: list[Message]) -> list[Message]:
        accepted = []
        for message in batch:
            error = message.error()
            if error is None:
                accepted.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("kafka_consume_error", error=str(error))
        return accepted

    def _flush(self) -> None:
        """Write the pending records (rows, or dead letters); their offsets become committable
        at the next checkpoint."""
        taken = self._pending
        messages = taken.messages
        self._pending = _Pending()
        rows: list[Row] = []
        sources: list[Message] = []  # the record of each row
        letters: list[DeadLetter] = []
        for message in messages:
            try:
                rows.append(self._decode(message))
                sources.append(message)
            except RecordRejected as exc:
                letters.append(DeadLetter(message, exc.reason, str(exc)))
        self._flushing = True
        try:
            stored = self._write_rows(rows, sources)
            written = stored is not None and self._retry_until_done(
                lambda: self._dead_letters.publish(letters + stored[1], time.time_ns()),
                "dead_letter",
            )
            if not written:
                if self._in_rebalance:
                    # The consumer's position is past these records: keep them, or a later
                    # commit would skip them. Revoked partitions' records are dropped next.
                    taken.messages.extend(self._pending.messages)
                    self._pending = taken
                return  # stopping: nothing is committed, the records will be read again
        finally:
            self._flushing = False
            self._resume()
        assert stored is not None  # written implies stored
        self._bars = fold((row for row in stored[0] if isinstance(row, TickRow)), into=self._bars)
        _observe_receipt_to_written(stored[0], time.time_ns())
        metrics.FLUSH_SIZE.observe(len(messages))
        positions = commit_positions(
            [(m.topic() or "", m.partition() or 0, m.offset() or 0) for m in messages]
        )
        for key, offset in positions.items():
            self._uncommitted[key] = max(self._uncommitted.get(key, 0), offset)
        self._observe(messages)
        self.flushes += 1

    def _decode(self, message: Message) -> Row:
        """The row of ``message``; RecordRejected when it has none. A decoder that fails
        unexpectedly fails the same way on every reading of the record: that record goes to
        the DLQ (``decode_failed``) instead of stopping every write behind it."""
        try:
            return self._decoders[message.topic() or ""](message.value())
        except RecordRejected:
            raise
        except Exception as exc:  # one record's bug must not stop the writer
            log.exception("decode_failed", topic=message.topic(), offset=message.offset())
            detail = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
            raise RecordRejected("decode_failed", detail) from exc

    def _write_rows(
        self, rows: list[Row], sources: list[Message]
    ) -> tuple[list[Row], list[DeadLetter]] | None:
        """Write ``rows``: (the rows stored, dead letters for the rows refused), or None when
        told to stop (or inside a rebalance) before all were stored or refused."""
        try:
            if not self._retry_until_done(lambda: self._writer.write(rows), "write"):
                return None
        except WriteRefused as exc:
            log.warning("write_refused_isolating", rows=len(rows), kind=exc.kind, error=exc.detail)
        else:
            return rows, []
        # Row by row: a refusal is then that row's own (rewriting the others is idempotent).
        stored: list[Row] = []
        letters: list[DeadLetter] = []
        for row, source in zip(rows, sources, strict=True):
            try:
                if not self._retry_until_done(partial(self._writer.write, [row]), "write"):
                    return None
            except WriteRefused as exc:
                log.warning(
                    "record_refused", topic=source.topic(), offset=source.offset(), kind=exc.kind
                )
                letters.append(DeadLetter(source, f"write_refused:{exc.kind}", str(exc)))
            else:
                stored.append(row)
        return stored, letters

    def _retry_until_done(self, attempt_write: Callable[[], object], what: str) -> bool:
        """Retry with capped backoff, pausing consumption meanwhile; False when told to stop.
        Inside a rebalance callback it tries once (poll() may not be called from there)."""
        attempt = 0
        while True:
            try:
                attempt_write()
            except WriteFailed as exc:
                self._writes_failing()
                if self._in_rebalance:
                    log.warning("write_failed_during_rebalance", what=what, error=str(exc))
                    return False
                attempt += 1
                delay = backoff_delay(attempt, self._retry, random.random())
                log.warning(
                    "write_retrying",
                    what=what,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=str(exc),
                )
                self._pause()
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    self.last_turn_at = time.monotonic()
                    if self._stop.is_set():
                        log.warning("flush_abandoned_on_stop", what=what)
                        return False
                    # keeps the group membership alive (max.poll.interval.ms) while paused
                    message = self._consumer.poll(0.1)
                    if message is not None:
                        self._keep_for_next_flush(self._accept([message]))
                    if self._lag_gauges is not None:
                        self._lag_gauges.refresh_while_paused(self._consumer, self._assigned)
            else:
                self._writes_recovered(what)
                return True

    def _writes_failing(self) -> None:
        if self.unable_to_write_since is None:
            self.unable_to_write_since = time.monotonic()
            if self._readiness is not None:
                self._readiness.set(CASSANDRA, False, "writes failing; retrying")

    def _writes_recovered(self, what: str) -> None:
        if self.unable_to_write_since is None:
            return
        unable_s = time.monotonic() - self.unable_to_write_since
        log.info("writes_recovered", what=what, unable_s=round(unable_s, 1))
        self.unable_to_write_since = None
        if self._readiness is not None and not self._paused:  # else _resume() says so
            self._readiness.set(CASSANDRA, True)

    def _keep_for_next_flush(self, arrived: list[Message]) -> None:
        """Records that came while a write was retried (partitions assigned meanwhile; paused
        ones deliver nothing) join the pending ones at once, after them, so they are written by
        the next flush, before any offset past them can be committed."""
        if arrived and not self._pending.messages:
            self._pending.first_at = time.monotonic()
        self._pending.messages.extend(arrived)

    def _checkpoint(self, *, wait: bool) -> None:
        """Upsert the day bars of the rows written since the last checkpoint, then commit
        everything written: committed offsets never pass written rows or their bars."""
        if not self._uncommitted and not self._bars:
            return
        bars = self._bars
        self._flushing = True
        try:
            if not self._write_bars(list(bars.values())):
                return
        finally:
            self._flushing = False
            self._resume()
        self._bars = {}
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._uncommitted.items()
            if (topic, partition) in self._assigned  # a revoked partition is the new owner's
        ]
        self._uncommitted.clear()
        self._last_checkpoint = time.monotonic()
        if offsets:
            self._commit(offsets, wait=wait)

    def _write_bars(self, bars: list[DailyBar]) -> bool:
        """Upsert ``bars``; False when told to stop first. A bar Cassandra refuses for good
        (it cannot happen for a bar of rows that were written: same partition key, small
        cells) is dropped, logged as an error, rather than stall every commit behind it."""
        try:
            return self._retry_until_done(lambda: self._writer.write((), bars), "daily_bars")
        except WriteRefused as exc:
            log.warning("write_refused_isolating", bars=len(bars), kind=exc.kind, error=exc.detail)
        for bar in bars:
            try:
                if not self._retry_until_done(partial(self._writer.write, (), [bar]), "daily_bars"):
                    return False
            except WriteRefused as exc:
                log.exception("daily_bar_refused", bar=bar.key, kind=exc.kind, error=exc.detail)
        return True

    def _commit(self, offsets: list[TopicPartition], *, wait: bool) -> None:
        """In steady state the commit is not waited for (a lost one is covered by the next, or
        costs a harmless rewrite); before partitions are handed over or on stop it is."""
        self._commit_timer.started()
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # Not fatal: the rows are written; the records will be read and rewritten once more.
            log.warning("commit_failed", error=str(exc))

    def _observe(self, messages: list[Message]) -> None:
        # (consumer lag per partition comes from librdkafka's statistics: LagGauges)
        newest_ms = max((m.timestamp()[1] for m in messages), default=0)
        if newest_ms > 0:
            metrics.SECONDS_BEHIND.set(max(0.0, time.time() - newest_ms / 1000))

    # -- pause / resume while Cassandra is down --------------------------------------------

    def _pause(self) -> None:
        if not self._paused and self._assigned:
            self._consumer.pause([TopicPartition(t, p) for t, p in self._assigned])
            self._paused = True
            metrics.PAUSED.set(1)
            log.warning("consumption_paused")
            if self._readiness is not None:
                self._readiness.set(CASSANDRA, False, "writes failing; consumption paused")

    def _resume(self) -> None:
        if self._paused:
            self._consumer.resume([TopicPartition(t, p) for t, p in self._assigned])
            self._paused = False
            metrics.PAUSED.set(0)
            log.info("consumption_resumed")
            if self._readiness is not None:
                self._readiness.set(CASSANDRA, True)

    # -- rebalance callbacks (called from inside poll/consume) -----------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        if self._paused:
            consumer.pause(partitions)
        log.info("partitions_assigned", count=len(partitions), total=len(self._assigned))
        if self._readiness is not None:
            # in the group with an assignment (possibly empty: more members than partitions)
            self._readiness.set(PARTITIONS, True)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if not self._flushing:
            # hand over cleanly: written and committed before the partitions go (one attempt;
            # if Cassandra is down, nothing of theirs is committed and the new owner rereads)
            self._in_rebalance = True
            try:
                if self._pending.messages:
                    self._flush()
                self._checkpoint(wait=True)
            finally:
                self._in_rebalance = False
        self._assigned -= revoked
        self._drop_pending(revoked)
        log.info("partitions_revoked", count=len(partitions), total=len(self._assigned))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (not revoked): another member may own them already; never commit for them.
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= lost
        self._drop_pending(lost)
        log.warning("partitions_lost", count=len(partitions))
        if self._readiness is not None:
            self._readiness.set(PARTITIONS, False, "partitions lost; waiting to rejoin the group")

    def _drop_pending(self, gone: set[tuple[str, int]]) -> None:
        for key in gone:
            self._uncommitted.pop(key, None)

        def keep(message: Message) -> bool:
            return (message.topic(), message.partition()) not in gone

        self._pending.messages = [m for m in self._pending.messages if keep(m)]


def _observe_receipt_to_written(rows: list[Row], written_ns: int) -> None:
    """Each live tick's feed receipt to the end of its write (a replayed or backfilled tick,
    received long ago, lands in the top bucket: that is how late it is)."""
    observe = metrics.RECEIPT_TO_WRITTEN.observe
    for row in rows:
        if isinstance(row, TickRow) and row.tick.received_time_ns > 0:
            observe(max(0, written_ns - row.tick.received_time_ns) / 1e9)

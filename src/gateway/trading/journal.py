"""The trading log: every order event goes to Kafka in a transaction before anyone is told.

Why transactions: one fill writes three records (the execution on ``trades.executed``, the
status on ``orders.lifecycle``, the position on ``positions.updates``). In a transaction they
are visible together or not at all (consumers read ``read_committed``), so a crash can never
leave a fill without its status or a status without its position. The producer is also
idempotent (a retried send is written once), and its ``transactional.id`` is fixed per trading
owner: a restarted gateway fences the old instance, so two processes never write one log.

``append`` is called on the event loop and returns a future that completes once the records are
committed; appends commit in the order they were made. A thread does the blocking work and
puts whatever is waiting into one transaction (so a busy gateway commits in bigger batches).
If the log cannot be written (fenced, or Kafka down past the transaction timeout) the journal
fails: waiting and later appends raise ``JournalError`` and trading stops, because the memory
state is then ahead of the log; a restart rebuilds it from the log.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field

import structlog
from confluent_kafka import KafkaError, KafkaException, Producer

from gateway import metrics
from gateway.errors import GatewayError, JournalError, RecordRefusedError
from gateway.trading.convert import Record, TradingTopics
from gateway.trading.recovery import RecoveredState, read_trading_state
from marketinfra.kafka import ConfigValue, make_producer
from marketinfra.settings import KafkaSettings

log = structlog.get_logger(__name__)
MAX_RECORDS_PER_TRANSACTION = 5_000
ABORTED_RETRIES = 5
# librdkafka's default message.max.bytes, less room for the record's framing in its batch
DEFAULT_MAX_RECORD_BYTES = 1_000_000 - 1_024
# Errors of one record that no retry fixes; the rest of the log is unaffected.
_RECORD_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
    }
)
TRANSACTION_TIMEOUT_MS = 60_000


def transactional_overrides(
    settings: KafkaSettings, transactional_id: str, transaction_timeout_ms: int
) -> dict[str, ConfigValue]:
    """The trading log's producer settings over the project's defaults (acks=all, idempotence):
    ``mdgw bench trading`` gives its raw ceiling the same ones."""
    return {
        "transactional.id": transactional_id,
        "transaction.timeout.ms": transaction_timeout_ms,
        # librdkafka requires a record's delivery to time out within its transaction
        "delivery.timeout.ms": min(settings.delivery_timeout_ms, transaction_timeout_ms),
        "linger.ms": 0,  # a transaction's commit flushes anyway
    }


@dataclass(slots=True)
class _Append:
    records: list[Record]
    done: asyncio.Future[None]
    queued_ns: int = field(default_factory=time.monotonic_ns)
    refused: str | None = None  # why Kafka refused a record of it (nothing of it was written)


class KafkaJournal:
    def __init__(
        self,
        settings: KafkaSettings,
        transactional_id: str,
        topics: TradingTopics,
        loop: asyncio.AbstractEventLoop,
        *,
        transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._transactional_id = transactional_id
        self._loop = loop
        self._transaction_timeout_ms = transaction_timeout_ms
        self._max_record_bytes = max_record_bytes
        self._queue: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self.failed: JournalError | None = None

    def start(self, timeout_s: float) -> None:
        """Claim the transactional id (fencing any older writer), then serve appends."""
        try:
            producer = make_producer(
                self._settings,
                transactional_overrides(
                    self._settings, self._transactional_id, self._transaction_timeout_ms
                ),
            )
            producer.init_transactions(timeout_s)
        except KafkaException as exc:
            raise JournalError(f"cannot start the trading log: {exc.args[0].str()}") from exc
        self._producer = producer
        self._thread = threading.Thread(target=self._run, name="trading-journal", daemon=True)
        self._thread.start()
        log.info("journal_started", transactional_id=self._transactional_id)

    def read_state(self, timeout_s: float) -> RecoveredState:
        """The orders and positions recorded so far (call after ``start``)."""
        return read_trading_state(
            self._settings, self._topics.orders, self._topics.positions, timeout_s
        )

    def append(self, records: list[Record]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()
        if self.failed is not None:
            done.set_exception(self.failed)
        elif not records:
            done.set_result(None)
        elif (too_large := self._too_large(records)) is not None:
            metrics.JOURNAL_RECORDS_REFUSED.inc()
            log.warning("journal_record_refused", reason=too_large)
            done.set_exception(RecordRefusedError(too_large))
        else:
            self._queue.put(_Append(records, done))
        return done

    def _too_large(self, records: list[Record]) -> str | None:
        for record in records:
            size = len(record.key) + len(record.value)
            if size > self._max_record_bytes:
                return f"a record of {size} bytes, more than the log's {self._max_record_bytes}"
        return None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        producer = self._producer
        assert producer is not None  # set by start() before the thread starts
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            count = len(first.records)
            while count < MAX_RECORDS_PER_TRANSACTION:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                count += len(item.records)
            if self.failed is None:
                self._commit(producer, batch)
            self._settle(batch)
        log.info("journal_stopped")

    def _commit(self, producer: Producer, batch: list[_Append]) -> None:
        refused = self._transaction(producer, batch)
        if refused is None:
            return
        if len(batch) == 1:
            batch[0].refused = refused
        else:
            # a refused record failed the whole transaction: write each append on its own
            # (in order, as appends commit), so that only the one holding it is refused
            log.warning("journal_isolating_refused_record", appends=len(batch), reason=refused)
            for append in batch:
                if self.failed is not None:
                    return
                append.refused = self._transaction(producer, [append])
        for append in batch:
            if append.refused is not None:
                metrics.JOURNAL_RECORDS_REFUSED.inc()
                log.warning("journal_record_refused", reason=append.refused)

    def _transaction(self, producer: Producer, batch: list[_Append]) -> str | None:
        """Write ``batch`` in one transaction. Returns why Kafka refused one of its records for
        good (the transaction is then aborted: nothing of it is visible), else None; any other
        failure fails the log (``self.failed``)."""
        started = time.monotonic()
        refusals: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: object) -> None:
            if error is not None and error.code() in _RECORD_ERRORS:
                refusals.append(error)

        for attempt in range(1, ABORTED_RETRIES + 1):
            refusals.clear()
            try:
                producer.begin_transaction()
                for append in batch:
                    for record in append.records:
                        producer.produce(
                            record.topic, record.value, record.key, on_delivery=delivered
                        )
                producer.commit_transaction(self._transaction_timeout_ms / 1000)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                refusal = _refusal(error, refusals)
                if refusal is not None:
                    producer.abort_transaction(self._transaction_timeout_ms / 1000)
                    # the client hears the code only (the text names topics and broker ids)
                    log.warning("journal_record_refused_by_kafka", error=refusal.str())
                    return f"Kafka refused it: {refusal.name()}"
                if error.txn_requires_abort() and attempt < ABORTED_RETRIES:
                    # nothing of this attempt is visible: abort and write the batch again
                    log.warning("journal_transaction_aborted", error=error.str(), attempt=attempt)
                    producer.abort_transaction(self._transaction_timeout_ms / 1000)
                    continue
                self.failed = JournalError(f"the trading log cannot be written: {error.str()}")
                log.error("journal_failed", error=error.str(), fatal=error.fatal())  # noqa: TRY400 - the reason is the message
                return None
            except BufferError as exc:  # more records than the producer queue holds
                self.failed = JournalError(f"the trading log cannot be written: {exc}")
                log.error("journal_failed", error=str(exc))  # noqa: TRY400 - as above
                return None
            metrics.JOURNAL_COMMIT_SECONDS.observe(time.monotonic() - started)
            metrics.JOURNAL_RECORDS.inc(sum(len(append.records) for append in batch))
            return None
        return None

    def _settle(self, batch: list[_Append]) -> None:
        failed = self.failed
        for append in batch:
            error: GatewayError | None = failed
            if append.refused is not None:
                error = RecordRefusedError(append.refused)
            self._loop.call_soon_threadsafe(_complete, append.done, error)


def _refusal(error: KafkaError, delivery_errors: list[KafkaError]) -> KafkaError | None:
    """The one record's refusal behind a failed transaction, if that is what failed it."""
    if error.code() in _RECORD_ERRORS:
        return error
    if delivery_errors and not error.fatal():
        return delivery_errors[0]
    return None


def _complete(done: asyncio.Future[None], failed: GatewayError | None) -> None:
    if done.done():  # the caller went away
        return
    if failed is None:
        done.set_result(None)
    else:
        done.set_exception(failed)

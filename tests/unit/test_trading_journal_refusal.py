"""The trading log's answer to a record Kafka refuses for good (issue 15): that append alone
is refused, every other one is committed, in order, and the log carries on. Driven through
``KafkaJournal``'s writer with a producer fake that behaves as librdkafka does: the refused
record's delivery fails, which fails its whole transaction (abortable)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from gateway.errors import JournalError, RecordRefusedError
from gateway.trading.convert import Record, TradingTopics
from gateway.trading.journal import KafkaJournal
from marketinfra.settings import KafkaSettings

TOPICS = TradingTopics("orders", "trades", "positions")


class TransactionalProducerFake:
    """begin/produce/commit/abort; a record ``refuses(value)`` fails delivery and commit."""

    def __init__(self, refuses: Callable[[bytes], bool], *, fatal_commit: bool = False) -> None:
        self.refuses = refuses
        self.fatal_commit = fatal_commit
        self.pending: list[tuple[bytes, Any]] = []
        self.committed: list[list[bytes]] = []
        self.aborted = 0

    def begin_transaction(self) -> None:
        self.pending = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.pending.append((value, on_delivery))

    def commit_transaction(self, timeout_s: float) -> None:
        if self.fatal_commit:
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
        refused = [(v, cb) for v, cb in self.pending if self.refuses(v)]
        for _value, delivered in refused:
            delivered(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Message size too large"), None)
        if refused:
            raise KafkaException(
                KafkaError(KafkaError._STATE, "must be aborted", txn_requires_abort=True)
            )
        self.committed.append([value for value, _ in self.pending])

    def abort_transaction(self, timeout_s: float) -> None:
        self.aborted += 1
        self.pending = []


async def _run(
    journal: KafkaJournal, producer: TransactionalProducerFake, appends: list[list[Record]]
) -> list[BaseException | None]:
    """Queue ``appends`` at once (so the writer takes them as one batch), run the writer."""
    journal._producer = producer  # type: ignore[assignment]  # the fake stands in for librdkafka
    futures = [journal.append(records) for records in appends]
    journal._queue.put(None)
    await asyncio.to_thread(journal._run)
    return list(await asyncio.gather(*futures, return_exceptions=True))


def _journal(**options: Any) -> KafkaJournal:
    return KafkaJournal(KafkaSettings(), "test", TOPICS, asyncio.get_running_loop(), **options)


def _record(value: bytes) -> Record:
    return Record("orders", value[:8], value)


async def test_a_refused_record_refuses_its_append_alone_and_the_rest_commit_in_order() -> None:
    journal = _journal()
    producer = TransactionalProducerFake(lambda value: value.startswith(b"bad"))
    outcomes = await _run(
        journal,
        producer,
        [[_record(b"ok-1")], [_record(b"bad-1"), _record(b"ok-x")], [_record(b"ok-2")]],
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], RecordRefusedError)
    assert "MSG_SIZE_TOO_LARGE" in str(outcomes[1])
    assert outcomes[2] is None
    # the whole batch failed once, then each append was written on its own, in order
    assert producer.committed == [[b"ok-1"], [b"ok-2"]]
    assert journal.failed is None


async def test_a_record_larger_than_the_log_takes_is_refused_before_any_transaction() -> None:
    journal = _journal(max_record_bytes=100)
    producer = TransactionalProducerFake(lambda value: False)
    outcomes = await _run(journal, producer, [[_record(b"x" * 200)], [_record(b"small")]])
    assert isinstance(outcomes[0], RecordRefusedError)
    assert "more than the log's 100" in str(outcomes[0])
    assert outcomes[1] is None
    assert producer.committed == [[b"small"]]
    assert producer.aborted == 0


async def test_any_other_failure_still_fails_the_log() -> None:
    journal = _journal()
    producer = TransactionalProducerFake(lambda value: False, fatal_commit=True)
    outcomes = await _run(journal, producer, [[_record(b"ok-1")]])
    assert isinstance(outcomes[0], JournalError)
    assert journal.failed is not None
    with pytest.raises(JournalError):
        await journal.append([_record(b"later")])
